#!/usr/bin/env bash
# Installs what the tests need and runs them all. As root (CI), the end-to-end tests run the
# binary as $SANDBOX_TEST_USER (default sandbox-test, created here); as an ordinary user they
# run it as you, which needs your own /etc/subuid and /etc/subgid ranges.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/host-packages.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The fuzz targets (bench/fuzz.sh runs them) build against the crate as it is: moving a module
# must not break them unseen.
(cd fuzz && RUSTC_BOOTSTRAP=1 cargo check --locked -q)
# No two modules import each other, directly or round a loop (crate::, super:: and re-exports).
python3 scripts/check-cycles.py src
# ...and the check itself still sees a cycle, here one through a parent's re-export.
cycle=$(mktemp -d)
mkdir "$cycle/a"
printf 'pub mod a;\n' >"$cycle/lib.rs"
printf 'mod b;\npub use b::Thing;\npub struct Other;\n' >"$cycle/a/mod.rs"
printf 'pub struct Thing(crate::a::Other);\n' >"$cycle/a/b.rs"
if python3 scripts/check-cycles.py "$cycle" >/dev/null; then
    echo "error: scripts/check-cycles.py missed the cycle a -> a::b -> a" >&2
    exit 1
fi
rm -r "$cycle"
# Opt-outs (see CONTRIBUTING.md): each variable leaves its tests out of the run, which the
# runner then reports as skipped, never as passed.
declare -A opt_outs=(
    [SANDBOX_TEST_SKIP_DNS]="names_resolve_through_the_helpers_dns_forwarder"
    [SANDBOX_TEST_SKIP_PRIVATE_ETC]="a_listed_name_on_a_mapped_ipv6_address_of_the_host_is_refused
        the_hosts_proxy_never_dials_the_host_or_a_malformed_name"
    [SANDBOX_TEST_SKIP_ENOSPC]="a_full_disk_is_named_and_leaves_nothing_half_written"
    [SANDBOX_TEST_SKIP_DEBIAN_MIRROR]="java_and_php_projects_build_with_packages_from_the_debian_mirror
        mvnw_and_composer_build_offline_with_packages_from_the_debian_mirror
        a_jvm_sizes_its_heap_by_the_sandboxs_memory_limit"
    [SANDBOX_TEST_SKIP_PACKAGE_REGISTRIES]="pip_and_npm_reach_their_registries_with_toolchain_and_nothing_more"
    # The tests that delegate cgroup v1 subtrees to the test user (as root).
    [SANDBOX_TEST_SKIP_CGROUPS]="a_command_over_the_memory_limit_is_killed_and_sandbox_says_so
        the_pids_limit_makes_fork_fail_inside_only
        a_command_joining_a_running_sandbox_is_held_by_its_limits
        the_sandbox_sees_its_own_limits_read_only_at_sys_fs_cgroup
        what_a_killed_sandbox_left_in_its_cgroups_is_collected_by_the_next_run
        stats_say_what_a_run_cost_from_rusage_or_the_cgroup
        half_a_cpu_is_half_a_cpu
        doctor_reports_this_machines_facts_and_the_fix_for_cgroups
        stats_show_a_running_sandbox
        a_jvm_sizes_its_heap_by_the_sandboxs_memory_limit"
    # The two VM journeys (tests/e2e/vm.rs): Debian 12 and 13 guests under qemu.
    [SANDBOX_TEST_SKIP_VMS]="debian_12_guest_journey debian_13_guest_journey"
)
# Each opt-out still names a test that exists (a renamed test would escape its opt-out).
all_tests=$(cargo nextest list --workspace --locked --message-format oneline 2>/dev/null || true)
for variable in "${!opt_outs[@]}"; do
    for t in ${opt_outs[$variable]}; do
        if [ -n "$all_tests" ] && ! grep -qE "(^| |::)$t\$" <<<"$all_tests"; then
            echo "error: $variable names $t, which is no test (renamed?): update scripts/test.sh" >&2
            exit 1
        fi
    done
done
skipped=()
for variable in "${!opt_outs[@]}"; do
    if [ -n "${!variable:-}" ]; then
        # shellcheck disable=SC2206
        skipped+=(${opt_outs[$variable]})
    fi
done
for t in "${skipped[@]}"; do echo "skipped by its opt-out variable: $t" >&2; done
if cargo nextest --version >/dev/null 2>&1; then
    filter=()
    if [ ${#skipped[@]} -gt 0 ]; then
        expr=$(printf ' | test(/(^|::)%s$/)' "${skipped[@]}")
        filter=(-E "not (${expr# | })")
    fi
    cargo nextest run --workspace --locked --no-fail-fast "${filter[@]}" "$@"
else
    skip_args=()
    for t in "${skipped[@]}"; do skip_args+=(--skip "$t"); done
    cargo test --workspace --locked --no-fail-fast "$@" -- "${skip_args[@]}"
fi
