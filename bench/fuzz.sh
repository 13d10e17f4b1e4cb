#!/usr/bin/env bash
# Runs each fuzz target of fuzz/ (the parsers of untrusted input: references, digests, manifest
# and index JSON, image configs, sandbox.toml, sandbox.lock, the tar unpacker) for a bounded
# time and reports what each found. Needs cargo-fuzz (`cargo install cargo-fuzz`); the
# machine's stable Rust builds it with RUSTC_BOOTSTRAP=1 (cargo fuzz uses -Z flags).
#
#   bench/fuzz.sh                 # 60 s per target
#   SECONDS_EACH=600 bench/fuzz.sh unpack manifest
#
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null || { echo "error: cargo-fuzz is missing (cargo install cargo-fuzz)" >&2; exit 1; }
each=${SECONDS_EACH:-60}
targets=("$@")
[ ${#targets[@]} -eq 0 ] && mapfile -t targets < <(RUSTC_BOOTSTRAP=1 cargo fuzz list)
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O >/dev/null
# Seeds for the unpacker: small layers with files, dirs, symlinks, hard links, whiteouts and a
# long name, so the fuzzer starts from tar streams rather than from nothing.
if [ ! -e corpus/unpack/seeded ]; then
    mkdir -p corpus/unpack
    seed=$(mktemp -d)
    (cd "$seed" && mkdir -p a/b && echo x > a/f && ln -s ../f a/b/l && ln a/f a/h \
        && touch .wh.gone a/.wh..wh..opq "a/$(printf 'n%.0s' {1..120})" && ln -s /etc a/abs)
    tar -C "$seed" -cf corpus/unpack/seed-gnu.tar .
    tar -C "$seed" --format=pax -cf corpus/unpack/seed-pax.tar .
    tar -C "$seed" --format=ustar -cf corpus/unpack/seed-ustar.tar a/f a/b
    rm -rf "$seed"
    touch corpus/unpack/seeded
fi
status=0
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    log=$(mktemp)
    if cargo fuzz run -O "$target" "corpus/$target" -- -max_total_time="$each" -rss_limit_mb=2048 >"$log" 2>&1; then
        runs=$(grep -o 'Done [0-9]* runs' "$log" | tail -n1)
        printf '%-14s ok: %s in %s s, corpus %s inputs\n' "$target" "${runs:-?}" "$each" "$(ls "corpus/$target" | wc -l)"
    else
        status=1
        printf '%-14s FOUND a crash; the input is in fuzz/artifacts/%s/:\n' "$target" "$target"
        grep -E "panicked|ERROR: AddressSanitizer|SUMMARY" "$log" | head -n 5 | sed 's/^/    /'
    fi
    rm -f "$log"
done
exit $status
