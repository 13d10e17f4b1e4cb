#!/usr/bin/env bash
# Push benchmark: a prepared sandbox of at least 300 MB (a busybox base and a setup layer of
# 150 MB of random bytes and 150 MB of text, like a JDK's mix), pushed to a fresh loopback
# registry by `sandbox push` (which compresses its setup layer, as a first push does), and the
# same image by `podman push` (from podman's store, after `podman load` of `sandbox export`)
# and by `skopeo copy` (the exported archive to the registry, compressed already). Each tool
# pushes to a registry of its own, so none finds blobs another sent. Prints each time and
# sandbox/podman (target: at most 0.5).
#
#   bench/push.sh
#
# As root, every tool runs as the unprivileged $SANDBOX_TEST_USER (rootless, like a user would).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
for tool in podman skopeo; do
    command -v "$tool" >/dev/null || { echo "error: $tool is missing (Debian: apt-get install $tool)" >&2; exit 1; }
done
registries=()
stop_registries() { for pid in "${registries[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap 'stop_registries; cleanup' EXIT
# Starts a registry of its own and sets target to it (not in a $(...) subshell, which would
# lose its pid and leave it running).
fresh_registry() {
    local port; port=$(shuf -i 40001-60000 -n 1)
    registries+=("$(scripts/start-registry.sh "$port" "$work/registry-$port")")
    target="127.0.0.1:$port"
}
cat >"$work/project/sandbox.toml" <<EOF
setup = ["head -c 150000000 /dev/urandom > /random && yes 'a line of text, as class files and docs are' | head -c 150000000 > /text"]
[toolchain]
image = "$ref"
[network]
mode = "none"
EOF
[ -n "$user" ] && chown -R "$user:" "$work/project"
# The setup layer is built before anything is timed.
(cd "$work/project" && as_user "$work/sandbox" -q --root "$work/store" run -- true)

seconds() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b - a}'; }

fresh_registry
start=$(date +%s.%N)
(cd "$work/project" && as_user "$work/sandbox" -q --root "$work/store" push "$target/bench/app:1" >/dev/null)
sandbox_s=$(seconds "$start" "$(date +%s.%N)")
start=$(date +%s.%N)
(cd "$work/project" && as_user "$work/sandbox" -q --root "$work/store" push "$target/bench/app:1" >/dev/null)
again_s=$(seconds "$start" "$(date +%s.%N)")

# Its layer compressed by the first push: what uploading alone costs, to a fresh registry.
fresh_registry
start=$(date +%s.%N)
(cd "$work/project" && as_user "$work/sandbox" -q --root "$work/store" push "$target/bench/app:1" >/dev/null)
warm_s=$(seconds "$start" "$(date +%s.%N)")

(cd "$work/project" && as_user "$work/sandbox" -q --root "$work/store" export -o "$work/app.tar" --name localhost/bench/app:1 >/dev/null)
size_mb=$(du -m "$work/app.tar" | cut -f1)
as_user podman $podman_args load -q -i "$work/app.tar" >/dev/null
fresh_registry
start=$(date +%s.%N)
as_user podman $podman_args push -q --tls-verify=false localhost/bench/app:1 "$target/bench/app:1" >/dev/null 2>&1
podman_s=$(seconds "$start" "$(date +%s.%N)")

fresh_registry
start=$(date +%s.%N)
as_user skopeo copy -q --dest-tls-verify=false "oci-archive:$work/app.tar" "docker://$target/bench/app:1" >/dev/null
skopeo_s=$(seconds "$start" "$(date +%s.%N)")

printf 'prepared sandbox: %s MB compressed\n' "$size_mb"
printf '%-44s %7s s\n' "sandbox push (first: compresses the layer)" "$sandbox_s"
printf '%-44s %7s s\n' "sandbox push again (nothing to upload)" "$again_s"
printf '%-44s %7s s   warm/podman = %s\n' "sandbox push, layer already compressed" "$warm_s" "$(awk -v a="$warm_s" -v b="$podman_s" 'BEGIN{printf "%.2f", a/b}')"
printf '%-44s %7s s   sandbox/podman = %s (target <= 0.5)\n' "podman push" "$podman_s" "$(awk -v a="$sandbox_s" -v b="$podman_s" 'BEGIN{printf "%.2f", a/b}')"
printf '%-44s %7s s   sandbox/skopeo = %s\n' "skopeo copy oci-archive: (no compression)" "$skopeo_s" "$(awk -v a="$sandbox_s" -v b="$skopeo_s" 'BEGIN{printf "%.2f", a/b}')"
# podman's pause process for this run's store (it would stay otherwise).
pause="$work/run/libpod/tmp/pause.pid"
[ -f "$pause" ] && kill -9 "$(cat "$pause")" 2>/dev/null || true
