# Shared set-up for the benchmarks, sourced from the repository root: a release build, a
# loopback registry holding a busybox image, a work dir readable by the unprivileged user, and
# that image pulled into a fresh store. Sets work, ref, user, as_user and podman_args.
# As root, every tool runs as the unprivileged $SANDBOX_TEST_USER (rootless, like a user would).
cargo build --release --locked -q
work=$(mktemp -d /tmp/sandbox-bench.XXXXXX)
chmod 0755 "$work"
port=$(shuf -i 20000-40000 -n 1)
registry_pid=$(scripts/start-registry.sh "$port" "$work/registry")
user=""
[ "$(id -u)" = 0 ] && user=${SANDBOX_TEST_USER:-sandbox-test}
# The words that run a command as that user, with the bench's own home and run dir.
if [ -n "$user" ]; then
    as_user_prefix=(runuser -u "$user" -- env HOME="$work/home" XDG_RUNTIME_DIR="$work/run" XDG_CONFIG_HOME="$work/home/.config" PATH=/usr/bin:/bin:/usr/sbin:/sbin)
else
    as_user_prefix=(env XDG_RUNTIME_DIR="$work/run")
fi
as_user() { "${as_user_prefix[@]}" "$@"; }
# The same, replacing the calling (sub)shell, so a signal to it reaches the tool.
exec_as_user() { exec "${as_user_prefix[@]}" "$@"; }
cleanup() {
    kill "$registry_pid" 2>/dev/null || true
    # The pause process sandbox started for this store (it would idle 15 minutes otherwise).
    [ -f "$work/store/pause.pid" ] && kill "$(cut -d" " -f1 "$work/store/pause.pid")" 2>/dev/null || true
    if command -v podman >/dev/null; then as_user podman unshare rm -rf "$work/store" "$work/podman" 2>/dev/null || true; fi
    # And podman's pause process (catatonit; the unshare above starts one too), which would
    # hold its user namespace for this run dir forever: the one whose XDG_RUNTIME_DIR is ours.
    for pid in $(pgrep -x catatonit || true); do
        tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "XDG_RUNTIME_DIR=$work/run" && kill "$pid" 2>/dev/null || true
    done
    rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT
scripts/make-image.sh "http://127.0.0.1:$port" library/busybox latest >/dev/null
ref=127.0.0.1:$port/library/busybox:latest
cp target/release/sandbox "$work/sandbox"
mkdir -p "$work/project" "$work/home" "$work/run"
chmod 0700 "$work/run"
[ -n "$user" ] && chown -R "$user:" "$work"

as_user "$work/sandbox" -q --root "$work/store" pull "$ref" >/dev/null
podman_args="--root $work/podman --runroot $work/run/podman --storage-driver overlay --runtime runc --cgroup-manager cgroupfs --events-backend none"
# Ends the sandbox started in the background as $1 (a subshell that exec'd runuser, which
# passes SIGTERM on to sandbox), and waits until nothing of it runs, so the next
# `sandbox run` starts a container of its own instead of joining this one.
end_sandbox() {
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" || true
    for _ in $(seq 100); do
        [ "$(as_user "$work/sandbox" --root "$work/store" ps | wc -l)" -le 1 ] && return 0
        sleep 0.05
    done
    echo "error: the sandbox did not end" >&2
    return 1
}
# Pulls the image into podman's store too, when podman is installed; true when it is.
podman_ready() {
    command -v podman >/dev/null || return 1
    command -v runc >/dev/null || { echo "podman: skipped, it needs runc here (crun 1.8 refuses this cgroup layout; Debian: apt-get install runc)" >&2; return 1; }
    # shellcheck disable=SC2086
    as_user podman $podman_args pull -q --tls-verify=false "$ref" >/dev/null 2>&1
}
