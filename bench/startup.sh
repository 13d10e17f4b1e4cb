#!/usr/bin/env bash
# Start-up benchmark: `sandbox run --network none -- true` on a present image, against
# `bwrap --unshare-all --seccomp ... true` on the same root file system (with a filter shaped
# like sandbox's default, from bench/seccomp-filter.py) and, when installed,
# `podman run --rm --network none ... true`, timed with hyperfine in one run; also with the
# default network (sandbox's relay), with pasta and slirp4netns, and with an allow-list
# (sandbox's egress forwarder). The run without
# the seccomp filter shows what the filter costs. Also reports sandbox's own peak RSS while a
# command runs. Needs hyperfine, bubblewrap and python3-seccomp (Debian packages).
#
#   bench/startup.sh              # RUNS=30 by default
#
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-30}
command -v hyperfine >/dev/null || { echo "error: hyperfine is missing (Debian: apt-get install hyperfine)" >&2; exit 1; }
# shellcheck source=bench/lib.sh
source bench/lib.sh
/usr/bin/python3 -c 'import seccomp' 2>/dev/null || { echo "error: python3-seccomp is missing (Debian: apt-get install python3-seccomp)" >&2; exit 1; }
layer=$(ls -d "$work"/store/layers/*/root | head -n 1)
delegated=()
/usr/bin/python3 bench/seccomp-filter.py "$work/filter.bpf"
chmod 0644 "$work/filter.bpf"
cmds=(
    "cd $work/project && $work/sandbox --root $work/store run --network none --image $ref -- true"
    "bwrap --unshare-all --die-with-parent --new-session --ro-bind $layer / --dev /dev --proc /proc --tmpfs /tmp --seccomp 9 /bin/true 9<$work/filter.bpf"
    "cd $work/project && $work/sandbox --root $work/store run --network none --security-opt seccomp=unconfined --image $ref -- true"
)
names=(sandbox bwrap sandbox-unconfined)
# The default network: sandbox's relay (no helper program).
cmds+=("cd $work/project && $work/sandbox --root $work/store run --image $ref -- true")
names+=(sandbox-default)
# The network helpers' share of start-up (they need /dev/net/tun usable by the user).
for helper in pasta slirp4netns; do
    if command -v "$helper" >/dev/null; then
        cmds+=("cd $work/project && $work/sandbox --root $work/store run --network $helper --image $ref -- true")
        names+=("sandbox-$helper")
    fi
done
# An allow-list (the user's floor, which --image runs get too, in a config of its own so the
# default above stays the default): sandbox's own forwarder.
mkdir -p "$work/allow-config/sandbox"
printf '[network]\nallow = ["example.org"]\n' >"$work/allow-config/sandbox/config.toml"
[ -n "$user" ] && chown -R "$user:" "$work/allow-config"
cmds+=("cd $work/project && XDG_CONFIG_HOME=$work/allow-config $work/sandbox --root $work/store run --image $ref -- true")
names+=(sandbox-allow)
if podman_ready; then
    cmds+=("podman $podman_args run --rm --network none $ref true")
    names+=(podman)
    cmds+=("podman $podman_args run --rm $ref true")
    names+=(podman-default-net)
fi
# Through a shell (hyperfine subtracts the shell's own start-up), so the project dir can be set.
hyperfine_args=(--warmup 3 --runs "$runs" --export-json "$work/times.json")
for i in "${!cmds[@]}"; do hyperfine_args+=(-n "${names[$i]}" "${cmds[$i]}"); done
as_user hyperfine "${hyperfine_args[@]}" >/dev/null 2>&1 || as_user hyperfine "${hyperfine_args[@]}"

median() { python3 -c "import json,sys; d=json.load(open('$work/times.json')); print([r['median'] for r in d['results'] if r['command']=='$1'][0]*1000)"; }
sandbox_ms=$(median sandbox); bwrap_ms=$(median bwrap)
printf '%-40s %8.2f ms\n' "sandbox run --network none -- true" "$sandbox_ms"
printf '%-40s %8.2f ms   sandbox/bwrap = %.2f (target <= 1.5)\n' "bwrap --unshare-all --seccomp ... true" "$bwrap_ms" "$(awk -v a="$sandbox_ms" -v b="$bwrap_ms" 'BEGIN{print a/b}')"
default_ms=$(median sandbox-default)
printf '%-40s %8.2f ms   total/bwrap = %.2f (target <= 3); adds %.2f ms to --network none\n' \
    "sandbox run -- true (default: relay)" "$default_ms" \
    "$(awk -v a="$default_ms" -v b="$bwrap_ms" 'BEGIN{print a/b}')" \
    "$(awk -v a="$default_ms" -v s="$sandbox_ms" 'BEGIN{print a-s}')"
unconfined_ms=$(median sandbox-unconfined)
printf '%-40s %8.2f ms   the filter costs %.2f ms\n' "  ... --security-opt seccomp=unconfined" "$unconfined_ms" "$(awk -v a="$sandbox_ms" -v b="$unconfined_ms" 'BEGIN{print a-b}')"
for helper in pasta slirp4netns; do
    if [[ " ${names[*]} " == *" sandbox-$helper "* ]]; then
        ms=$(median "sandbox-$helper")
        # The issue's target is on what the helper adds to start-up, in units of bwrap's time.
        printf '%-40s %8.2f ms   total/bwrap = %.2f; adds %.2f ms = %.2f x bwrap (target for pasta: adds <= 8 x)\n' \
            "sandbox run --network $helper -- true" "$ms" \
            "$(awk -v a="$ms" -v b="$bwrap_ms" 'BEGIN{print a/b}')" \
            "$(awk -v a="$ms" -v s="$sandbox_ms" 'BEGIN{print a-s}')" \
            "$(awk -v a="$ms" -v s="$sandbox_ms" -v b="$bwrap_ms" 'BEGIN{print (a-s)/b}')"
    fi
done
# Runs spaced as a user types them (hyperfine --prepare 'sleep 0.3'): a pasta network is
# then a warm one, prepared while nothing ran. Back to back (above), pasta's own start-up
# (about 20 ms of CPU, mostly zeroing its buffers) competes with the next run on a small
# machine, prepared or not.
if command -v pasta >/dev/null; then
    spaced_args=(--warmup 3 --runs "$runs" --prepare "sleep 0.3" --export-json "$work/spaced.json")
    spaced_args+=(-n none "${cmds[0]}" -n bwrap "${cmds[1]}")
    spaced_args+=(-n pasta "cd $work/project && $work/sandbox --root $work/store run --network pasta --image $ref -- true")
    as_user hyperfine "${spaced_args[@]}" >/dev/null 2>&1 || as_user hyperfine "${spaced_args[@]}"
    spaced() { python3 -c "import json; d=json.load(open('$work/spaced.json')); print([r['median'] for r in d['results'] if r['command']=='$1'][0]*1000)"; }
    s_none=$(spaced none); s_bwrap=$(spaced bwrap); s_pasta=$(spaced pasta)
    printf '%-40s %8.2f ms   total/bwrap = %.2f (target <= 3); none: %.2f ms, bwrap: %.2f ms\n' \
        "  spaced 0.3 s, --network pasta (warm)" "$s_pasta" \
        "$(awk -v a="$s_pasta" -v b="$s_bwrap" 'BEGIN{print a/b}')" "$s_none" "$s_bwrap"
fi
allow_ms=$(median sandbox-allow)
printf '%-40s %8.2f ms   total/bwrap = %.2f; adds %.2f ms to --network none\n' \
    "sandbox run -- true with [network] allow" "$allow_ms" \
    "$(awk -v a="$allow_ms" -v b="$bwrap_ms" 'BEGIN{print a/b}')" \
    "$(awk -v a="$allow_ms" -v s="$sandbox_ms" 'BEGIN{print a-s}')"
if [[ " ${names[*]} " == *" podman "* ]]; then
    podman_ms=$(median podman)
    printf '%-40s %8.2f ms   sandbox/podman = %.3f\n' "podman run --rm --network none true" "$podman_ms" "$(awk -v a="$sandbox_ms" -v b="$podman_ms" 'BEGIN{print a/b}')"
    printf '%-40s %8.2f ms\n' "podman run --rm true (slirp4netns)" "$(median podman-default-net)"
fi

# The same in turns (hyperfine runs each benchmark to its end before the next, so drift on a
# busy machine lands on one side of a ratio).
# As root, a cgroup v1 subtree per controller is delegated to the user beneath this script's
# own cgroups (as the tests do), so the cost of limits is measured too.
limits=""
if [ "$(id -u)" = 0 ] && [ -d /sys/fs/cgroup/memory ] && [ -d /sys/fs/cgroup/pids ]; then
    table=""
    for c in memory pids cpu cpuacct blkio; do
        own=$(awk -F: -v c="$c" '{n=split($2,a,","); for(i=1;i<=n;i++) if(a[i]==c) print $3}' /proc/self/cgroup)
        dir=/sys/fs/cgroup/$c${own%/}/sandbox-bench-$$
        mkdir -p "$dir" && chown "$user" "$dir" "$dir/cgroup.procs" && table+="$c = \"$dir\"\n"
        delegated+=("$dir")
    done
    mkdir -p "$work/home/.config/sandbox"
    printf "[cgroups.v1]\n$table" > "$work/home/.config/sandbox/config.toml"
    chown -R "$user" "$work/home/.config"
    limits=limits
fi
echo "in turns, ${ROUNDS:-200} rounds:"
as_user /usr/bin/python3 bench/interleaved.py "$work" "$ref" "$layer" "${ROUNDS:-200}" $limits
for dir in "${delegated[@]}"; do rmdir "$dir"/* "$dir" 2>/dev/null || true; done

# Peak RSS of sandbox's own processes (monitor and pid 1) while a command runs.
(cd "$work/project" && as_user "$work/sandbox" --root "$work/store" run --network none --image "$ref" -- sleep 1) &
sleep 0.5
# (sandbox blanks its arguments once parsed: match on argv[0] alone.)
for pid in $(pgrep -f "^$work/sandbox" || true); do
    printf '%-40s %8s kB (%s)\n' "peak RSS of sandbox process $pid" "$(awk '/VmHWM/{print $2}' /proc/$pid/status 2>/dev/null)" "$(tr '\0' ' ' </proc/$pid/cmdline | cut -c1-20)"
done
wait
