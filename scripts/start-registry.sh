#!/usr/bin/env bash
# Starts Debian's docker-registry on 127.0.0.1:PORT with storage in DIR, in the background,
# and waits until it answers. Prints its pid.
#   scripts/start-registry.sh PORT DIR
set -euo pipefail
port=${1:?port}
dir=${2:?storage dir}
mkdir -p "$dir"
cat >"$dir/config.yml" <<YAML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $dir/data
http:
  addr: 127.0.0.1:$port
YAML
docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null && { echo "$pid"; exit 0; }
    sleep 0.05
done
echo "error: docker-registry did not start; see $dir/registry.log" >&2
exit 1
