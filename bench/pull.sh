#!/usr/bin/env bash
# Cold-pull benchmark: a multi-layer image of at least 300 MB (default 4 x 80 MB filler layers
# on a busybox base) served by a loopback docker-registry, pulled into an empty store by
# sandbox, and, when installed, by `podman pull` (empty --root) and `skopeo copy` (to a dir:
# download and verify only). Prints the median of RUNS runs of each, and the ratios.
#
#   bench/pull.sh                 # LAYERS=4 MB=80 RUNS=3 by default
#
# As root, every tool runs as the unprivileged $SANDBOX_TEST_USER (rootless, like a user would).
set -euo pipefail
cd "$(dirname "$0")/.."
layers=${LAYERS:-4}
mb=${MB:-80}
runs=${RUNS:-3}
cargo build --release --locked -q
bin=$PWD/target/release/sandbox

work=$(mktemp -d /tmp/sandbox-bench.XXXXXX)
chmod 0755 "$work"
port=$(shuf -i 20000-40000 -n 1)
registry_pid=$(scripts/start-registry.sh "$port" "$work/registry")
trap 'kill "$registry_pid" 2>/dev/null || true; rm -rf "$work" 2>/dev/null || true' EXIT
scripts/make-image.sh "http://127.0.0.1:$port" bench/toolchain latest "$layers" "$mb" >/dev/null
ref=127.0.0.1:$port/bench/toolchain:latest
cp "$bin" "$work/sandbox" && chmod 0755 "$work/sandbox"

user=""
if [ "$(id -u)" = 0 ]; then
    user=${SANDBOX_TEST_USER:-sandbox-test}
    chown "$user:" "$work"
fi
as_user() {
    if [ -n "$user" ]; then
        runuser -u "$user" -- env HOME="$work/home" XDG_RUNTIME_DIR="$work/run" XDG_CONFIG_HOME="$work/home/.config" PATH=/usr/bin:/bin:/usr/sbin "$@"
    else
        env XDG_RUNTIME_DIR="$work/run" "$@"
    fi
}
as_user mkdir -p "$work/home" "$work/run"
chmod 0700 "$work/run"

# Removes a store made by a rootless tool (its files belong to subordinate ids).
clean() {
    local dir=$1
    [ -e "$dir" ] || return 0
    if command -v podman >/dev/null 2>&1; then as_user podman unshare rm -rf "$dir"; else rm -rf "$dir"; fi
}

# median_seconds NAME CMD...: runs CMD $runs times on a fresh target, prints the median.
median_seconds() {
    local name=$1; shift
    local times=()
    for ((r = 0; r < runs; r++)); do
        clean "$work/target-$name"
        local start end
        start=$(date +%s.%N)
        as_user "$@" >/dev/null 2>>"$work/tools.log"
        end=$(date +%s.%N)
        times+=("$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.3f", b - a}')")
    done
    clean "$work/target-$name"
    printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p"
}

echo "image: $ref, 1 + $layers layers, about $((layers * mb)) MB of filler; median of $runs runs"
sandbox_s=$(median_seconds sandbox "$work/sandbox" -q --root "$work/target-sandbox" pull "$ref")
printf '%-28s %8.2f s\n' "sandbox pull" "$sandbox_s"
if command -v podman >/dev/null 2>&1; then
    podman_s=$(median_seconds podman podman --root "$work/target-podman" --runroot "$work/run/podman" --storage-driver overlay pull -q --tls-verify=false "$ref")
    printf '%-28s %8.2f s   sandbox/podman = %.2f (target <= 0.40)\n' "podman pull" "$podman_s" "$(awk -v a="$sandbox_s" -v b="$podman_s" 'BEGIN{print a / b}')"
else
    echo "podman pull                  (podman not installed)"
fi
if command -v skopeo >/dev/null 2>&1; then
    skopeo_s=$(median_seconds skopeo skopeo copy -q --src-tls-verify=false "docker://$ref" "dir:$work/target-skopeo")
    printf '%-28s %8.2f s   sandbox/skopeo = %.2f\n' "skopeo copy (download only)" "$skopeo_s" "$(awk -v a="$sandbox_s" -v b="$skopeo_s" 'BEGIN{print a / b}')"
else
    echo "skopeo copy                  (skopeo not installed)"
fi
