//! Confinement, tried as an attacker would: code inside (a dependency's install script, a
//! setup step, `--as-root`) tries to undo the sandbox's mounts, reach the host's network
//! namespace, its session keyring, or kernel interfaces shared with the host. Each test
//! performs the attack as the unprivileged test user and asserts that it fails, and that what
//! a developer needs (a debugger, nested sandboxes) still works.

use crate::support::text;
use crate::support::TestEnv;

const PROBE: &str = include_str!("../probes/confine.c");

struct Fixture {
    env: TestEnv,
    _registry: crate::support::Registry,
    image: String,
}

fn fixture() -> Fixture {
    let env = TestEnv::new();
    let (registry, image) = crate::support::pulled_busybox(
        &env,
        "confine/app",
        vec![crate::support::helper_entry(
            "bin/confine",
            "confine",
            PROBE,
        )],
    );
    Fixture {
        env,
        _registry: registry,
        image,
    }
}

impl Fixture {
    /// `sandbox run --network none FLAGS --image IMAGE -- ARGS`, to be run.
    fn command(&self, flags: &[&str], args: &[&str]) -> std::process::Command {
        let mut full = vec!["run", "--network", "none"];
        full.extend_from_slice(flags);
        full.extend_from_slice(&["--image", &self.image, "--"]);
        full.extend_from_slice(args);
        self.env.command(&full)
    }

    /// The same, run to its end.
    fn run(&self, flags: &[&str], args: &[&str]) -> std::process::Output {
        self.command(flags, args).output().unwrap()
    }

    /// The probe's `name=result` lines.
    fn probe(&self, flags: &[&str], args: &[&str]) -> Vec<(String, String)> {
        let out = self.run(flags, args);
        assert!(
            out.status.success(),
            "the probe did not run: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

fn result<'a>(lines: &'a [(String, String)], name: &str) -> &'a str {
    lines
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("the probe printed no `{name}`: {lines:?}"))
}

/// The capability sets of the process `run` starts, from /proc/self/status.
fn capability_line(f: &Fixture, flags: &[&str], which: &str) -> String {
    let out = f.run(flags, &["grep", which, "/proc/self/status"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn container_root_holds_podmans_capabilities_and_the_user_none() {
    let f = fixture();
    // CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE SYS_CHROOT
    // SETFCAP: bits 0 1 3 4 5 6 7 8 10 18 31.
    let podman = "00000000800405fb";
    assert_eq!(capability_line(&f, &["--as-root"], "CapBnd"), podman);
    assert_eq!(capability_line(&f, &["--as-root"], "CapEff"), podman);
    assert_eq!(capability_line(&f, &[], "CapBnd"), "0000000000000000");
    assert_eq!(capability_line(&f, &[], "CapEff"), "0000000000000000");
    // Nothing to inherit through file capabilities (CVE-2022-29162 and kin).
    for flags in [&[][..], &["--as-root"][..]] {
        assert_eq!(capability_line(&f, flags, "CapInh"), "0000000000000000");
        assert_eq!(capability_line(&f, flags, "CapAmb"), "0000000000000000");
    }
    // --cap-add NET_ADMIN (bit 12), --cap-drop CHOWN (bit 0).
    assert_eq!(
        capability_line(
            &f,
            &[
                "--as-root",
                "--cap-add",
                "net_admin",
                "--cap-drop",
                "CAP_CHOWN"
            ],
            "CapBnd"
        ),
        "00000000800415fa"
    );
    let out = f.run(&["--cap-add", "NET_ADMN"], &["true"]);
    assert_eq!(
        out.status.code(),
        Some(125),
        "a misspelt capability is our failure"
    );
    assert!(
        text(&out.stderr).contains("did you mean `NET_ADMIN`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn container_root_cannot_undo_the_mounts_or_reach_the_network_namespace() {
    let f = fixture();
    // Even with every capability: the mounts are locked, and the network namespace is owned
    // by a user namespace container root has no capability in.
    for flags in [&["--as-root"][..], &["--as-root", "--cap-add", "ALL"][..]] {
        let lines = f.probe(flags, &["confine", "root"]);
        for attack in [
            "umount_proc_sys",
            "remount_proc_sys_rw",
            "route_localnet",
            "sethostname",
        ] {
            assert_ne!(
                result(&lines, attack),
                "allowed",
                "{attack} with {flags:?}: {lines:?}"
            );
        }
    }
}

#[test]
fn a_setup_step_cannot_unmount_proc_sys_to_route_loopback_out() {
    let f = fixture();
    f.env.write(
        "project/sandbox.toml",
        &format!(
            "setup = [\"umount -l /proc/sys; echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet\"]\n[toolchain]\nimage = \"{}\"\n",
            f.image
        ),
    );
    let out = f.env.run(&["run", "--network", "none", "--", "true"]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "the setup step succeeded: {}",
        text(&out.stderr)
    );
    let stderr = text(&out.stderr);
    assert!(stderr.contains("setup step"), "{stderr}");
    assert!(
        stderr.contains("Read-only file system")
            || stderr.contains("Permission denied")
            || stderr.contains("can't create"),
        "{stderr}"
    );
}

#[test]
fn the_default_seccomp_filter_denies_what_reaches_the_host_kernel() {
    let f = fixture();
    let lines = f.probe(&[], &["confine", "denied"]);
    for call in [
        "keyctl",
        "add_key",
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "io_uring_setup",
        "open_by_handle_at",
        "name_to_handle_at",
        "kexec_load",
        "init_module",
        "acct",
        "swapoff",
        "reboot",
        "personality_bad",
        "tiocsti",
        "tiocsti_high_bits",
        "tioclinux",
    ] {
        assert_eq!(
            result(&lines, call),
            "Operation not permitted",
            "{call}: {lines:?}"
        );
    }
    assert_eq!(result(&lines, "personality_query"), "allowed");
    if cfg!(target_arch = "x86_64") {
        assert_eq!(result(&lines, "x32_getpid"), "Operation not permitted");
        assert_eq!(result(&lines, "i386_getpid"), "killed by signal 31");
    }
    // The escape hatch turns it off, and -v says so.
    let out = f.run(
        &["--verbose", "--security-opt", "seccomp=unconfined"],
        &["confine", "denied"],
    );
    assert!(
        text(&out.stdout).contains("keyctl=allowed"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("seccomp: unconfined"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn debuggers_and_nested_sandboxes_still_work() {
    let f = fixture();
    let lines = f.probe(&[], &["confine", "tools"]);
    assert_eq!(result(&lines, "ptrace"), "works", "{lines:?}");
    assert_eq!(result(&lines, "nested_userns"), "works", "{lines:?}");
}

#[test]
fn the_hosts_session_keyring_is_not_inside() {
    let f = fixture();
    // A key in the session keyring the sandbox is started from (a login's, an agent's).
    let description = format!("sandbox-probe-{}", std::process::id());
    let c_description = std::ffi::CString::new(description.clone()).unwrap();
    sys::join_new_session_keyring().unwrap();
    if let Err(e) = sys::add_user_key(&c_description, b"hunter2") {
        panic!("add_key failed: {e}");
    }
    // On the host, the sandbox's user finds it (the attack works outside).
    let probe = f.env.path().join("confine");
    std::fs::write(&probe, crate::support::oci::static_helper("confine", PROBE)).unwrap();
    f.env.give_to_user(&probe);
    std::fs::set_permissions(&probe, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut outside = match &f.env.user {
        Some(user) => {
            let mut c = std::process::Command::new("/usr/bin/setpriv");
            c.args([
                &format!("--reuid={}", user.uid),
                &format!("--regid={}", user.gid),
                "--init-groups",
                "--",
            ]);
            c.arg(&probe);
            c
        }
        None => std::process::Command::new(&probe),
    };
    let out = outside.args(["keyring", &description]).output().unwrap();
    assert_eq!(
        text(&out.stdout).trim(),
        "host_key=found",
        "{}",
        text(&out.stderr)
    );
    // Inside, even without the seccomp filter, it is not there.
    let lines = f.probe(
        &["--security-opt", "seccomp=unconfined"],
        &["confine", "keyring", &description],
    );
    assert_ne!(result(&lines, "host_key"), "found");
}

#[test]
fn capabilities_added_in_sandbox_toml_need_trust() {
    let f = fixture();
    let file = f.env.write(
        "project/sandbox.toml",
        &format!(
            "[toolchain]\nimage = \"{}\"\n[security]\ncap_add = [\"NET_ADMIN\"]\ncap_drop = [\"CHOWN\"]\n",
            f.image
        ),
    );
    let run = [
        "run",
        "--network",
        "none",
        "--as-root",
        "--",
        "grep",
        "CapBnd",
        "/proc/self/status",
    ];
    let stderr = f.env.fails(&run);
    assert!(
        stderr.starts_with(&format!(
            "error: {}:4:12: sandbox.toml asks for host access: security.cap_add",
            file.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("sandbox trust"), "{stderr}");
    f.env.ok(&["trust"]);
    let out = f.env.ok(&run);
    assert_eq!(
        out.split_whitespace().nth(1),
        Some("00000000800415fa"),
        "{out}"
    );
    // A typo is pointed at.
    f.env.write(
        "project/sandbox.toml",
        &format!(
            "[toolchain]\nimage = \"{}\"\n[security]\ncap_drop = [\"CHWON\"]\n",
            f.image
        ),
    );
    let stderr = f.env.fails(&run);
    assert!(
        stderr.contains(":4:13: unknown capability `CHWON`; did you mean `CHOWN`?"),
        "{stderr}"
    );
}

/// Files named `escaped` anywhere under `dir` (the test's temp dir: home, store, project).
fn escaped_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if e.file_name() == "escaped" {
                found.push(path.clone());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            }
        }
    }
    found
}

/// Walks up from every fd of every process it can see, as the fuse-overlayfs attack did.
const FD_WALK: &str = "for d in /proc/[0-9]*/fd/* /proc/[0-9]*/cwd /proc/[0-9]*/root; do \
    for up in .. ../.. ../../.. ../../../.. ../../../../..; do \
    [ -d \"$d/$up\" ] && touch \"$d/$up/escaped\" 2>/dev/null; done; done; \
    cat /proc/[0-9]*/comm | sort -u | tr '\\n' ' '";

#[test]
fn no_process_inside_holds_a_way_to_the_host_with_fuse_overlayfs() {
    let f = fixture();
    for flags in [&[][..], &["--as-root"][..]] {
        let mut full = vec!["run", "--network", "none"];
        full.extend_from_slice(flags);
        full.extend_from_slice(&["--image", &f.image, "--", "sh", "-c", FD_WALK]);
        let out = f
            .env
            .command(&full)
            .env("SANDBOX_OVERLAY", "fuse")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let seen = text(&out.stdout);
        assert!(
            !seen.contains("fuse-overlayfs"),
            "the root's server is visible inside: {seen}"
        );
        // What it touched inside the container is discarded; in the project and the
        // per-project home (the sandbox's own `~`) it stays there.
        let homes = f.env.store().join("homes");
        let mut outside: Vec<_> = escaped_files(f.env.path())
            .into_iter()
            .filter(|p| !p.starts_with(f.env.project()) && !p.starts_with(&homes))
            .collect();
        // The user's real home, above the test's tree (not into other tests' trees).
        let home = f.env.passwd_home();
        outside.extend(
            [home.join("escaped"), home.join("src/escaped")]
                .into_iter()
                .filter(|p| p.exists()),
        );
        assert!(
            outside.is_empty(),
            "written on the host through a process inside: {outside:?}"
        );
    }
}

#[test]
fn a_workdir_link_through_proc_is_refused() {
    let f = fixture();
    f.env.write(
        "project/sandbox.toml",
        &format!("workdir = \"w\"\n[toolchain]\nimage = \"{}\"\n", f.image),
    );
    let link = f.env.path().join("project/w");
    std::os::unix::fs::symlink("/proc/self/root/../../../..", &link).unwrap();
    let out = f
        .env
        .command(&[
            "run",
            "--network",
            "none",
            "--",
            "sh",
            "-c",
            "pwd; touch escaped",
        ])
        .env("SANDBOX_OVERLAY", "fuse")
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(stderr.contains("the working directory"), "{stderr}");
    assert!(stderr.contains("leads outside the sandbox"), "{stderr}");
    assert!(escaped_files(f.env.path()).is_empty());
    // A plain link inside the project is followed, and stays inside the root.
    std::fs::remove_file(&link).unwrap();
    std::fs::create_dir_all(f.env.path().join("project/real")).unwrap();
    std::os::unix::fs::symlink("real", &link).unwrap();
    f.env.give_to_user(f.env.path());
    let out = f.env.ok(&["run", "--network", "none", "--", "pwd"]);
    assert_eq!(
        out.trim(),
        f.env.path().join("project/real").display().to_string()
    );
}

#[test]
fn an_image_of_128_layers_runs_on_kernel_overlayfs() {
    use crate::support::oci::{self, Compression, LayerSpec};
    let env = TestEnv::new();
    let registry = crate::support::Registry::start();
    let mut layers = vec![LayerSpec {
        entries: oci::busybox_full_entries(),
        compression: Compression::Gzip,
    }];
    for n in 1..128 {
        layers.push(LayerSpec {
            entries: vec![oci::Entry::file(
                &format!("layer-{n}"),
                n.to_string().as_bytes(),
            )],
            compression: Compression::Gzip,
        });
    }
    let image = oci::build(&oci::ImageSpec {
        layers,
        architecture: oci::host_arch().into(),
    });
    oci::push(&registry.url(), "deep/app", "1", &image);
    let reference = format!("{}/deep/app:1", registry.host());
    env.ok(&["pull", &reference]);
    let out = env.run(&[
        "-v", "run", "--network", "none", "--image", &reference, "--", "sh", "-c",
        "cat /layer-1 /layer-127; grep ' / / ' /proc/self/mountinfo | sed 's/.* - //' | cut -d' ' -f1",
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, "1127overlay\n", "{stderr}");
    assert!(stderr.contains("runs on kernel overlayfs"), "{stderr}");
    // With a setup layer on top: 129 lower layers, still the kernel's overlay.
    env.write(
        "project/sandbox.toml",
        &format!("setup = [\"echo set > /setup-done\"]\n[toolchain]\nimage = \"{reference}\"\n"),
    );
    let out = env.run(&[
        "-v", "run", "--network", "none", "--", "sh", "-c",
        "cat /setup-done /layer-127; grep ' / / ' /proc/self/mountinfo | sed 's/.* - //' | cut -d' ' -f1",
    ]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, "set\n127overlay\n", "{stderr}");
    assert!(stderr.contains("runs on kernel overlayfs"), "{stderr}");
}

#[test]
fn the_first_commands_arguments_are_not_readable_in_pid_1_or_the_pause_process() {
    let f = fixture();
    let out = f.env.ok(&[
        "run",
        "--network",
        "none",
        "-e",
        "API_KEY=s3cret-in-argv",
        "--image",
        &f.image,
        "--",
        "sh",
        "-c",
        "tr '\\0' ' ' < /proc/1/cmdline; echo; echo $API_KEY",
    ]);
    let mut lines = out.lines();
    let pid1 = lines.next().unwrap_or_default();
    assert!(
        !pid1.contains("s3cret"),
        "pid 1 shows the command line: {pid1}"
    );
    assert_eq!(
        lines.next(),
        Some("s3cret-in-argv"),
        "-e still reaches the command"
    );
    // Every local user can read a process's cmdline; the pause process lives for minutes.
    let pid_file = std::fs::read_to_string(f.env.store().join("pause.pid")).unwrap();
    let pid = pid_file.split_whitespace().next().unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(!text(&cmdline).contains("s3cret"), "{}", text(&cmdline));
    assert_eq!(text(&cmdline).split('\0').next(), Some("sandbox-pause"));
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(
        environ.is_empty(),
        "the pause process keeps an environment: {}",
        text(&environ)
    );
}

#[test]
fn a_joining_command_leaks_neither_environment_nor_arguments_inside() {
    let f = fixture();
    // The first command watches every process's environment and command line, as fast as it
    // can, until told to stop. (The needles are given in parts, so its own command line does
    // not hold them.)
    let mut first = f
        .command(
            &[],
            &[
                "sh",
                "-c",
                "confine watch host- argv- secret > hits 2> scans; echo done > watched",
            ],
        )
        .spawn()
        .unwrap();
    let project = f.env.path().join("project");
    let started = std::time::Instant::now();
    while !project.join("hits").exists() && started.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for _ in 0..40 {
        let out = f
            .env
            .command(&[
                "run",
                "--network",
                "none",
                "-e",
                "ARG_TOKEN=argv-secret",
                "--image",
                &f.image,
                "--",
                "true",
            ])
            .env("SECRET_TOKEN", "host-secret")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    std::fs::write(project.join("stop"), "").unwrap();
    assert!(first.wait().unwrap().success());
    assert!(
        project.join("watched").exists(),
        "the watcher did not run to its end"
    );
    let hits = std::fs::read_to_string(project.join("hits")).unwrap_or_default();
    let scans = std::fs::read_to_string(project.join("scans")).unwrap_or_default();
    assert!(
        hits.is_empty(),
        "a joining process was read from inside ({scans}): {hits}"
    );
}

/// Runs `cmd`, failing the test if it takes longer than 20 s (a hang is the bug).
fn output_within(mut cmd: std::process::Command) -> std::process::Output {
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let (done, waiting) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if waiting
            .recv_timeout(std::time::Duration::from_secs(20))
            .is_err()
        {
            crate::support::signal(pid, libc::SIGKILL);
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = done.send(());
    assert_ne!(
        out.status.code(),
        None,
        "sandbox hung and was killed after 20 s"
    );
    out
}

#[test]
fn another_users_sandbox_toml_above_the_current_dir_is_refused() {
    let f = fixture();
    // A shared dir: someone else's sandbox.toml at its top, our work dir below.
    let shared = f.env.path().join("project/shared");
    let work = shared.join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(
        shared.join("sandbox.toml"),
        format!(
            "setup = [\"touch /pwned\"]\n[toolchain]\nimage = \"{}\"\n",
            f.image
        ),
    )
    .unwrap();
    f.env.give_to_user(f.env.path());
    // nobody (65534) owns the shared dir and the file in it.
    for path in [&shared, &shared.join("sandbox.toml")] {
        std::os::unix::fs::chown(path, Some(65534), Some(65534)).unwrap();
    }
    let mut cmd = f.env.command(&["run", "--network", "none", "--", "true"]);
    cmd.current_dir(&work);
    let out = output_within(cmd);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains("belongs to nobody (uid 65534), not to you"),
        "{stderr}"
    );
    assert!(stderr.contains("safe_directories"), "{stderr}");
    // The user says it is safe: then it is obeyed.
    f.env.write(
        "config/sandbox/config.toml",
        &format!("safe_directories = [\"{}\"]\n", shared.display()),
    );
    let mut cmd = f.env.command(&["run", "--network", "none", "--", "true"]);
    cmd.current_dir(&work);
    let out = output_within(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn sandbox_toml_and_lock_that_are_devices_fifos_or_huge_fail_at_once() {
    let f = fixture();
    let project = f.env.path().join("project");
    let toml = format!("[toolchain]\nimage = \"{}\"\n", f.image);
    type Case<'a> = (&'a str, Box<dyn Fn() + 'a>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "sandbox.lock -> /dev/zero",
            Box::new(|| {
                std::fs::write(project.join("sandbox.toml"), &toml).unwrap();
                std::os::unix::fs::symlink("/dev/zero", project.join("sandbox.lock")).unwrap();
            }),
            "sandbox.lock is a character device, not a regular file",
        ),
        (
            "sandbox.lock a FIFO",
            Box::new(|| {
                nix::unistd::mkfifo(
                    &project.join("sandbox.lock"),
                    nix::sys::stat::Mode::from_bits_truncate(0o644),
                )
                .unwrap();
            }),
            "sandbox.lock is a FIFO, not a regular file",
        ),
        (
            "sandbox.toml of 2 MiB",
            Box::new(|| {
                let mut big = toml.clone();
                big.push_str(&"#".repeat(2 * 1024 * 1024));
                std::fs::write(project.join("sandbox.toml"), big).unwrap();
            }),
            "sandbox.toml is larger than 1 MiB",
        ),
    ];
    for (what, make, expected) in cases {
        let _ = std::fs::remove_file(project.join("sandbox.lock"));
        make();
        f.env.give_to_user(f.env.path());
        let out =
            output_within(
                f.env
                    .command(&["run", "--network", "none", "--locked", "--", "true"]),
            );
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{what}: {stderr}");
        assert!(stderr.contains(expected), "{what}: {stderr}");
    }
}

#[test]
fn a_daemon_left_by_a_joined_session_ends_with_the_last_session() {
    let f = fixture();
    let project = f.env.path().join("project");
    // The first command ends after a second; a joined session outlives it, starts a daemon
    // after it ended, and ends.
    let mut first = f
        .command(&[], &["sh", "-c", "touch first-up; sleep 1"])
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !project.join("first-up").exists() {
        assert!(
            started.elapsed().as_secs() < 20,
            "the first command did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let joined = f.env.ok(&[
        "run",
        "--network",
        "none",
        "--image",
        &f.image,
        "--",
        "sh",
        "-c",
        "sleep 2; setsid sleep 1000 > /dev/null 2>&1 < /dev/null & echo started",
    ]);
    assert_eq!(joined.trim(), "started");
    assert!(first.wait().unwrap().success());
    // Nothing runs the container for any session now: it ends, daemon and all.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let ps = f.env.ok(&["ps"]);
        if ps.lines().count() == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the container outlived its sessions: {ps}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_directory_as_stdin_is_refused() {
    let f = fixture();
    let home = f.env.home();
    let out = f
        .command(
            &[],
            &[
                "sh",
                "-c",
                "ls /proc/self/fd/0/; touch /proc/self/fd/0/escaped",
            ],
        )
        .stdin(std::fs::File::open(&home).unwrap())
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(stderr.contains("stdin is a directory"), "{stderr}");
    assert!(!home.join("escaped").exists());
}

#[test]
fn a_file_as_stdin_is_read_but_cannot_be_reopened_for_writing() {
    let f = fixture();
    let notes = f.env.write("notes.txt", "my notes\n");
    let out = f
        .command(
            &[],
            &[
                "sh",
                "-c",
                "cat; readlink /proc/self/fd/0; echo overwritten > /proc/self/fd/0",
            ],
        )
        .stdin(std::fs::File::open(&notes).unwrap())
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("my notes"), "{}", text(&out.stderr));
    assert!(
        lines.next().unwrap_or_default().starts_with("pipe:["),
        "{stdout}"
    );
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "my notes\n");
    // Output to a file is relayed the same way: it arrives, and the command holds a pipe.
    let out_file = f.env.path().join("out.txt");
    let status = f
        .command(
            &[],
            &["sh", "-c", "echo written; readlink /proc/self/fd/1 >&2"],
        )
        .stdout(std::fs::File::create(&out_file).unwrap())
        .output()
        .unwrap();
    assert!(
        text(&status.stderr).starts_with("pipe:["),
        "{}",
        text(&status.stderr)
    );
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), "written\n");
}

#[test]
fn the_host_terminal_never_reaches_the_command() {
    let f = fixture();
    // stdin the host's terminal, stdout a pipe (`sandbox run -- cmd | less`).
    let pair = nix::pty::openpty(None, None).unwrap();
    let slave = pair.slave.try_clone().unwrap();
    let mut child = f
        .command(
            &[],
            &[
                "sh",
                "-c",
                "readlink /proc/self/fd/0; test -t 0 && echo is-a-tty; read line; echo got=$line",
            ],
        )
        .stdin(std::process::Stdio::from(slave))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // What is typed on the terminal reaches the command.
    let mut master = std::fs::File::from(pair.master);
    std::io::Write::write_all(&mut master, b"typed\n").unwrap();
    let out = output_of(&mut child);
    assert!(out.starts_with("pipe:["), "{out}");
    assert!(!out.contains("is-a-tty"), "{out}");
    assert!(out.contains("got=typed"), "{out}");
}

/// Waits (bounded) for `child` and returns its stdout.
fn output_of(child: &mut std::process::Child) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the command did not end");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    out
}

#[test]
fn the_hosts_abstract_sockets_are_out_of_reach() {
    let f = fixture();
    // An abstract socket lives in the host's network namespace (CVE-2020-15257's class).
    let name = format!("sandbox-canary-{}", std::process::id());
    use std::os::linux::net::SocketAddrExt as _;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    // It answers on the host.
    assert!(std::os::unix::net::UnixStream::connect_addr(&addr).is_ok());
    let lines = f.probe(&[], &["confine", "abstract", &name]);
    assert_ne!(result(&lines, "abstract"), "connected", "--network none");
    let out = f.env.run(&[
        "run", "--image", &f.image, "--", "confine", "abstract", &name,
    ]);
    assert!(
        !text(&out.stdout).contains("abstract=connected"),
        "the default network: {}",
        text(&out.stdout)
    );
    drop(listener);
}

#[test]
fn host_side_code_never_runs_the_images_binaries_or_libraries() {
    let env = TestEnv::new();
    // Each poisoned program would leave a marker in the host's /tmp if the host ran it (inside,
    // /tmp is the sandbox's own tmpfs).
    let marker = format!("/tmp/sandbox-poisoned-{}", std::process::id());
    let script = format!("#!/bin/busybox sh\necho ran > {marker}\n");
    let mut extra = Vec::new();
    for name in [
        "usr/bin/tar",
        "usr/bin/xz",
        "usr/bin/gzip",
        "usr/bin/unpigz",
        "usr/bin/getent",
        "usr/bin/id",
        "usr/bin/nsenter",
        "usr/bin/newuidmap",
        "usr/bin/fuse-overlayfs",
        "usr/bin/pasta",
    ] {
        extra.push(crate::support::oci::Entry::File {
            path: name.into(),
            mode: 0o755,
            uid: 0,
            gid: 0,
            data: script.clone().into_bytes(),
        });
    }
    extra.push(crate::support::oci::Entry::dir("lib/x86_64-linux-gnu"));
    extra.push(crate::support::oci::Entry::file(
        "lib/x86_64-linux-gnu/libnss_files.so.2",
        b"not a library",
    ));
    extra.push(crate::support::oci::Entry::file(
        "etc/nsswitch.conf",
        b"passwd: poison\ngroup: poison\n",
    ));
    let (_registry, image) = crate::support::pulled_busybox(&env, "poison/app", extra);
    env.ok(&["run", "--network", "none", "--image", &image, "--", "true"]);
    env.ok(&["run", "--image", &image, "--", "true"]);
    let out = env
        .command(&["run", "--network", "none", "--image", &image, "--", "true"])
        .env("SANDBOX_OVERLAY", "fuse")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !std::path::Path::new(&marker).exists(),
        "the host ran a program of the image"
    );
}

#[test]
fn image_etc_files_that_are_links_to_devices_fifos_or_host_secrets_are_never_followed() {
    use crate::support::oci::Entry;
    let env = TestEnv::new();
    // A host secret the links aim at (CVE-2024-9676's class): it must not be read or written.
    let secret = env.write("home/.ssh/id_ed25519", "PRIVATE KEY\n");
    let extra = vec![
        Entry::symlink("etc/passwd", "/dev/zero"),
        Entry::symlink("etc/group", &secret.display().to_string()),
        Entry::symlink("etc/hosts", &secret.display().to_string()),
        Entry::symlink("etc/resolv.conf", "/dev/zero"),
        Entry::Fifo {
            path: "etc/hostname".into(),
        },
    ];
    let (_registry, image) = crate::support::pulled_busybox(&env, "links/app", extra);
    let mut cmd = env.command(&[
        "run",
        "--network",
        "none",
        "--image",
        &image,
        "--",
        "sh",
        "-c",
        "id -un; cat /etc/group | grep -c PRIVATE",
    ]);
    cmd.stdout(std::process::Stdio::piped());
    let out = output_within(cmd);
    let stdout = text(&out.stdout);
    let me = env.user.as_ref().map_or_else(
        || std::env::var("USER").unwrap_or_default(),
        |u| u.name.clone(),
    );
    assert_eq!(
        stdout.lines().next(),
        Some(me.as_str()),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        stdout.lines().nth(1),
        Some("0"),
        "the host file came inside"
    );
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "PRIVATE KEY\n");
}

/// `[forward]` in the user's config: the ssh agent answers inside (the image has no ssh, so
/// the probe asks it as `ssh-add -l` does), ~/.gitconfig and a named file are there read-only;
/// nothing of it without the config, and a project file asking for it needs `sandbox trust`.
#[test]
fn forwarded_agent_and_files_are_there_only_when_the_user_asks() {
    let f = fixture();
    let user = f.env.user.as_ref();
    let as_user = |program: &str| {
        let mut command = match user {
            Some(u) => {
                let mut c = std::process::Command::new("/usr/bin/setpriv");
                c.args([
                    &format!("--reuid={}", u.uid),
                    &format!("--regid={}", u.gid),
                    "--init-groups",
                    "--",
                    program,
                ]);
                c
            }
            None => std::process::Command::new(program),
        };
        command.env("HOME", f.env.home());
        command
    };
    // The host's agent, the user's own, with one key.
    let socket = f.env.path().join("agent.sock");
    let mut agent = as_user("ssh-agent")
        .args(["-D", "-a"])
        .arg(&socket)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("ssh-agent (Debian's openssh-client) runs the test's agent");
    let started = std::time::Instant::now();
    while !socket.exists() {
        assert!(started.elapsed().as_secs() < 10, "ssh-agent did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let key = f.env.path().join("id_test");
    let made = as_user("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    let added = as_user("ssh-add")
        .arg(&key)
        .env("SSH_AUTH_SOCK", &socket)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(added.success());
    f.env
        .write("home/.gitconfig", "[user]\n\tname = Dev Eloper\n");
    f.env
        .write("home/.npmrc", "registry=https://registry.npmjs.org/\n");
    // git's other file, under $XDG_CONFIG_HOME (the test's config dir, not ~/.config).
    f.env
        .write("config/git/config", "[alias]\n\tco = checkout\n");
    f.env.give_to_user(&f.env.home());
    f.env.give_to_user(&f.env.config_dir());
    let look = "confine agent; cat ~/.gitconfig ~/.npmrc ~/.config/git/config 2>/dev/null; echo x >> ~/.gitconfig 2>/dev/null && echo gitconfig-written";
    let run = || {
        f.command(&[], &["sh", "-c", look])
            .env("SSH_AUTH_SOCK", &socket)
            .output()
            .unwrap()
    };
    // Not asked for: nothing.
    let out = text(&run().stdout);
    assert!(out.starts_with("agent=no SSH_AUTH_SOCK\n"), "{out}");
    assert!(
        !out.contains("Dev Eloper") && !out.contains("co = checkout"),
        "{out}"
    );
    f.env.write(
        "config/sandbox/config.toml",
        "[forward]\nssh_agent = true\ngitconfig = true\npaths = [\"~/.npmrc\"]\n",
    );
    let out = run();
    let _ = agent.kill();
    let _ = agent.wait();
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("agent=1 identities\n"),
        "{stdout}{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("name = Dev Eloper")
            && stdout.contains("registry=")
            && stdout.contains("co = checkout"),
        "{stdout}"
    );
    assert!(!stdout.contains("gitconfig-written"), "read-only: {stdout}");
    // Without an agent or a git config here, nothing is said on every run (-v says it).
    std::fs::remove_file(f.env.home().join(".gitconfig")).unwrap();
    std::fs::remove_file(f.env.config_dir().join("git/config")).unwrap();
    f.env.write(
        "config/sandbox/config.toml",
        "[forward]\nssh_agent = true\ngitconfig = true\n",
    );
    let out = f.command(&[], &["true"]).output().unwrap();
    assert!(out.status.success());
    assert!(
        !text(&out.stderr).contains("forward"),
        "{}",
        text(&out.stderr)
    );
    // A project's sandbox.toml asking for the agent is host access.
    f.env.write("config/sandbox/config.toml", "");
    f.env.write(
        "project/sandbox.toml",
        &format!(
            "[toolchain]\nimage = \"{}\"\n[forward]\nssh_agent = true\n",
            f.image
        ),
    );
    let stderr = f.env.fails(&["run", "--network", "none", "--", "true"]);
    assert!(
        stderr.contains("forward.ssh_agent") && stderr.contains("sandbox trust"),
        "{stderr}"
    );
}
