#!/usr/bin/env bash
# Latency benchmark: what a build's hundreds of small requests feel like on each network path.
# Every server is on the host's loopback (or inside the sandbox, for a published port), so
# nothing leaves this machine but the optional PyPI part.
#   round trips:  `roundtrip` (tests/probes/roundtrip.c): ROUNDS round trips on one
#                 connection, both ends TCP_NODELAY, each 8-byte message written in two
#                 halves; a run's figure is its median, the table shows the median of RUNS runs,
#                 in three placements:
#                   one core   everything on CPU 0;
#                   two cores  the sandbox's side (the client, sandbox with its keeper, pasta
#                              or slirp4netns) on CPU 1, the host's side (the server) on CPU 0;
#                   unpinned   where the scheduler puts them.
#                 Unpinned figures are for the table only: a wake-up on another, idle CPU
#                 costs far more than the path itself (35-55 µs on a 2-vCPU VM), and whether
#                 the 2 or 3 tasks of a path share a CPU is decided afresh on each connection,
#                 so each path's figure swings about 2x from run to run (the host's as much as
#                 the others'). The targets are judged in both fixed placements.
#   TLS:          full TLS 1.3 handshakes (connect, handshake, one byte each way), one after
#                 another, to a loopback TLS server; median of RUNS runs of HANDSHAKES each
#   pip:          `pip download` of a pinned set of 30 generated wheels (with dependencies)
#                 from a loopback HTTPS index (keep-alive), the whole command timed; median
#                 of RUNS runs. Then the same for a pinned set from PyPI, for the table only
#                 (SANDBOX_BENCH_SKIP_PACKAGE_REGISTRIES=1 leaves it out).
#
#   bench/latency.sh              # RUNS=5 ROUNDS=1000 HANDSHAKES=200 by default
#
# Paths: the host itself (no sandbox); sandbox's relay (the default network), its forwarder
# (`[network] allow`) and a port published through the relay; pasta and slirp4netns. The
# sandbox reaches the host's loopback with --host-loopback (host.containers.internal).
# Targets: relay and published-port round trips within 1.5x slirp4netns and 3x the host; the
# forwarder within 1.5x the relay (each in one core and in two cores); pip from the loopback
# index within 1.3x pasta.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
rounds=${ROUNDS:-1000}
handshakes=${HANDSHAKES:-200}
# shellcheck source=bench/lib.sh
source bench/lib.sh
for tool in pasta slirp4netns openssl /usr/bin/python3 cc; do
    command -v "$tool" >/dev/null || { echo "error: $tool is missing (scripts/host-packages.sh installs it)" >&2; exit 1; }
done
/usr/bin/python3 -m pip --version >/dev/null 2>&1 || { echo "error: Debian's python3-pip is missing" >&2; exit 1; }

mkdir -p "$work/bin"
# shellcheck source=bench/index.sh
source bench/index.sh
make_tls_certificates "$work/bin"
cc -static -O2 -o "$work/bin/roundtrip" tests/probes/roundtrip.c
cp /etc/ssl/certs/ca-certificates.crt "$work/bin/host-cas.pem"
chmod -R a+rX "$work/bin"
[ -n "$user" ] && chown -R "$user:" "$work/bin"
next_port() { shuf -i 20000-40000 -n 1; }
[ "$(nproc)" -ge 2 ] || { echo "error: the two-core placement needs 2 CPUs; this machine has $(nproc)" >&2; exit 1; }
all_cpus=0-$(($(nproc) - 1))
# The CPUs of the sandbox's side and the host's side in each placement.
declare -A sandbox_cpus=([one-core]=0 [two-cores]=1 [unpinned]=$all_cpus)
declare -A host_cpus=([one-core]=0 [two-cores]=0 [unpinned]=$all_cpus)
placements=(one-core two-cores unpinned)
placement=unpinned
# Runs a command on the CPUs of side $1 (sandbox|host) in the current placement.
on_side() {
    local side=$1; shift
    local cpus
    if [ "$side" = sandbox ]; then cpus=${sandbox_cpus[$placement]}; else cpus=${host_cpus[$placement]}; fi
    taskset -c "$cpus" "$@"
}

# --- the servers, on the host's loopback ---
rt_port=$(next_port)
"$work/bin/roundtrip" serve "$rt_port" &
servers=($!)
tls_port=$(next_port)
/usr/bin/python3 - "$tls_port" "$work/bin/cert.pem" "$work/bin/key.pem" <<'PY' &
import socket, ssl, sys, threading
port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
listener = socket.create_server(("127.0.0.1", port), backlog=128)
def serve(raw):
    try:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with context.wrap_socket(raw, server_side=True) as s:
            if s.recv(1):
                s.sendall(b"y")
    except OSError:
        pass
while True:
    raw, _ = listener.accept()
    threading.Thread(target=serve, args=(raw,), daemon=True).start()
PY
servers+=($!)

start_wheel_index "$work/index"
servers+=("$index_server")
trap 'kill "${servers[@]}" 2>/dev/null || true; cleanup' EXIT

# --- how each path runs a command ---
sandbox_run() { # NETWORK(relay|pasta|slirp4netns|forwarder) ARGS... -- CMD
    local network=$1; shift
    local flags=(--host-loopback)
    if [ "$network" = forwarder ]; then
        allow "localhost:$rt_port" "localhost:$tls_port" "localhost:$index_port"
    else
        flags+=(--network "$network")
    fi
    local rc=0
    (cd "$work/project" && on_side sandbox "${as_user_prefix[@]}" "$work/sandbox" --root "$work/store" run "${flags[@]}" -v /usr:/usr:ro -v "$work/bin:/opt/bench:ro" --image "$ref" "$@") || rc=$?
    rm -f "$work/home/.config/sandbox/config.toml"
    return $rc
}
# The user's own allow-list (the floor that --image runs get), naming the loopback servers.
allow() {
    mkdir -p "$work/home/.config/sandbox"
    local list; list=$(printf '"%s",' "$@")
    printf '[network]\nallow = [%s]\n' "${list%,}" >"$work/home/.config/sandbox/config.toml"
    [ -n "$user" ] && chown -R "$user:" "$work/home/.config"
    return 0
}
# Where the host's loopback is, inside, for each path (the forwarder: a name it allows).
host_inside() {
    case $1 in
        host | forwarder) echo localhost ;;
        *) echo host.containers.internal ;;
    esac
}
median() { sort -n | awk '{a[NR]=$1} END {if (NR == 0) exit 1; print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN{print (r <= t) ? "ok" : "MISSED"}'; }

# Median (µs) of one `roundtrip ask` run's round trips, on path $1.
roundtrip_once() {
    local path=$1
    case $path in
        host) on_side sandbox "$work/bin/roundtrip" ask 127.0.0.1 "$rt_port" "$rounds" ;;
        forwarder) sandbox_run forwarder -- /opt/bench/roundtrip ask 127.0.0.1 3128 "$rounds" "localhost:$rt_port" ;;
        *) sandbox_run "$path" -- sh -c "a=\$(grep host.containers.internal /etc/hosts | cut -f1); /opt/bench/roundtrip ask \$a $rt_port $rounds" ;;
    esac | median
}
# The same from the host to a server inside, through a port published by $1.
published_once() {
    on_side host "$work/bin/roundtrip" ask 127.0.0.1 "$1" "$rounds" | median
}
# Median (ms) of one run of sequential TLS handshakes on path $1.
tls_once() {
    local path=$1 name; name=$(host_inside "$path")
    local client="/usr/bin/python3 -c '
import socket, ssl, statistics, sys, time
context = ssl.create_default_context(cafile=\"/opt/bench/ca.pem\")
times = []
for _ in range($handshakes):
    start = time.perf_counter()
    with socket.create_connection((\"$name\", $tls_port)) as raw:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with context.wrap_socket(raw, server_hostname=\"$name\") as s:
            s.sendall(b\"x\")
            s.recv(1)
    times.append(time.perf_counter() - start)
print(statistics.median(times) * 1000)
'"
    case $path in
        host) sh -c "${client//\/opt\/bench/$work/bin}" ;;
        *) sandbox_run "$path" -- sh -c "$client" ;;
    esac
}
# pip's environment, the same on every path: only the CAs in $1 (the host's own variables
# would win over --cert), no config file, no local wheels.
pip_env() {
    echo "env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CERT=$1 REQUESTS_CA_BUNDLE=$1 SSL_CERT_FILE=$1 CURL_CA_BUNDLE=$1"
}
# Seconds of one `pip download $3` in the environment $2 (pip_env's) on path $1 (the host's
# own, or inside a sandbox).
pip_timed() {
    local path=$1
    local pip="$2 /usr/bin/python3 -m pip download -q --no-cache-dir -d \$(mktemp -d) $3"
    local start end
    start=$(date +%s.%N)
    case $path in
        host) as_user sh -c "${pip//\/opt\/bench/$work/bin}" >/dev/null ;;
        *) sandbox_run "$path" -- sh -c "$pip" >/dev/null ;;
    esac || { echo "error: pip download failed on path $path" >&2; exit 1; }
    end=$(date +%s.%N)
    awk -v s="$start" -v e="$end" 'BEGIN{printf "%.3f\n", e - s}'
}
# The pinned set from the loopback index, on path $1.
pip_once() {
    pip_timed "$1" "$(pip_env /opt/bench/ca.pem)" "--index-url https://$(host_inside "$1"):$index_port/simple/ $pinned_wheels"
}
# A pinned set from PyPI (through this machine's egress), with the host's CAs.
pypi_once() {
    pip_timed "$1" "$(pip_env /opt/bench/host-cas.pem)" "requests==2.32.3 pytest==8.3.3 flask==3.0.3"
}
# Median of RUNS runs of `$1 PATH`.
runs_of() {
    for _ in $(seq "$runs"); do "$@"; done | median
}

paths=(host relay forwarder pasta slirp4netns)
declare -A rt tls pip
echo "round trips: median of $runs runs of $rounds; TLS: median of $runs runs of $handshakes handshakes; pip: median of $runs runs"
# Published ports: a server inside a sandbox on the sandbox's side, the host asking from its
# side; one sandbox each, started for each placement.
# Each in a project dir of its own: a `run` in the same project would join it.
start_published() {
    declare -gA published_port published_server
    for helper in relay pasta; do
        local p; p=$(next_port)
        mkdir -p "$work/published-$helper"
        [ -n "$user" ] && chown "$user:" "$work/published-$helper"
        (cd "$work/published-$helper" && exec taskset -c "${sandbox_cpus[$placement]}" "${as_user_prefix[@]}" "$work/sandbox" --root "$work/store" run --network "$helper" -p "$p:7000" -v "$work/bin:/opt/bench:ro" --image "$ref" -- /opt/bench/roundtrip serve 7000 2>/dev/null) &
        published_server[$helper]=$!
        servers+=("${published_server[$helper]}")
        published_port[$helper]=$p
        # The port accepts before the server inside listens: wait for a whole round trip.
        for _ in $(seq 200); do
            "$work/bin/roundtrip" ask 127.0.0.1 "$p" 1 >/dev/null 2>&1 && break
            sleep 0.05
        done
    done
}
# Both end first: end_sandbox waits until no sandbox runs at all.
end_published() {
    for helper in relay pasta; do
        kill -TERM "${published_server[$helper]}" 2>/dev/null || true
    done
    for helper in relay pasta; do
        end_sandbox "${published_server[$helper]}"
    done
}
# Round trips are taken in turns (a run of each path, then the next run of each), so a spell
# in which this machine is faster or slower falls on every path alike.
declare -A rt_runs
for placement in "${placements[@]}"; do
    # The host's server (and the connections it forks from now on) on the host's side.
    taskset -a -p -c "${host_cpus[$placement]}" "${servers[0]}" >/dev/null
    start_published
    for _ in $(seq "$runs"); do
        for path in "${paths[@]}"; do
            rt_runs[$placement/$path]+="$(roundtrip_once "$path") "
        done
        for helper in relay pasta; do
            rt_runs[$placement/published-$helper]+="$(published_once "${published_port[$helper]}") "
        done
    done
    end_published
    for path in "${paths[@]}" published-relay published-pasta; do
        # shellcheck disable=SC2086
        rt[$placement/$path]=$(printf '%s\n' ${rt_runs[$placement/$path]} | median)
    done
done
placement=unpinned
taskset -a -p -c "$all_cpus" "${servers[0]}" >/dev/null

printf '%-26s %28s %16s %14s\n' "" "round trip µs" "TLS handshake" "pip (index)"
printf '%-26s %9s %9s %9s %16s %14s\n' path "one core" "two cores" unpinned ms s
for path in "${paths[@]}"; do
    tls[$path]=$(runs_of tls_once "$path")
    pip[$path]=$(runs_of pip_once "$path")
    printf '%-26s %9s %9s %9s %16.2f %14s\n' "$path" "${rt[one-core/$path]}" "${rt[two-cores/$path]}" "${rt[unpinned/$path]}" "${tls[$path]}" "${pip[$path]}"
done
for helper in relay pasta; do
    printf '%-26s %9s %9s %9s\n' "published port ($helper)" "${rt[one-core/published-$helper]}" "${rt[two-cores/published-$helper]}" "${rt[unpinned/published-$helper]}"
done

echo
echo "targets (round trips in one core / two cores; unpinned for the table only):"
# target NAME A B LIMIT: A/B in each placement, judged in the fixed ones.
target() {
    local name=$1 a=$2 b=$3 limit=$4 line="" verdicts="" r
    for placement in "${placements[@]}"; do
        r=$(ratio "${rt[$placement/$a]}" "${rt[$placement/$b]}")
        if [ "$placement" = unpinned ]; then
            line+=" ($r unpinned)"
        else
            line+=" $r"
            [ "$(verdict "$r" "$limit")" = ok ] || verdicts=MISSED
        fi
    done
    printf '  %-36s %-30s (<= %s) %s\n' "$name" "$line" "$limit" "${verdicts:-ok}"
}
target "relay / slirp4netns round trip" relay slirp4netns 1.5
target "relay / host round trip" relay host 3.0
target "published / slirp4netns round trip" published-relay slirp4netns 1.5
target "published / host round trip" published-relay host 3.0
target "forwarder / relay round trip" forwarder relay 1.5
r=$(ratio "${pip[relay]}" "${pip[pasta]}"); printf '  %-36s %-30s (<= 1.3) %s\n' "relay / pasta pip download (index)" " $r" "$(verdict "$r" 1.3)"
echo "  (TLS handshake: relay / pasta $(ratio "${tls[relay]}" "${tls[pasta]}"), relay / host $(ratio "${tls[relay]}" "${tls[host]}"))"

echo
if [ -n "${SANDBOX_BENCH_SKIP_PACKAGE_REGISTRIES:-}" ]; then
    echo "pip download from PyPI: skipped (SANDBOX_BENCH_SKIP_PACKAGE_REGISTRIES is set)"
else
    echo "pip download requests==2.32.3 pytest==8.3.3 flask==3.0.3 from PyPI (median of $runs runs; for the table, not a target):"
    for path in host relay pasta; do
        printf '  %-26s %8s s\n' "$path" "$(runs_of pypi_once "$path")"
    done
fi
