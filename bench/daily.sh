#!/usr/bin/env bash
# A developer's day, against podman doing the same on the same images in the same run: a JDK
# and a PHP image built from Debian's package mirror (bench/debian-images.sh, kept between runs)
# and served to both tools from a loopback registry. Projects live under the user's home
# (~/src/NAME), as users keep them. Each figure is the median of RUNS runs; each line ends
# with sandbox/podman.
#
#   enter + exit          an interactive shell in a pty, `exit` typed at once
#   javac                 a one-shot `javac` of a 3-class project
#   20 x php -r           20 one-liners in a row, a container each
#   setup: pip install    a pinned set of 30 generated wheels from a loopback HTTPS index, in a
#                         setup step (podman: a RUN in `podman build`), then a command; sandbox
#                         reaches the index through its relay (the project's host_loopback),
#                         podman 4.3's rootless build only with `--network host` (no network
#                         in between: its slirp4netns options are refused for builds)
#   edit last of 3 steps  the last of 3 setup steps edited (the first, the pip install, kept),
#                         then a command (podman: `podman build` with its cache, then `run`)
#   cold pull (JDK)       into an empty store, the page cache dropped before each pull
#   ps, 20 running        `ps` with 20 sandboxes (containers) running
#
#   bench/daily.sh            # RUNS=3; needs root (debootstrap, dropping the page cache)
#
# This is where a regression of the kind of the relay's 200 ms stalls shows first: every
# line crosses the default network or the store.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
cache=${SANDBOX_BENCH_CACHE:-/var/tmp/sandbox-bench-cache}
[ "$(id -u)" = 0 ] || { echo "error: run as root: it builds images with debootstrap and drops the page cache" >&2; exit 1; }
for tool in podman runc openssl /usr/bin/python3; do
    command -v "$tool" >/dev/null || { echo "error: $tool is missing (scripts/host-packages.sh installs it)" >&2; exit 1; }
done
bench/debian-images.sh "$cache" >/dev/null
# shellcheck source=bench/lib.sh
source bench/lib.sh
podman_ready || { echo "error: podman could not pull from the loopback registry" >&2; exit 1; }
# shellcheck source=bench/index.sh
source bench/index.sh
ROOTFS_TAR=$cache/jdk.tar scripts/make-image.sh "http://127.0.0.1:$port" bench/jdk 17 >/dev/null
ROOTFS_TAR=$cache/php.tar scripts/make-image.sh "http://127.0.0.1:$port" bench/php 8.2 >/dev/null
jdk=127.0.0.1:$port/bench/jdk:17
php=127.0.0.1:$port/bench/php:8.2
mkdir -p "$work/certs"
make_tls_certificates "$work/certs"
start_wheel_index "$work/index"
chmod -R a+rX "$work/certs" "$work/index"
sandbox_cmd() { as_user "$work/sandbox" -q --root "$work/store" "$@"; }
# shellcheck disable=SC2086
podman_cmd() { as_user podman $podman_args "$@"; }
stop_all() {
    for id in $(sandbox_cmd ps --json 2>/dev/null | python3 -c 'import json,sys; print(" ".join(r["id"] for r in json.load(sys.stdin)))' 2>/dev/null); do
        sandbox_cmd stop --time 0 "$id" >/dev/null 2>&1 || true
    done
    podman_cmd rm -f -a -t 0 >/dev/null 2>&1 || true
}
trap 'stop_all; kill "$index_server" 2>/dev/null || true; cleanup' EXIT
for image in "$jdk" "$php"; do
    sandbox_cmd pull "$image" >/dev/null
    podman_cmd pull -q --tls-verify=false "$image" >/dev/null
done

# project NAME: ~/src/NAME for the user, with sandbox.toml from stdin; prints its path.
project() {
    local dir=$work/home/src/$1
    mkdir -p "$dir"
    cat >"$dir/sandbox.toml"
    [ -n "$user" ] && chown -R "$user:" "$work/home"
    echo "$dir"
}
in_dir() { local dir=$1; shift; (cd "$dir" && "$@"); }
# Seconds that "$@" takes.
seconds() {
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null 2>"$work/last.err" || { echo "error: $* failed: $(tail -n 12 "$work/last.err")" >&2; return 1; }
    end=$(date +%s.%N)
    awk -v s="$start" -v e="$end" 'BEGIN{printf "%.4f\n", e - s}'
}
median() { sort -n | awk '{a[NR]=$1} END {if (NR == 0) exit 1; print a[int((NR+1)/2)]}'; }
# median_of PREPARE COMMAND...: RUNS times PREPARE (untimed, given the run's number), then
# COMMAND timed; prints the median seconds.
median_of() {
    local prepare=$1; shift
    for i in $(seq "$runs"); do
        $prepare "$i"
        seconds "$@"
    done | median
}
nothing() { :; }
row() { # WHAT SANDBOX_S PODMAN_S [NOTE]
    printf '%-26s %9.3f s %9.3f s   %6.3f  %s\n' "$1" "$2" "$3" "$(awk -v a="$2" -v b="$3" 'BEGIN{print a/b}')" "${4:-}"
}
printf '%-26s %11s %11s   %6s\n' "" sandbox podman ratio

# --- enter, then exit, in a pty ---
# Runs "$@" on a new pseudo-terminal, types `exit`, and waits for it to end.
in_pty() {
    /usr/bin/python3 - "$@" <<'PY'
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
os.write(fd, b"exit\r")
while True:
    try:
        if not os.read(fd, 4096):
            break
    except OSError:
        break
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
PY
}
java_app=$(project java-app <<EOF
[toolchain]
image = "$jdk"
EOF
)
mkdir -p "$java_app/src/app"
for class in Main Greeter Names; do
    case $class in
        Main) body='public static void main(String[] args) { System.out.println(new Greeter().greet(Names.first())); }' ;;
        Greeter) body='String greet(String name) { return "hello, " + name; }' ;;
        Names) body='static String first() { return "world"; }' ;;
    esac
    printf 'package app;\npublic class %s {\n    %s\n}\n' "$class" "$body" >"$java_app/src/app/$class.java"
done
[ -n "$user" ] && chown -R "$user:" "$java_app"
in_dir "$java_app" in_pty "${as_user_prefix[@]}" "$work/sandbox" -q --root "$work/store" enter >/dev/null 2>&1 || true
s=$(median_of nothing in_dir "$java_app" in_pty "${as_user_prefix[@]}" "$work/sandbox" -q --root "$work/store" enter)
# shellcheck disable=SC2086
p=$(median_of nothing in_pty "${as_user_prefix[@]}" podman $podman_args run -it --rm "$jdk" bash -l)
row "enter + exit" "$s" "$p"

# --- a one-shot javac ---
compile='javac -d /tmp/out src/app/*.java'
s=$(median_of nothing in_dir "$java_app" sandbox_cmd run -- sh -c "$compile")
p=$(median_of nothing podman_cmd run --rm -v "$java_app:/w" -w /w "$jdk" sh -c "$compile")
row "javac, 3 classes" "$s" "$p"

# --- 20 php -r one-liners ---
php_app=$(project php-app <<EOF
[toolchain]
image = "$php"
EOF
)
twenty_sandbox() { for _ in $(seq 20); do in_dir "$php_app" sandbox_cmd run -- php -r 'echo 6 * 7;'; done; }
twenty_podman() { for _ in $(seq 20); do podman_cmd run --rm "$php" php -r 'echo 6 * 7;'; done; }
s=$(median_of nothing twenty_sandbox)
p=$(median_of nothing twenty_podman)
row "20 x php -r" "$s" "$p"

# --- a pip install in a setup step, then a command ---
cp "$work/certs/ca.pem" "$work/home/ca.pem"
pip_step() { # WHERE(the index's name) RUN: the step, a comment making each run's its own
    echo "REQUESTS_CA_BUNDLE=/opt/ca.pem SSL_CERT_FILE=/opt/ca.pem pip install -q --no-cache-dir --break-system-packages --cert /opt/ca.pem --index-url https://$1:$index_port/simple/ $pinned_wheels # run $2"
}
setup_project() { # NAME RUN LAST: the pip step (run RUN) and, with LAST, two more steps
    local extra=""
    [ -n "${3:-}" ] && extra=", \"echo one > /opt/one\", \"echo $3 > /opt/last\""
    project "$1" <<EOF
setup = [{ copy = "ca.pem", to = "/opt/ca.pem" }, "$(pip_step host.containers.internal "$2")"$extra]
[toolchain]
image = "$php"
[network]
host_loopback = true
EOF
}
containerfile() { # DIR RUN LAST
    {
        printf 'FROM %s\nCOPY ca.pem /opt/ca.pem\nRUN %s\n' "$php" "$(pip_step localhost "$2")"
        [ -n "${3:-}" ] && printf 'RUN echo one > /opt/one\nRUN echo %s > /opt/last\n' "$3"
    } >"$1/Containerfile"
    cp "$work/certs/ca.pem" "$1/ca.pem"
    [ -n "$user" ] && chown -R "$user:" "$1"
    return 0
}
py_app=$work/home/src/py-app
fresh_pip_sandbox() { setup_project py-app "$1" >/dev/null; cp "$work/certs/ca.pem" "$py_app/ca.pem"; chown -R "${user:-root}:" "$py_app"; in_dir "$py_app" sandbox_cmd trust >/dev/null; }
fresh_pip_podman() { containerfile "$py_app" "$1"; }
podman_build_run() { # DIR then the command
    local dir=$1; shift
    podman_cmd build -q --network host -t "localhost/$(basename "$dir")" "$dir" && podman_cmd run --rm "localhost/$(basename "$dir")" "$@"
}
s=$(median_of fresh_pip_sandbox in_dir "$py_app" sandbox_cmd run -- true)
p=$(median_of fresh_pip_podman podman_build_run "$py_app" true)
row "setup: pip install" "$s" "$p" "(podman: build --network host, then run)"

# --- the last of 3 setup steps edited, then a command ---
steps_app=$work/home/src/steps-app
edit_sandbox() {
    setup_project steps-app 0 "v$1" >/dev/null
    cp "$work/certs/ca.pem" "$steps_app/ca.pem"
    chown -R "${user:-root}:" "$steps_app"
    in_dir "$steps_app" sandbox_cmd trust >/dev/null
}
edit_podman() { containerfile "$steps_app" 0 "v$1"; }
edit_sandbox 0 && in_dir "$steps_app" sandbox_cmd run -- true >/dev/null 2>&1
edit_podman 0 && podman_build_run "$steps_app" true >/dev/null 2>&1
s=$(median_of edit_sandbox in_dir "$steps_app" sandbox_cmd run -- cat /opt/last)
p=$(median_of edit_podman podman_build_run "$steps_app" cat /opt/last)
row "edit last of 3 steps" "$s" "$p" "(podman: build with its cache, then run)"

# --- a cold pull of the JDK image ---
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
pull_sandbox() { drop_caches; rm -rf "$work/pull-store"; }
pull_podman() { drop_caches; as_user podman unshare rm -rf "$work/pull-podman" 2>/dev/null || true; }
s=$(median_of pull_sandbox as_user "$work/sandbox" -q --root "$work/pull-store" pull "$jdk")
# shellcheck disable=SC2086
p=$(median_of pull_podman as_user podman ${podman_args//$work\/podman/$work/pull-podman} pull -q --tls-verify=false "$jdk")
row "cold pull, JDK image" "$s" "$p" "($(du -sh "$cache/jdk.tar" | cut -f1) uncompressed)"
as_user podman unshare rm -rf "$work/pull-podman" "$work/pull-store" 2>/dev/null || true

# --- ps with 20 running ---
for i in $(seq 20); do
    dir=$work/home/src/ps$i
    mkdir -p "$dir" && { [ -z "$user" ] || chown "$user:" "$dir"; }
    (cd "$dir" && sandbox_cmd run --network none --image "$ref" -- sleep 600 >/dev/null 2>&1) &
    podman_cmd run -d --network none "$ref" sleep 600 >/dev/null
done
for _ in $(seq 100); do
    [ "$(sandbox_cmd ps --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" -ge 20 ] && break
    sleep 0.2
done
ps_sandbox() { for _ in $(seq 10); do sandbox_cmd ps; done; }
ps_podman() { for _ in $(seq 10); do podman_cmd ps; done; }
s=$(median_of nothing ps_sandbox)
p=$(median_of nothing ps_podman)
row "ps, 20 running (x10)" "$s" "$p"
