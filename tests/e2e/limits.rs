//! `[limits]` and `--memory/--pids/--tmp` applied rootless on cgroup v1, through subtrees
//! delegated to the test user beneath the cgroups the test already runs in; what cannot be
//! applied is said, or with --require-limits refused.

use crate::support::cgroups::Delegation;
use crate::support::text;
use crate::support::TestEnv;

const PROBE: &str = include_str!("../probes/confine.c");

fn fixture() -> (TestEnv, crate::support::Registry, String) {
    let env = TestEnv::new();
    let (registry, image) = crate::support::pulled_busybox(
        &env,
        "limits/app",
        vec![crate::support::helper_entry(
            "bin/confine",
            "confine",
            PROBE,
        )],
    );
    (env, registry, image)
}

/// `sandbox run --network none FLAGS --image IMAGE -- COMMAND`.
fn image_args<'a>(image: &'a str, flags: &[&'a str], command: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run", "--network", "none"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["--image", image, "--"]);
    args.extend_from_slice(command);
    args
}

fn run_image(env: &TestEnv, image: &str, flags: &[&str], command: &[&str]) -> std::process::Output {
    env.run(&image_args(image, flags, command))
}

fn ok_image(env: &TestEnv, image: &str, flags: &[&str], command: &[&str]) -> String {
    env.ok(&image_args(image, flags, command))
}

fn fails_image(env: &TestEnv, image: &str, flags: &[&str], command: &[&str]) -> String {
    env.fails(&image_args(image, flags, command))
}

#[test]
fn a_command_over_the_memory_limit_is_killed_and_sandbox_says_so() {
    let (env, _registry, image) = fixture();
    let delegation = Delegation::new(&env, "sandbox-it-memory");
    let out = run_image(
        &env,
        &image,
        &["--memory", "64m"],
        &["confine", "alloc", "200"],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(137), "{stderr}");
    assert!(
        stderr.contains("sandbox: killed: out of memory (limit 64 MiB, peak "),
        "{stderr}"
    );
    // Within the limit it runs; and the container's cgroups are gone afterwards.
    let out = ok_image(
        &env,
        &image,
        &["--memory", "64m"],
        &["confine", "alloc", "16"],
    );
    assert_eq!(out.trim(), "alloc=16 MiB");
    delegation.wait_until_empty();
}

#[test]
fn the_pids_limit_makes_fork_fail_inside_only() {
    let (env, _registry, image) = fixture();
    let _delegation = Delegation::new(&env, "sandbox-it-pids");
    env.write(
        "project/sandbox.toml",
        &format!("[toolchain]\nimage = \"{image}\"\n[limits]\npids = 32\n"),
    );
    let out = env.run(&[
        "run",
        "--network",
        "none",
        "--",
        "sh",
        "-c",
        "for i in $(seq 100); do sleep 5 & done; echo looped",
    ]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("can't fork: Resource temporarily unavailable"),
        "100 processes started under pids = 32: {stderr}"
    );
    // The host is unaffected: the test user still starts processes.
    env.ok(&["run", "--network", "none", "--", "true"]);
}

#[test]
fn a_command_joining_a_running_sandbox_is_held_by_its_limits() {
    let (env, _registry, image) = fixture();
    let delegation = Delegation::new(&env, "sandbox-it-join");
    env.write(
        "project/sandbox.toml",
        &format!("[toolchain]\nimage = \"{image}\"\n[limits]\nmemory = \"64m\"\n"),
    );
    let mut running = env
        .command(&[
            "run",
            "--network",
            "none",
            "--",
            "sh",
            "-c",
            "touch up; sleep 30",
        ])
        .spawn()
        .unwrap();
    crate::support::wait_until_started(&env.path().join("project/up"), 20);
    // The second run joins the first (same project and image) and lands in its cgroup.
    let out = env.run(&["run", "--network", "none", "--", "confine", "alloc", "200"]);
    assert_eq!(out.status.code(), Some(137), "{}", text(&out.stderr));
    // It sees the limit as the first command does, in the same cgroup namespace.
    let out = env.ok(&[
        "run",
        "--network",
        "none",
        "--",
        "sh",
        "-c",
        "cat /proc/self/cgroup /sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]);
    assert!(
        out.contains("memory:/\n") && out.ends_with("67108864\n"),
        "{out}"
    );
    let id = serde_json::from_str::<serde_json::Value>(&env.ok(&["ps", "--json"])).unwrap()[0]
        ["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let tasks = delegation
        .children()
        .into_iter()
        .find(|d| d.starts_with(delegation.dir("memory")) && d.to_string_lossy().ends_with(&id))
        .map(|d| std::fs::read_to_string(d.join("tasks")).unwrap())
        .unwrap_or_default();
    assert!(
        tasks.lines().count() >= 2,
        "the first command and the joined shell are in the sandbox's memory cgroup: {tasks:?}"
    );
    // Ended as a user would (not kill -9, whose leftovers the next run collects): its cgroups go.
    crate::support::signal(running.id() as i32, libc::SIGTERM);
    let _ = running.wait();
    delegation.wait_until_empty();
}

/// What a JVM or Go reads to size itself: its own cgroups, rooted at the sandbox's, with the
/// limits asked for, read-only.
#[test]
fn the_sandbox_sees_its_own_limits_read_only_at_sys_fs_cgroup() {
    let (env, _registry, image) = fixture();
    let _delegation = Delegation::new(&env, "sandbox-it-view");
    let out = ok_image(
        &env,
        &image,
        &["--memory", "512m", "--cpus", "0.5"],
        &[
            "sh",
            "-c",
            "cat /proc/self/cgroup; echo; cat /sys/fs/cgroup/memory/memory.limit_in_bytes \
             /sys/fs/cgroup/cpu/cpu.cfs_quota_us; ls /sys/fs/cgroup; \
             echo -1 > /sys/fs/cgroup/memory/memory.limit_in_bytes && echo WROTE; \
             mkdir /sys/fs/cgroup/memory/escape && echo MADE; \
             mount -o remount,rw /sys/fs/cgroup/memory 2>/dev/null && echo REMOUNTED; true",
        ],
    );
    let (cgroups, rest) = out.split_once("\n\n").unwrap();
    // Every hierarchy's path is its root: the sandbox's own cgroup, nothing of the host's.
    assert!(
        cgroups.lines().all(|l| l.ends_with(":/")),
        "/proc/self/cgroup shows the host's paths: {cgroups}"
    );
    let mut lines = rest.lines();
    assert_eq!(lines.next(), Some("536870912"), "{out}");
    assert_eq!(lines.next(), Some("50000"), "{out}");
    // The ones it has a cgroup in, and all a JVM reads; not the others (each costs a mount).
    for hierarchy in ["memory", "cpu", "cpuacct", "cpuset"] {
        assert!(
            rest.lines().any(|l| l == hierarchy),
            "no {hierarchy}: {out}"
        );
    }
    assert!(!rest.lines().any(|l| l == "freezer"), "{out}");
    // Code inside cannot raise its own limit, nor make a cgroup to escape into.
    for what in ["WROTE", "MADE", "REMOUNTED"] {
        assert!(!out.contains(what), "{what}: {out}");
    }
}

#[test]
fn without_a_cgroup_of_its_own_the_sandbox_sees_none_of_the_hosts() {
    let (env, _registry, image) = fixture();
    let out = ok_image(
        &env,
        &image,
        &[],
        &[
            "sh",
            "-c",
            "ls -A /sys/fs/cgroup; echo END; cut -d: -f3 /proc/self/cgroup | sort -u",
        ],
    );
    assert_eq!(out, "END\n/\n", "the host's cgroups show through");
}

#[test]
fn tmp_is_a_tmpfs_of_the_size_asked_for() {
    let (env, _registry, image) = fixture();
    let out = run_image(
        &env,
        &image,
        &["--tmp", "16m"],
        &[
            "sh",
            "-c",
            "dd if=/dev/zero of=/tmp/big bs=1M count=32 2>&1; df -k /tmp /dev/shm | tail -n 2",
        ],
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("No space left on device"), "{stdout}");
    let sizes: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("tmpfs"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(
        sizes,
        ["16384", "16384"],
        "/tmp and /dev/shm are 16 MiB: {stdout}"
    );
}

#[test]
fn without_delegation_limits_are_named_as_not_applied_or_required() {
    let (env, _registry, image) = fixture();
    let out = run_image(
        &env,
        &image,
        &["--memory", "64m", "--pids", "32"],
        &["true"],
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("limits not applied: memory 64 MiB (no cgroup is delegated to you")
            && stderr.contains("pids 32"),
        "{stderr}"
    );
    let quiet = env.run(&[
        "-q",
        "run",
        "--network",
        "none",
        "--memory",
        "64m",
        "--image",
        &image,
        "--",
        "true",
    ]);
    assert!(
        text(&quiet.stderr).is_empty(),
        "-q hides it: {}",
        text(&quiet.stderr)
    );
    let stderr = fails_image(
        &env,
        &image,
        &["--memory", "64m", "--require-limits"],
        &["true"],
    );
    assert!(
        stderr.contains("limits cannot be applied here: memory 64 MiB"),
        "{stderr}"
    );
    // limits.required in sandbox.toml does the same.
    env.write(
        "project/sandbox.toml",
        &format!("[toolchain]\nimage = \"{image}\"\n[limits]\npids = 32\nrequired = true\n"),
    );
    let stderr = env.fails(&["run", "--network", "none", "--", "true"]);
    assert!(
        stderr.contains("limits cannot be applied here: pids 32"),
        "{stderr}"
    );
}

#[test]
fn what_a_killed_sandbox_left_in_its_cgroups_is_collected_by_the_next_run() {
    let (env, _registry, image) = fixture();
    let delegation = Delegation::new(&env, "sandbox-it-stale");
    // Cgroup names carry a tag of their store (a hash of its containers dir).
    let tag = |store: &std::path::Path| {
        use sha2::Digest as _;
        let hash = sha2::Sha256::digest(store.join("containers").as_os_str().as_encoded_bytes());
        hash.iter().map(|b| format!("{b:02x}")).collect::<String>()[..8].to_owned()
    };
    let pids = delegation.dir("pids");
    // Leftovers of sandboxes killed with -9 (no such container runs): this store's, and one
    // named before names had tags.
    let stale = pids.join(format!("sandbox-{}-0123456789ab", tag(&env.store())));
    let untagged = pids.join("0123456789aa");
    // Another store's (a second `--root` under the same delegated parent), fresh and empty:
    // its sandbox is starting.
    let other_store = env.path().join("other-store");
    let others = pids.join(format!("sandbox-{}-0123456789ac", tag(&other_store)));
    for dir in [&stale, &untagged, &others] {
        std::fs::create_dir(dir).unwrap();
    }
    ok_image(&env, &image, &["--pids", "64"], &["true"]);
    assert!(!stale.exists(), "the stale cgroup stayed");
    assert!(!untagged.exists(), "the untagged stale cgroup stayed");
    assert!(others.exists(), "another store's fresh cgroup was taken");
    std::fs::remove_dir(&others).unwrap();
    delegation.wait_until_empty();
}

/// The JSON `--stats --json` prints on stderr's last line.
fn stats_of(out: &std::process::Output) -> serde_json::Value {
    let stderr = text(&out.stderr);
    let line = stderr.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("no stats JSON ({e}): {stderr}"))
}

#[test]
fn stats_say_what_a_run_cost_from_rusage_or_the_cgroup() {
    let (env, _registry, image) = fixture();
    // Without cgroups: pid 1's children's rusage.
    let out = run_image(
        &env,
        &image,
        &["--stats", "--json"],
        &["confine", "alloc", "150"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stats = stats_of(&out);
    assert_eq!(stats["source"], "rusage");
    assert!(
        stats["peak_memory"].as_u64().unwrap() >= 150 << 20,
        "{stats}"
    );
    assert!(stats["wall_us"].as_u64().unwrap() > 0, "{stats}");
    // The line for people.
    let out = run_image(&env, &image, &["--stats"], &["true"]);
    assert!(
        text(&out.stderr).contains(" s wall, "),
        "{}",
        text(&out.stderr)
    );
    // With delegated cgroups: the cgroup's figures, peak pids too.
    let _delegation = Delegation::new(&env, "sandbox-it-stats");
    let out = run_image(
        &env,
        &image,
        &["--stats", "--json"],
        &[
            "sh",
            "-c",
            "sleep 0.2 & sleep 0.2 & confine alloc 100; wait",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stats = stats_of(&out);
    assert_eq!(stats["source"], "cgroup");
    assert!(
        stats["peak_memory"].as_u64().unwrap() >= 100 << 20,
        "{stats}"
    );
    assert!(stats["peak_pids"].as_u64().unwrap() >= 3, "{stats}");
}

#[test]
fn half_a_cpu_is_half_a_cpu() {
    let (env, _registry, image) = fixture();
    let _delegation = Delegation::new(&env, "sandbox-it-cpu");
    // Two busy loops for 3 s, under --cpus 0.5.
    let out = run_image(&env, &image, &["--cpus", "0.5", "--stats", "--json"], &["sh", "-c",
        "end=$(( $(date +%s) + 3 )); for i in 1 2; do (while [ $(date +%s) -lt $end ]; do :; done) & done; wait"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stats = stats_of(&out);
    let cpu =
        (stats["cpu_user_us"].as_u64().unwrap() + stats["cpu_system_us"].as_u64().unwrap()) as f64;
    let wall = stats["wall_us"].as_u64().unwrap() as f64;
    assert!(
        cpu / wall <= 0.6,
        "{:.2} CPU-seconds per second under --cpus 0.5: {stats}",
        cpu / wall
    );
    assert!(cpu / wall >= 0.2, "the loops hardly ran: {stats}");
}

#[test]
fn doctor_reports_this_machines_facts_and_the_fix_for_cgroups() {
    let env = TestEnv::new();
    let checks = |env: &TestEnv| -> Vec<serde_json::Value> {
        let out = env.run(&["doctor", "--json"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "every run-critical check passes here: {}",
            text(&out.stdout)
        );
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
    };
    let find = |all: &[serde_json::Value], name: &str| -> serde_json::Value {
        all.iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no check `{name}`"))
    };
    let all = checks(&env);
    for name in [
        "user namespaces",
        "newuidmap/newgidmap",
        "overlay",
        "seccomp",
        "network relay",
    ] {
        assert_eq!(
            find(&all, name)["status"],
            "ok",
            "{name}: {}",
            find(&all, name)
        );
    }
    let uids = find(&all, "subordinate uids");
    assert!(
        uids["detail"]
            .as_str()
            .unwrap()
            .starts_with(&env.subuid_start().to_string()),
        "{uids}"
    );
    // Nothing delegated: a warning, and the commands that delegate all five controllers.
    let cgroups = find(&all, "cgroups");
    assert_eq!(cgroups["status"], "warn", "{cgroups}");
    assert!(
        cgroups["detail"]
            .as_str()
            .unwrap()
            .contains("/sys/fs/cgroup inside is empty"),
        "{cgroups}"
    );
    let fix = cgroups["fix"].as_str().unwrap();
    let user = env.user_name();
    assert!(
        fix.contains("memory pids cpu cpuacct blkio")
            && fix.contains(&format!("chown {user} "))
            && fix.contains("/etc/tmpfiles.d/"),
        "{fix}"
    );
    // Delegated: ok, naming the controllers.
    let _delegation = Delegation::new(&env, "sandbox-it-doctor");
    let cgroups = find(&checks(&env), "cgroups");
    assert_eq!(cgroups["status"], "ok", "{cgroups}");
    assert!(
        cgroups["detail"].as_str().unwrap().contains("memory"),
        "{cgroups}"
    );
    // The lines for people.
    let out = env.ok(&["doctor"]);
    assert!(out.lines().any(|l| l.starts_with("ok    seccomp")), "{out}");
}

#[test]
fn stats_show_a_running_sandbox() {
    let (env, _registry, image) = fixture();
    let mut running = env
        .command(&[
            "run",
            "--network",
            "none",
            "--image",
            &image,
            "--",
            "sh",
            "-c",
            "confine alloc 40 >/dev/null; touch up; sleep 20",
        ])
        .spawn()
        .unwrap();
    let up = env.path().join("project/up");
    crate::support::wait_until_started(&up, 20);
    let id = text(&env.ok(&["ps", "--json"]).into_bytes());
    let ps: serde_json::Value = serde_json::from_str(&id).unwrap();
    let id = ps[0]["id"].as_str().unwrap().to_owned();
    let out = env.ok(&["stats", "--no-stream", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let row = &rows[0];
    assert_eq!(row["id"], id.as_str(), "{out}");
    assert!(
        row["pids"].as_u64().unwrap() >= 2,
        "pid 1 and the shell at least: {out}"
    );
    assert_eq!(row["source"], "proc", "{out}");
    // A table for people, by id prefix.
    let table = env.ok(&["stats", "--no-stream", &id[..6]]);
    assert!(table.starts_with("ID") && table.contains(&id), "{table}");
    // A command joining it says what it cost too.
    let joined = run_image(
        &env,
        &image,
        &["--stats", "--json"],
        &["confine", "alloc", "50"],
    );
    assert!(joined.status.success(), "{}", text(&joined.stderr));
    let stats = stats_of(&joined);
    assert!(
        stats["peak_memory"].as_u64().unwrap() >= 50 << 20,
        "{stats}"
    );
    let _ = running.kill();
    let _ = running.wait();
    // Gone before the next starts: a run while it ends would join it as it dies.
    let ending = std::time::Instant::now();
    while env.ok(&["ps", "--json"]).trim() != "[]" {
        assert!(
            ending.elapsed().as_secs() < 10,
            "the killed sandbox did not end"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // With a memory limit on a delegated cgroup: the cgroup's figures and the limit.
    let _delegation = Delegation::new(&env, "sandbox-it-live");
    std::fs::remove_file(&up).unwrap();
    let started = std::time::Instant::now();
    let mut limited = env
        .command(&[
            "run",
            "--network",
            "none",
            "--memory",
            "256m",
            "--image",
            &image,
            "--",
            "sh",
            "-c",
            "touch up; sleep 20",
        ])
        .spawn()
        .unwrap();
    while !up.exists() {
        if let Some(status) = limited.try_wait().unwrap() {
            panic!("the limited sandbox ended before it started: {status}");
        }
        assert!(
            started.elapsed().as_secs() < 20,
            "the sandbox did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = env.ok(&["stats", "--no-stream", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows[0]["source"], "cgroup", "{out}");
    assert_eq!(rows[0]["memory_limit"], 256u64 << 20, "{out}");
    let _ = limited.kill();
    let _ = limited.wait();
}
