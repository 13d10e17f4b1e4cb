#!/usr/bin/env bash
# `sandbox ps` with many sandboxes running: starts N one-command sandboxes (`sleep`), each in
# its own project dir, then times `sandbox ps` with hyperfine, beside `podman ps` with the
# same number of running containers when podman is installed.
#
#   bench/ps.sh            # COUNTS="50 100" by default
#
set -euo pipefail
cd "$(dirname "$0")/.."
counts=${COUNTS:-50 100}
runs=${RUNS:-20}
command -v hyperfine >/dev/null || { echo "error: hyperfine is missing (Debian: apt-get install hyperfine)" >&2; exit 1; }
# shellcheck source=bench/lib.sh
source bench/lib.sh
have_podman=0
podman_ready && have_podman=1
sandbox_cmd() { as_user "$work/sandbox" -q --root "$work/store" "$@"; }
stop_all() {
    for id in $(sandbox_cmd ps --json | python3 -c 'import json,sys; print(" ".join(r["id"] for r in json.load(sys.stdin)))'); do
        sandbox_cmd stop --time 0 "$id" >/dev/null 2>&1 || true
    done
    # shellcheck disable=SC2086
    [ "$have_podman" = 1 ] && as_user podman $podman_args rm -f -a -t 0 >/dev/null 2>&1 || true
    wait
}
trap 'stop_all; cleanup' EXIT
started=0
podman_running=0
for n in $counts; do
    while [ "$started" -lt "$n" ]; do
        mkdir -p "$work/p$started" && { [ -z "$user" ] || chown "$user:" "$work/p$started"; }
        (cd "$work/p$started" && sandbox_cmd run --network none --image "$ref" -- sleep 600 >/dev/null 2>&1) &
        # podman may hit the user's key quota (one session keyring per container) first.
        # shellcheck disable=SC2086
        if [ "$have_podman" = 1 ] && [ "$podman_running" = "$started" ]; then
            if as_user podman $podman_args run -d --network none "$ref" sleep 600 >/dev/null 2>"$work/podman.err"; then
                podman_running=$((podman_running + 1))
            else
                echo "podman: could not start container $((started + 1)): $(tail -n 1 "$work/podman.err")" >&2
            fi
        fi
        started=$((started + 1))
    done
    for _ in $(seq 100); do
        [ "$(sandbox_cmd ps --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" -ge "$n" ] && break
        sleep 0.2
    done
    args=(--warmup 3 --runs "$runs" --export-json "$work/ps.json" -n sandbox "$work/sandbox --root $work/store ps")
    with_podman=0
    [ "$have_podman" = 1 ] && [ "$podman_running" -ge "$n" ] && with_podman=1
    [ "$with_podman" = 1 ] && args+=(-n podman "podman $podman_args ps")
    as_user hyperfine -N "${args[@]}" >/dev/null 2>&1 || as_user hyperfine -N "${args[@]}"
    median() { python3 -c "import json; d=json.load(open('$work/ps.json')); print([r['median'] for r in d['results'] if r['command']=='$1'][0]*1000)"; }
    s=$(median sandbox)
    printf '%-36s %8.2f ms\n' "sandbox ps, $n running" "$s"
    if [ "$with_podman" = 1 ]; then
        p=$(median podman)
        printf '%-36s %8.2f ms   sandbox/podman = %.3f\n' "podman ps, $n running" "$p" "$(awk -v a="$s" -v b="$p" 'BEGIN{print a/b}')"
    fi
done
