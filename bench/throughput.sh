#!/usr/bin/env bash
# Throughput benchmark: a large transfer between the host and a server inside the sandbox,
# through a published port, for each network helper; the same through podman's default
# network when podman is installed, and straight over the host's loopback as the ceiling.
#   download: the host fetches a file from busybox httpd inside (curl);
#   upload:   the host sends a file to `nc -l` inside, which discards it.
#
#   bench/throughput.sh           # SIZE_MB=1024, RUNS=3 (median) by default
#
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${SIZE_MB:-1024}
runs=${RUNS:-3}
# shellcheck source=bench/lib.sh
source bench/lib.sh
truncate -s "${size_mb}M" "$work/project/big"
[ -n "$user" ] && chown "$user:" "$work/project/big"

# Waits until something answers HTTP on 127.0.0.1:$1.
wait_http() {
    for _ in $(seq 200); do
        curl -fsS -o /dev/null -r 0-0 "http://127.0.0.1:$1/big" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "error: nothing answered on 127.0.0.1:$1" >&2
    return 1
}

# Median download rate in MB/s from http://127.0.0.1:$1/big.
download() {
    for _ in $(seq "$runs"); do
        curl -fsS -o /dev/null -w '%{speed_download}\n' "http://127.0.0.1:$1/big"
    done | sort -n | awk '{a[NR]=$1} END {printf "%.0f", a[int((NR+1)/2)]/1e6}'
}

# A receiver's script: `nc -l` on port $1 discarding what comes, which touches ./ready once
# it listens (a published port accepts before the server inside listens).
receiver_script() {
    printf 'busybox nc -l -p %s >/dev/null & while ! cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | grep -qiE ":%04X 0+:0000 0A"; do :; done; : >ready; wait' "$1" "$1"
}

# Sends the file to 127.0.0.1:$1 once the receiver is ready, and waits for it to close;
# prints MB/s.
send_file() {
    python3 - "$1" "$work/project/big" "$work/project/ready" <<'PY'
import socket, sys, time, os
port, path, ready = int(sys.argv[1]), sys.argv[2], sys.argv[3]
deadline = time.time() + 20
while not os.path.exists(ready):
    if time.time() > deadline:
        sys.exit("error: the receiver did not start listening")
    time.sleep(0.01)
os.unlink(ready)
s = socket.create_connection(("127.0.0.1", port))
size = os.path.getsize(path)
start = time.time()
with open(path, "rb") as f:
    s.sendfile(f)
s.shutdown(socket.SHUT_WR)
while s.recv(65536):
    pass
print(f"{size / (time.time() - start) / 1e6:.0f}")
PY
}

# Median upload rate: $1 starts a receiver on port $2 that exits after one connection.
upload() {
    local start=$1 port=$2
    for _ in $(seq "$runs"); do
        $start "$port" &
        local receiver=$!
        send_file "$port"
        wait "$receiver" || true
    done | sort -n | awk '{a[NR]=$1} END {printf "%.0f", a[int((NR+1)/2)]}'
}

next_port() { shuf -i 20000-40000 -n 1; }

report() { printf '%-34s download %6s MB/s   upload %6s MB/s\n' "$1" "$2" "$3"; }

# The ceiling: the same tools straight over the host's loopback.
p=$(next_port)
busybox httpd -f -p "127.0.0.1:$p" -h "$work/project" &
server=$!
wait_http "$p"
down=$(download "$p")
kill "$server"
host_receiver() { (cd "$work/project" && sh -c "$(receiver_script "$1")"); }
p=$(next_port)
up=$(upload host_receiver "$p")
report "host loopback (no sandbox)" "$down" "$up"

for helper in relay pasta slirp4netns; do
    [ "$helper" = relay ] || command -v "$helper" >/dev/null || { echo "$helper: not installed, skipped"; continue; }
    p=$(next_port)
    (cd "$work/project" && exec_as_user "$work/sandbox" --root "$work/store" run --network "$helper" -p "$p:80" --image "$ref" -- busybox httpd -f -p 80 -h . 2>/dev/null) 2>/dev/null &
    server=$!
    wait_http "$p"
    down=$(download "$p")
    end_sandbox "$server"
    sandbox_receiver() {
        cd "$work/project" && as_user "$work/sandbox" --root "$work/store" run --network "$helper" -p "$1:81" --image "$ref" -- sh -c "$(receiver_script 81)"
    }
    p=$(next_port)
    up=$(upload sandbox_receiver "$p")
    report "sandbox --network $helper" "$down" "$up"
done

if podman_ready; then
    p=$(next_port)
    # shellcheck disable=SC2086
    as_user podman $podman_args run --rm --name bench-httpd -p "127.0.0.1:$p:80" -v "$work/project:/www" "$ref" busybox httpd -f -p 80 -h /www &
    server=$!
    wait_http "$p"
    down=$(download "$p")
    # shellcheck disable=SC2086
    as_user podman $podman_args stop -t 2 bench-httpd >/dev/null
    wait "$server" || true
    podman_receiver() {
        # shellcheck disable=SC2086
        as_user podman $podman_args run --rm -p "127.0.0.1:$1:81" -v "$work/project:/www" -w /www "$ref" sh -c "$(receiver_script 81)"
    }
    p=$(next_port)
    up=$(upload podman_receiver "$p")
    report "podman (default network)" "$down" "$up"
else
    echo "podman: not installed, skipped"
fi

# Egress: the sandbox downloads from a server on the host's loopback (busybox wget inside, the
# whole run timed), through pasta and the relay (open) and through sandbox's egress forwarder (an
# allow-list naming the server: the user's floor, which --image runs get). Target: the
# forwarder at least 80% of pasta's rate.
p=$(next_port)
busybox httpd -f -p "127.0.0.1:$p" -h "$work/project" &
server=$!
wait_http "$p"
# Median MB/s of `sandbox run ARGS -- wget URL` over the whole run.
egress_rate() {
    local url=$1; shift
    for _ in $(seq "$runs"); do
        local start end
        start=$(date +%s.%N)
        (cd "$work/project" && as_user "$work/sandbox" --root "$work/store" run --host-loopback --image "$ref" "$@" -- busybox wget -q -O /dev/null "$url")
        end=$(date +%s.%N)
        awk -v s="$start" -v e="$end" -v mb="$size_mb" 'BEGIN{printf "%.0f\n", mb * 1.048576 / (e - s)}'
    done | sort -n | awk '{a[NR]=$1} END {printf "%.0f", a[int((NR+1)/2)]}'
}
pasta_rate=""
if command -v pasta >/dev/null; then
    pasta_rate=$(egress_rate "http://host.containers.internal:$p/big" --network pasta)
    printf '%-34s download %6s MB/s\n' "egress through pasta" "$pasta_rate"
fi
relay_rate=$(egress_rate "http://host.containers.internal:$p/big")
if [ -n "$pasta_rate" ]; then
    printf '%-34s download %6s MB/s   relay/pasta = %s\n' "egress through the relay (default)" "$relay_rate" \
        "$(awk -v a="$relay_rate" -v b="$pasta_rate" 'BEGIN{printf "%.2f", a/b}')"
else
    printf '%-34s download %6s MB/s\n' "egress through the relay (default)" "$relay_rate"
fi
mkdir -p "$work/home/.config/sandbox"
printf '[network]\nallow = ["localhost:%s"]\n' "$p" >"$work/home/.config/sandbox/config.toml"
[ -n "$user" ] && chown -R "$user:" "$work/home/.config"
allow_rate=$(egress_rate "http://localhost:$p/big")
rm -f "$work/home/.config/sandbox/config.toml"
kill "$server"
if [ -n "$pasta_rate" ]; then
    printf '%-34s download %6s MB/s   forwarder/pasta = %s (target >= 0.8)\n' "egress through [network] allow" "$allow_rate" \
        "$(awk -v a="$allow_rate" -v b="$pasta_rate" 'BEGIN{printf "%.2f", a/b}')"
else
    printf '%-34s download %6s MB/s\n' "egress through [network] allow" "$allow_rate"
fi
