#!/usr/bin/env bash
# Runs each fuzz target of fuzz/ (the parsers of untrusted input: references, digests, manifest
# and index JSON, image configs, sandbox.toml, sandbox.lock, the tar unpacker, and what code in
# the sandbox sends the network keeper: DNS queries, a connection's first bytes, the netfilter
# queue's messages) for a bounded time and reports what each found. Needs cargo-fuzz (`cargo install cargo-fuzz`); the
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
# Seeds for what the sandbox sends the keeper: a real TLS ClientHello and an HTTP request with
# Host and a proxy's CONNECT (sniff), a DNS query (dns_query), a netfilter queue message
# carrying a TCP SYN (nfqueue).
if [ ! -e corpus/sniff/seeded ]; then
    mkdir -p corpus/sniff corpus/dns_query corpus/nfqueue
    python3 - <<'PY'
import socket, ssl, struct
ctx = ssl.create_default_context()
out, inc = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(inc, out, server_hostname="pypi.org")
try:
    tls.do_handshake()
except ssl.SSLWantReadError:
    pass
open("corpus/sniff/clienthello", "wb").write(out.read())
open("corpus/sniff/http-host", "wb").write(b"GET /simple/ HTTP/1.1\r\nHost: pypi.org\r\nAccept: */*\r\n\r\n")
open("corpus/sniff/http-proxy", "wb").write(b"GET http://deb.debian.org/debian/dists?x=1 HTTP/1.1\r\nHost: deb.debian.org\r\n\r\n")
open("corpus/sniff/connect", "wb").write(b"CONNECT pypi.org:443 HTTP/1.1\r\nHost: pypi.org:443\r\n\r\n\x16\x03")
name = b"".join(bytes([len(l)]) + l for l in b"files.pythonhosted.org".split(b".")) + b"\0"
open("corpus/dns_query/a-query", "wb").write(struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + name + struct.pack(">HH", 1, 1))
syn = bytes([0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0]) + socket.inet_aton("10.0.0.2") + socket.inet_aton("93.184.216.34") + struct.pack(">HH", 40000, 443) + bytes(16)
def attr(kind, data):
    return struct.pack("<HH", 4 + len(data), kind) + data + bytes(-len(data) % 4)
body = struct.pack(">BBH", 2, 0, 1) + attr(1, struct.pack(">IHB", 7, 0x0800, 1)) + attr(10, syn)
open("corpus/nfqueue/syn", "wb").write(struct.pack("<IHHII", 16 + len(body), 3 << 8, 0, 0, 0) + body)
PY
    touch corpus/sniff/seeded
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
