#!/usr/bin/env bash
# Installs what the tests need and runs them all. As root (CI), the end-to-end tests run the
# binary as $SANDBOX_TEST_USER (default sandbox-test, created here); as an ordinary user they
# run it as you, which needs your own /etc/subuid and /etc/subgid ranges.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/host-packages.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --locked --no-fail-fast "$@"
else
    cargo test --locked --no-fail-fast "$@"
fi
