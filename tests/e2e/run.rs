//! `sandbox run`, `enter`, `ps`, `stop`: the container behaves like the user's own shell and
//! cannot touch the host. Driven as the unprivileged test user.

use std::io::{Read as _, Write as _};
use std::os::fd::{AsFd as _, OwnedFd};
use std::os::unix::fs::MetadataExt as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::oci::{self, Compression, Entry, ImageSpec, LayerSpec};
use crate::support::text;
use crate::support::{Registry, TestEnv};

const TIOCSTI_PROBE: &str = r#"
#include <sys/ioctl.h>
#include <stdio.h>
#include <errno.h>
#include <string.h>
int main(void) {
    char c = 'X';
    int r = ioctl(0, TIOCSTI, &c);
    printf("tiocsti=%s\n", r == 0 ? "injected" : strerror(errno));
    return 0;
}
"#;

/// Runs argv[3..] as uid argv[1] and gid argv[2] (a daemon's user, as `setpriv` would).
const AS_UID: &str = r#"
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc < 4 || setgroups(0, NULL) != 0 || setgid(atoi(argv[2])) != 0 || setuid(atoi(argv[1])) != 0) {
        perror("as-uid");
        return 125;
    }
    execv(argv[3], argv + 3);
    perror("as-uid: exec");
    return 126;
}
"#;

struct Fixture {
    env: TestEnv,
    _registry: Registry,
    image: String,
}

fn fixture() -> Fixture {
    fixture_in(TestEnv::new())
}

fn fixture_in(env: TestEnv) -> Fixture {
    let (registry, image) = crate::support::pulled_busybox(
        &env,
        "library/busybox",
        vec![
            crate::support::helper_entry("bin/tiocsti", "tiocsti", TIOCSTI_PROBE),
            crate::support::helper_entry("bin/as-uid", "as-uid", AS_UID),
            Entry::file("etc/skel/.bashrc", b"# the image's skel bashrc\n"),
            // A link in skel is never followed into the home.
            Entry::symlink("etc/skel/.profile", "/etc/passwd"),
        ],
    );
    Fixture {
        env,
        _registry: registry,
        image,
    }
}

impl Fixture {
    fn run(&self, args: &[&str]) -> std::process::Output {
        let mut full = vec!["run", "--network", "none", "--image", &self.image, "--"];
        full.extend_from_slice(args);
        self.env.run(&full)
    }
    fn sh(&self, script: &str) -> std::process::Output {
        self.run(&["sh", "-c", script])
    }
    /// `sandbox run --network none --image IMAGE -- ARGS`, to be run.
    fn command(&self, args: &[&str]) -> Command {
        let mut full = vec!["run", "--network", "none", "--image", &self.image, "--"];
        full.extend_from_slice(args);
        self.env.command(&full)
    }
    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn the_user_is_themselves_in_the_project_dir_and_files_stay_theirs() {
    let f = fixture();
    let out = f.sh("id -u; id -g; id -un; pwd; touch made-inside; echo $HOME; hostname");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    let project = f.env.path().join("project");
    assert_eq!(lines[0], f.env.uid().to_string());
    assert_eq!(lines[3], project.display().to_string(), "cwd kept");
    assert_eq!(lines[5], "project", "hostname is the project dir's name");
    let made = std::fs::metadata(project.join("made-inside")).unwrap();
    assert_eq!(made.uid(), f.env.uid(), "owned by the user on the host");
}

#[test]
fn exit_codes_are_the_commands_own_or_podmans() {
    let f = fixture();
    assert_eq!(f.run(&["true"]).status.code(), Some(0));
    assert_eq!(f.sh("exit 7").status.code(), Some(7));
    let out = f.run(&["no-such-command"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(
        text(&out.stderr).contains("command not found in the sandbox: no-such-command"),
        "{}",
        text(&out.stderr)
    );
    let out = f.run(&["/usr/bin/not-executable"]);
    assert_eq!(out.status.code(), Some(126), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("cannot execute /usr/bin/not-executable"),
        "{}",
        text(&out.stderr)
    );
}

/// Commands as users type them: the Maven and Gradle wrappers (`./mvnw`), a script in a
/// subdir. A name with a slash is found from the working dir, as a shell finds it; a missing
/// one exits 127 and one without its x bit 126, as podman's do.
#[test]
fn relative_commands_are_found_from_the_working_dir() {
    use std::os::unix::fs::PermissionsExt as _;
    let f = fixture();
    let script = |relative: &str, mode: u32| {
        let path = f.env.write(
            &format!("project/{relative}"),
            "#!/bin/sh\necho \"$0 ran in $(pwd) with $*\"\n",
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        f.env.give_to_user(&path);
    };
    script("mvnw", 0o755);
    script("sub/x.sh", 0o755);
    script("sub/plain.sh", 0o644);
    let project = f.env.path().join("project");
    for (command, shown) in [("./mvnw", "./mvnw"), ("sub/x.sh", "sub/x.sh")] {
        let out = f.run(&[command, "-o", "package"]);
        assert!(out.status.success(), "{command}: {}", text(&out.stderr));
        assert_eq!(
            text(&out.stdout),
            format!("{shown} ran in {} with -o package\n", project.display()),
            "{command}"
        );
    }
    let out = f.run(&["./no-such-wrapper"]);
    assert_eq!(out.status.code(), Some(127), "{}", text(&out.stderr));
    let out = f.run(&["sub/plain.sh"]);
    assert_eq!(out.status.code(), Some(126), "{}", text(&out.stderr));
}

/// A project dir outside the user's home (`/tmp`, `/srv`), removed when dropped.
struct ProjectOutsideHome(tempfile::TempDir);

impl ProjectOutsideHome {
    fn new(env: &TestEnv) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sandbox-elsewhere-")
            .tempdir_in("/tmp")
            .unwrap();
        env.give_to_user(dir.path());
        Self(dir)
    }
}

/// Runs `script` in `project` the way a user types it (from that dir), returning its output.
fn sh_in(f: &Fixture, project: &std::path::Path, script: &str) -> std::process::Output {
    f.command(&["sh", "-c", script])
        .current_dir(project)
        .output()
        .unwrap()
}

/// Most projects live under the home (`~/src/app`): a command starts in the project and sees
/// its files, which it writes as the user, while the rest of the home is the per-project one.
/// (The per-project home was bound over the project: commands started in `/` and saw nothing.)
#[test]
fn a_project_under_the_home_is_seen_at_its_own_path() {
    let f = fixture();
    let project = f.env.project();
    assert!(
        project.starts_with(f.env.passwd_home()),
        "the fixture's project should be under the passwd home"
    );
    f.env.write("project/pom.xml", "<project/>\n");
    let out = sh_in(
        &f,
        &project,
        "pwd; ls; touch made-inside; touch ~/in-the-home && echo home-writable",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("{}\npom.xml\nhome-writable\n", project.display())
    );
    let made = std::fs::metadata(project.join("made-inside")).unwrap();
    assert_eq!(made.uid(), f.env.uid(), "owned by the user on the host");
    // The home's own file went to the per-project home, not the real one.
    assert!(
        !f.env.passwd_home().join("in-the-home").exists(),
        "the real home was written"
    );
}

/// A project outside the home (`/tmp/x`, `/srv/x`) is bound at its own path too, and the home
/// inside is the per-project one.
#[test]
fn a_project_outside_the_home_is_seen_at_its_own_path() {
    let f = fixture();
    let project = ProjectOutsideHome::new(&f.env);
    let file = project.0.path().join("Makefile");
    std::fs::write(&file, "all:\n").unwrap();
    f.env.give_to_user(&file);
    let out = sh_in(
        &f,
        project.0.path(),
        "pwd; ls; touch made-inside; echo $HOME; ls -A ~",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "{}\nMakefile\n{}\n.bashrc\n",
            project.0.path().display(),
            f.env.passwd_home().display()
        )
    );
    let made = std::fs::metadata(project.0.path().join("made-inside")).unwrap();
    assert_eq!(made.uid(), f.env.uid(), "owned by the user on the host");
}

/// The user whose home passwd names through a symlink (`.../home -> var/home`, as Fedora
/// Silverblue's `/home`), made by scripts/host-packages.sh. Its tests hold a lock: one of them
/// makes the home itself a project, which every project under it would then find.
struct LinkedHome {
    f: Fixture,
    _lock: nix::fcntl::Flock<std::fs::File>,
}

fn linked_home() -> LinkedHome {
    let name =
        std::env::var("SANDBOX_TEST_LINKED_USER").unwrap_or_else(|_| "sandbox-test-linked".into());
    let lock = std::fs::File::create("/tmp/sandbox-it-linked-home.lock").unwrap();
    // Blocks until the other test of this user ends.
    let lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap();
    let f = fixture_in(TestEnv::for_user(&name));
    let home = f.env.passwd_home();
    assert_ne!(
        std::fs::canonicalize(&home).unwrap(),
        home,
        "{name}'s home should be reached through a symlink; scripts/host-packages.sh makes it so"
    );
    LinkedHome { f, _lock: lock }
}

/// A home reached through a symlink (Silverblue's `/home -> var/home`): the kernel gives the
/// project's path resolved, so the home is mounted at its resolved path and the project is
/// seen inside it, by either name. (The home went to the named path, the project to the
/// resolved one: `cd ~/src/app` inside found nothing.)
#[test]
fn a_project_under_a_home_reached_through_a_symlink_is_inside_that_home() {
    let LinkedHome { f, _lock } = linked_home();
    let named = f.env.project();
    let resolved = std::fs::canonicalize(&named).unwrap();
    let real_home = std::fs::canonicalize(f.env.passwd_home()).unwrap();
    f.env.write("project/pom.xml", "<project/>\n");
    let out = sh_in(
        &f,
        &named,
        &format!(
            "pwd; echo $HOME; cd {} && ls; cd ~/{} && ls",
            named.display(),
            resolved.strip_prefix(&real_home).unwrap().display()
        ),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "{}\n{}\npom.xml\npom.xml\n",
            resolved.display(),
            real_home.display()
        )
    );
}

/// The home itself as the project (`cd ~ && sandbox run`): the real home is what commands
/// see and write, except where a cache is mounted, which hides the real `~/.m2`.
#[test]
fn the_home_itself_as_the_project_is_the_real_home_but_for_caches() {
    let LinkedHome { f, _lock } = linked_home();
    let home = f.env.passwd_home();
    let unique = format!("{}-{:x}", std::process::id(), rand_suffix());
    let made = home.join(format!("made-inside-{unique}"));
    let marker = home.join(format!("host-file-{unique}"));
    let m2 = home.join(".m2");
    let toml = home.join("sandbox.toml");
    struct Cleanup(Vec<std::path::PathBuf>);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            for p in &self.0 {
                let _ = std::fs::remove_file(p).or_else(|_| std::fs::remove_dir_all(p));
            }
        }
    }
    let _cleanup = Cleanup(vec![made.clone(), marker.clone(), m2.clone(), toml.clone()]);
    std::fs::write(&marker, "from the host\n").unwrap();
    std::fs::create_dir_all(&m2).unwrap();
    std::fs::write(m2.join("settings.xml"), "<settings/>\n").unwrap();
    std::fs::write(
        &toml,
        format!(
            "[toolchain]\nimage = \"{}\"\n[network]\nmode = \"none\"\n[caches]\nm2 = \"~/.m2\"\n",
            f.image
        ),
    )
    .unwrap();
    for p in [&marker, &m2, &toml] {
        f.env.give_to_user(p);
    }
    let out = f
        .env
        .command(&[
            "run",
            "--",
            "sh",
            "-c",
            &format!(
                "pwd; cat ~/host-file-{unique}; ls -A ~/.m2 | wc -l; touch ~/made-inside-{unique}"
            ),
        ])
        .current_dir(&home)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "{}\nfrom the host\n0\n",
            std::fs::canonicalize(&home).unwrap().display()
        )
    );
    assert_eq!(std::fs::metadata(&made).unwrap().uid(), f.env.uid());
    assert!(m2.join("settings.xml").exists(), "the real ~/.m2 is kept");
}

/// `/` inside is the image root's (root, 0755), as podman's: a daemon's user (postgres,
/// `_apt`, www-data) reaches the image's files. It was the user's and 0700, so every other id
/// inside failed on `libc.so.6: Permission denied`.
#[test]
fn the_root_has_the_images_mode_and_other_ids_reach_it() {
    let f = fixture();
    let out = f.sh("stat -c '%a %u:%g' /");
    assert_eq!(text(&out.stdout), "755 0:0\n", "{}", text(&out.stderr));
    let mut args = vec![
        "run",
        "--network",
        "none",
        "--as-root",
        "--image",
        &f.image,
        "--",
    ];
    args.extend([
        "as-uid",
        "65534",
        "65534",
        "/bin/busybox",
        "cat",
        "/etc/passwd",
    ]);
    let out = f.env.run(&args);
    assert!(
        out.status.success() && text(&out.stdout).contains("root:x:0:0"),
        "uid 65534: {} {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // The user still cannot write to /, as in podman.
    let out = f.sh("touch /not-mine");
    assert!(!out.status.success(), "the user wrote to /");
}

/// A new (or reset) home gets the image's /etc/skel shell files, as `useradd -m` makes one;
/// a home with anything in it keeps what the user made, and a link in skel copies nothing.
#[test]
fn a_new_home_gets_the_images_skel_files_once() {
    let f = fixture();
    let out = f.sh("cat ~/.bashrc; ls -a ~ | grep -c profile; echo mine > ~/.bashrc");
    assert_eq!(
        text(&out.stdout),
        "# the image's skel bashrc\n0\n",
        "{}",
        text(&out.stderr)
    );
    let out = f.sh("cat ~/.bashrc");
    assert_eq!(text(&out.stdout), "mine\n", "{}", text(&out.stderr));
    // `sandbox reset` empties it: skel comes again.
    f.env.ok(&["reset"]);
    let out = f.sh("cat ~/.bashrc");
    assert_eq!(
        text(&out.stdout),
        "# the image's skel bashrc\n",
        "{}",
        text(&out.stderr)
    );
}

fn signal_after_start(
    f: &Fixture,
    args: &[&str],
    signal: libc::c_int,
    ready_marker: &str,
) -> (Option<i32>, String) {
    let mut child = f.spawn(args);
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    while !seen.contains(ready_marker) {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "the command ended before it was ready: {seen}");
        seen.push_str(&text(&buf[..n]));
    }
    crate::support::signal(child.id() as i32, signal);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    (status.code(), seen + &rest)
}

#[test]
fn sigint_and_sigterm_sent_to_sandbox_reach_the_command() {
    let f = fixture();
    let (code, _) = signal_after_start(
        &f,
        &["sh", "-c", "echo ready; exec sleep 30"],
        libc::SIGINT,
        "ready",
    );
    assert_eq!(code, Some(130));
    let (code, out) = signal_after_start(
        &f,
        &[
            "sh",
            "-c",
            "trap 'echo trapped; exit 143' TERM; echo ready; sleep 30 & wait",
        ],
        libc::SIGTERM,
        "ready",
    );
    assert_eq!(code, Some(143), "{out}");
    assert!(out.contains("trapped"), "the command's trap ran: {out}");
}

#[test]
fn fifty_megabytes_of_binary_stdin_pass_through_byte_for_byte() {
    let f = fixture();
    let data: Vec<u8> = (0..50 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let mut child = f
        .env
        .command(&[
            "run",
            "--network",
            "none",
            "--image",
            &f.image,
            "--",
            "sha256sum",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&data).map(|_| oci::digest(&data)));
    let out = child.wait_with_output().unwrap();
    let expected = writer.join().unwrap().unwrap();
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout)
            .split_whitespace()
            .next()
            .map(|h| format!("sha256:{h}")),
        Some(expected)
    );
}

#[test]
fn the_sandbox_sees_only_its_own_processes_and_files() {
    let f = fixture();
    let out = f.sh("ps -o pid,comm | tail -n +2 | wc -l; ls /proc/self/fd; grep -E '^Cap(Inh|Amb|Eff)' /proc/self/status; ls /home");
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let count: usize = lines[0].trim().parse().unwrap();
    assert!(count <= 8, "ps inside sees host processes: {stdout}");
    let fds: Vec<&str> = lines
        .iter()
        .skip(1)
        .take_while(|l| l.chars().all(|c| c.is_ascii_digit()))
        .copied()
        .collect();
    assert!(
        fds.iter().all(|fd| ["0", "1", "2", "3"].contains(fd)),
        "fds beyond stdio are open inside: {fds:?}"
    );
    for cap in [
        "CapInh:\t0000000000000000",
        "CapAmb:\t0000000000000000",
        "CapEff:\t0000000000000000",
    ] {
        assert!(stdout.contains(cap), "{cap} missing in {stdout}");
    }
    let home_listing = lines.last().unwrap();
    assert_eq!(
        *home_listing,
        f.env
            .user
            .as_ref()
            .map_or_else(|| std::env::var("USER").unwrap(), |u| u.name.clone()),
        "only the user's own (empty) home"
    );

    // Writes outside the project: refused, or kept in the discarded upper dir.
    let out = f.sh("touch /etc/x 2>/dev/null && echo etc-ok; touch /usr/x 2>/dev/null && echo usr-ok; echo mine > $HOME/file && cat $HOME/file");
    let stdout = text(&out.stdout);
    assert!(
        !stdout.contains("etc-ok") && !stdout.contains("usr-ok"),
        "{stdout}"
    );
    assert!(stdout.contains("mine"), "HOME is writable: {stdout}");
    assert!(
        !f.env.home().join("file").exists(),
        "the host's home is untouched"
    );
    // The home persists (in the store, never the host's); a fresh one is empty.
    let out = f.sh("cat $HOME/file 2>&1");
    assert!(text(&out.stdout).contains("mine"), "the home persists");
    let out = f.env.run(&[
        "run",
        "--network",
        "none",
        "--fresh-home",
        "--image",
        &f.image,
        "--",
        "sh",
        "-c",
        "cat $HOME/file 2>&1",
    ]);
    assert!(
        !text(&out.stdout).contains("mine"),
        "--fresh-home: changes outside the project are discarded"
    );
    assert!(
        f.env.store_entries("containers").is_empty(),
        "the container's dir is removed: {:?}",
        f.env.store_entries("containers")
    );
}

#[test]
fn orphans_are_reaped_and_leftovers_are_killed_when_the_command_ends() {
    let f = fixture();
    // The orphaned sleep is re-parented to pid 1, which must reap it when it ends.
    let out = f.sh("(sleep 0.2 &); sleep 0.6; ps -o stat,comm");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let mut rows = table.lines();
    assert!(
        rows.next().is_some_and(|header| header.contains("STAT")),
        "ps printed no process table: {table}"
    );
    let rows: Vec<&str> = rows.collect();
    assert!(
        rows.iter().any(|r| r.ends_with(" ps")),
        "ps does not list itself: {table}"
    );
    assert!(
        !rows.iter().any(|r| r.trim_start().starts_with('Z')),
        "a zombie was left: {table}"
    );
    let start = Instant::now();
    let out = f.sh("sleep 60 & echo started");
    assert!(out.status.success());
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "a background sleep kept the container alive"
    );
}

#[test]
fn host_fds_do_not_leak_inside() {
    let f = fixture();
    let leaked = std::fs::File::open("/etc/hostname").unwrap();
    let mut cmd = f.env.command(&[
        "run",
        "--network",
        "none",
        "--image",
        &f.image,
        "--",
        "ls",
        "/proc/self/fd",
    ]);
    // At fd 7, open across exec.
    sys::prepare_fds(&mut cmd, [(leaked.as_fd(), 7)]);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    assert!(
        ["0", "1", "2"]
            .iter()
            .all(|fd| listing.lines().any(|l| l == *fd)),
        "stdio is missing inside: {listing}"
    );
    assert!(
        !listing.lines().any(|l| l == "7"),
        "host fd 7 is visible inside: {listing}"
    );
}

#[test]
fn a_second_run_joins_the_running_container() {
    let f = fixture();
    let mut first = f.spawn(&[
        "sh",
        "-c",
        "readlink /proc/self/ns/pid; echo ready; sleep 30",
    ]);
    let mut stdout = first.stdout.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    while !seen.contains("ready") {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "first container ended: {seen}");
        seen.push_str(&text(&buf[..n]));
    }
    let first_ns = seen.lines().next().unwrap().to_owned();
    let out = f.run(&["readlink", "/proc/self/ns/pid"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        first_ns,
        "the second run is in the same pid namespace"
    );

    let ps = f.env.ok(&["ps"]);
    assert!(ps.lines().count() == 2 && ps.contains(&f.image), "{ps}");
    let out = f.env.ok(&["stop", "--time", "5"]);
    assert!(out.starts_with("stopped"), "{out}");
    let status = first.wait().unwrap();
    assert!(!status.success());
    wait_for("ps to be empty", || f.env.ok(&["ps"]).lines().count() == 1);
}

/// A pty pair for driving `enter`: (master, slave).
fn pty(rows: u16, cols: u16) -> (OwnedFd, OwnedFd) {
    let ws = nix::pty::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pair = nix::pty::openpty(Some(&ws), None).unwrap();
    (pair.master, pair.slave)
}

fn spawn_on_pty(mut cmd: Command, slave: &OwnedFd) -> Child {
    // A new session with the pty as controlling terminal and stdio.
    sys::prepare_on_terminal(&mut cmd, slave.as_fd(), [0, 1, 2]);
    cmd.spawn().unwrap()
}

/// What one wait on a terminal's master side gave.
enum Shown {
    Bytes(usize),
    Nothing,
    Closed,
}

/// Waits up to `ms` for what the terminal shows next, read into `buf`.
fn next_on_screen(master: &mut std::fs::File, buf: &mut [u8], ms: i32) -> Shown {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
    let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
    if !matches!(poll(&mut fds, timeout), Ok(n) if n > 0) {
        return Shown::Nothing;
    }
    match master.read(buf) {
        Ok(n) if n > 0 => Shown::Bytes(n),
        _ => Shown::Closed,
    }
}

struct Screen {
    master: std::fs::File,
    seen: String,
}

impl Screen {
    fn expect(&mut self, needle: &str) {
        self.take_until(needle);
    }

    /// What the terminal shows up to `needle`, which must come within 20 s.
    fn take_until(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 4096];
        while !self.seen.contains(needle) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {needle:?}; screen so far: {:?}",
                self.seen
            );
            match next_on_screen(&mut self.master, &mut buf, 200) {
                Shown::Bytes(n) => self.seen.push_str(&text(&buf[..n])),
                Shown::Nothing => {}
                Shown::Closed => break,
            }
        }
        let at = self.seen.find(needle).unwrap() + needle.len();
        self.seen.drain(..at).collect()
    }
    fn send(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).unwrap();
    }
}

/// Everything the terminal shows until `child` ends and the output stops.
fn screen_until_exit(master: &OwnedFd, mut child: Child) -> (Vec<u8>, Option<i32>) {
    let mut master = std::fs::File::from(master.try_clone().unwrap());
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let mut code = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "no end; screen so far: {seen:?}");
        match next_on_screen(&mut master, &mut buf, 300) {
            Shown::Bytes(n) => seen.extend_from_slice(&buf[..n]),
            Shown::Nothing if code.is_some() => break,
            Shown::Nothing => {}
            Shown::Closed => break,
        }
        if code.is_none() {
            code = child.try_wait().unwrap().map(|s| s.code());
        }
    }
    (seen, code.flatten())
}

/// A terminal that sends Enter as CR NUL (telnet's bare CR; serial and web consoles): the
/// shell reads the CR that ends `sandbox run -- echo clean` and the NUL waits in the input.
/// The screen shows exactly `clean`. (It was forwarded to the sandbox's pty, which echoed it:
/// `^@clean`.)
#[test]
fn the_terminal_shows_only_the_commands_output() {
    let f = fixture();
    let (master, slave) = pty(30, 100);
    // As the user's shell leaves it: readline has turned echo off while the line was typed.
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let mut modes = tcgetattr(slave.as_fd()).unwrap();
    modes.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(slave.as_fd(), SetArg::TCSANOW, &modes).unwrap();
    std::fs::File::from(master.try_clone().unwrap())
        .write_all(b"\0")
        .unwrap();
    let cmd = f.env.command(&[
        "run",
        "--network",
        "none",
        "--image",
        &f.image,
        "--",
        "echo",
        "clean",
    ]);
    let child = spawn_on_pty(cmd, &slave);
    let (screen, code) = screen_until_exit(&master, child);
    assert_eq!(code, Some(0));
    assert_eq!(text(&screen), "clean\r\n", "the bytes the terminal showed");
}

#[test]
fn enter_gives_an_interactive_shell_on_a_new_pty() {
    let f = fixture();
    let (master, slave) = pty(30, 100);
    let cmd = f.env.command(&[
        "enter",
        "--network",
        "none",
        "--image",
        &f.image,
        "-e",
        "PS1=PROMPT> ",
    ]);
    let mut child = spawn_on_pty(cmd, &slave);
    drop(slave);
    let mut screen = Screen {
        master: std::fs::File::from(master),
        seen: String::new(),
    };
    screen.expect("PROMPT> ");
    screen.send("stty size\r");
    screen.expect("30 100");
    screen.expect("PROMPT> ");
    // The terminal is the container's own, and the user's: `tty` names it.
    screen.send("tty; stat -c owner=%u $(tty)\r");
    screen.expect("/dev/pts/0");
    screen.expect(&format!("owner={}", f.env.uid()));
    screen.expect("PROMPT> ");
    // Resize the outer terminal: the shell inside sees it.
    let ws = libc::winsize {
        ws_row: 40,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    sys::set_window_size(screen.master.as_fd(), &ws);
    // The new size reaches the shell with SIGWINCH: asked until it says so.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        screen.send("stty size\r");
        let shown = screen.take_until("PROMPT> ");
        if shown.contains("40 120") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the shell never saw the new size: {shown:?}"
        );
    }
    // Ctrl-C interrupts the foreground job, not the shell.
    screen.send("sleep 30\r");
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    screen.send("\x03");
    screen.expect("PROMPT> ");
    assert!(start.elapsed() < Duration::from_secs(10));
    // TIOCSTI from inside only reaches the sandbox's own terminal.
    screen.send("echo alive\r");
    screen.expect("alive");
    screen.send("exit 3\r");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3));
}

/// `sandbox run CMD` needs no `--`: the first word that is not sandbox's option starts it.
#[test]
fn a_command_runs_without_the_double_dash() {
    let f = fixture();
    let out = f.env.ok(&[
        "run",
        "--network",
        "none",
        "--image",
        &f.image,
        "echo",
        "-n",
        "--network",
    ]);
    assert_eq!(out, "--network");
}

/// `-v HOST:CONTAINER[:ro]` mounts a host dir (read-only when asked), `--env-file` reads
/// variables before `-e`, and a bad line is named with its file and line.
#[test]
fn volumes_and_env_files_are_the_users_own_flags() {
    let f = fixture();
    let data = f.env.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("in.txt"), "from the host\n").unwrap();
    f.env.give_to_user(&data);
    let env_file = f.env.write(
        "vars.env",
        "# settings\nAPI=http://localhost:8080\n\nMODE=dev\n",
    );
    let ro = format!("{}:/data:ro", data.display());
    let rw = format!("{}:/rw", data.display());
    let env_file_arg = env_file.display().to_string();
    let out = f.env.run(&[
        "run", "--network", "none", "--image", &f.image, "-v", &ro, "-v", &rw,
        "--env-file", &env_file_arg, "-e", "MODE=prod", "--", "sh", "-c",
        "cat /data/in.txt; touch /data/x 2>/dev/null && echo ro-written; echo made > /rw/out.txt; echo $API $MODE",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "from the host\nhttp://localhost:8080 prod\n"
    );
    let made = data.join("out.txt");
    assert_eq!(std::fs::read_to_string(&made).unwrap(), "made\n");
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&made).unwrap()),
        f.env.uid()
    );
    let bad = f.env.write("bad.env", "OK=1\nnot a variable\n");
    let stderr = f.env.fails(&[
        "run",
        "--network",
        "none",
        "--image",
        &f.image,
        "--env-file",
        &bad.display().to_string(),
        "true",
    ]);
    assert!(
        stderr.contains("bad.env:2: `not a variable` is not a variable")
            && stderr.contains("hint: KEY=VALUE per line"),
        "{stderr}"
    );
    // What .env files hold (`export`, spaces, quotes), and podman's `-e KEY` (your value) and
    // `-v ...:Z` (SELinux label, nothing to relabel here).
    let dotenv = f.env.write(
        "dot.env",
        "export API=\"http://localhost:9000\"\nMODE = 'staging'\n",
    );
    let volume = format!("{}:/data:ro,Z", data.display());
    let out = f
        .env
        .command(&[
            "run",
            "--network",
            "none",
            "--image",
            &f.image,
            "--env-file",
            &dotenv.display().to_string(),
            "-e",
            "FROM_HOST",
            "-e",
            "UNSET_HERE",
            "-v",
            &volume,
            "--",
            "sh",
            "-c",
            "echo $API $MODE $FROM_HOST ${UNSET_HERE-unset}; cat /data/in.txt",
        ])
        .env("FROM_HOST", "host value")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "http://localhost:9000 staging host value unset\nfrom the host\n"
    );
    let stderr = f.env.fails(&[
        "run",
        "--network",
        "none",
        "--image",
        &f.image,
        "-v",
        "/no/such/dir:/x",
        "true",
    ]);
    assert!(stderr.contains("/no/such/dir does not exist"), "{stderr}");
}

/// A set-up step of pid 1 that fails is the failure named, on every network: the helper that
/// attaches to pid 1 meanwhile (the relay, pasta) then fails too, having lost pid 1, and once
/// its error won the race and sent the user to nf_tables or /dev/net/tun.
#[test]
fn a_failed_mount_is_named_as_such_whatever_the_network() {
    let f = fixture();
    let file = f.env.write("some-file", "x\n");
    let volume = format!("{}:/proc/x", file.display());
    for network in ["relay", "pasta"].repeat(15) {
        let stderr = f.env.fails(&[
            "run",
            "--network",
            network,
            "--image",
            &f.image,
            "-v",
            &volume,
            "--",
            "true",
        ]);
        assert!(
            stderr.contains("/proc/x") && !stderr.contains("network"),
            "--network {network}: {stderr}"
        );
        // The failed start took back what it made: no container dir stays behind.
        assert_eq!(
            f.env.store_entries("containers"),
            Vec::<String>::new(),
            "--network {network}"
        );
    }
    // An overlay that cannot be mounted (a store whose path overlayfs cannot take), likewise.
    let odd = f.env.path().join("odd:store");
    let odd = odd.to_str().unwrap();
    f.env.ok(&["--root", odd, "pull", &f.image]);
    for network in ["relay", "pasta", "none", "relay", "pasta"] {
        let stderr = f.env.fails(&[
            "--root",
            odd,
            "run",
            "--network",
            network,
            "--image",
            &f.image,
            "--",
            "true",
        ]);
        assert!(
            stderr.contains("overlay") && stderr.contains("`:`") && !stderr.contains("network"),
            "--network {network}: {stderr}"
        );
        let containers = std::path::Path::new(odd).join("containers");
        let left: Vec<_> = std::fs::read_dir(&containers).unwrap().collect();
        assert!(left.is_empty(), "--network {network}: {left:?} left behind");
    }
}

/// On a terminal, `enter`'s banner comes after the pull's bars, not above them.
#[test]
fn the_banner_prints_after_the_progress_bars() {
    let env = TestEnv::new();
    let registry = Registry::start();
    let image = oci::build(&ImageSpec {
        layers: vec![LayerSpec {
            entries: oci::busybox_full_entries(),
            compression: Compression::Gzip,
        }],
        architecture: oci::host_arch().into(),
    });
    oci::push(&registry.url(), "banner/app", "1", &image);
    let reference = format!("{}/banner/app:1", registry.host());
    let (master, slave) = pty(30, 120);
    let mut cmd = env.command(&[
        "enter",
        "--network",
        "none",
        "--image",
        &reference,
        "-e",
        "PS1=PROMPT> ",
    ]);
    // indicatif draws bars only on a terminal it knows.
    cmd.env("TERM", "xterm");
    let mut child = spawn_on_pty(cmd, &slave);
    drop(slave);
    let mut master = std::fs::File::from(master);
    let mut transcript = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 4096];
    while !transcript.contains("PROMPT> ") {
        assert!(Instant::now() < deadline, "no prompt: {transcript:?}");
        match next_on_screen(&mut master, &mut buf, 200) {
            Shown::Bytes(n) => transcript.push_str(&text(&buf[..n])),
            Shown::Nothing => {}
            Shown::Closed => break,
        }
    }
    master.write_all(b"exit\r").unwrap();
    let _ = child.wait();
    let bar = transcript
        .rfind("done")
        .unwrap_or_else(|| panic!("a layer bar was drawn: {transcript:?}"));
    let banner = transcript
        .find("changes outside the project dir")
        .expect("the banner");
    assert!(
        bar < banner,
        "the banner came before the bars finished: {transcript:?}"
    );
}

/// `enter` without a terminal says so at once instead of waiting; SIGTERM and SIGHUP to
/// `enter` end the shell (which ignores SIGTERM) and the session, cleanly.
#[test]
fn enter_needs_a_terminal_and_ends_on_sigterm_or_sighup() {
    let f = fixture();
    let started = Instant::now();
    let out = f
        .env
        .command(&["enter", "--network", "none", "--image", &f.image])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("stdin is not a terminal")
            && text(&out.stderr).contains("sandbox run"),
        "{}",
        text(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    for signal in [libc::SIGTERM, libc::SIGHUP] {
        let (master, slave) = pty(24, 80);
        let cmd = f.env.command(&[
            "enter",
            "--network",
            "none",
            "--image",
            &f.image,
            "-e",
            "PS1=PROMPT> ",
        ]);
        let mut child = spawn_on_pty(cmd, &slave);
        drop(slave);
        let mut screen = Screen {
            master: std::fs::File::from(master),
            seen: String::new(),
        };
        screen.expect("PROMPT> ");
        crate::support::signal(child.id() as i32, signal);
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "enter kept running after signal {signal}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(status.code(), Some(128 + libc::SIGHUP), "signal {signal}");
        assert!(f.env.store_entries("containers").is_empty());
    }
}

#[test]
fn tiocsti_from_inside_cannot_reach_the_host_terminal() {
    let f = fixture();
    // The host terminal as stdin, stdout a pipe: no pty is made; the terminal is relayed
    // through a pipe, and the filter refuses TIOCSTI on any fd anyway.
    let (master, slave) = pty(24, 80);
    let mut cmd = f.env.command(&[
        "run",
        "--network",
        "none",
        "--image",
        &f.image,
        "--",
        "/bin/tiocsti",
    ]);
    // A session with the pty as controlling terminal, on stdin only.
    sys::prepare_on_terminal(&mut cmd, slave.as_fd(), [0]);
    let out = cmd.stdout(Stdio::piped()).output().unwrap();
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("tiocsti=Operation not permitted"),
        "{stdout} {}",
        text(&out.stderr)
    );
    // Nothing was injected: the terminal's input queue is empty.
    let pending = sys::pending_input(slave.as_fd()).unwrap();
    assert_eq!(pending, 0, "input was injected into the host terminal");
    drop(master);
}

#[test]
fn run_without_an_image_explains_what_to_do() {
    let env = TestEnv::new();
    let err = env.fails(&["run", "--", "true"]);
    assert!(err.contains("no image to run"), "{err}");
    assert!(
        err.lines().any(|l| l.starts_with("hint: ")
            && l.contains("sandbox init")
            && l.contains("pass an image")),
        "{err}"
    );
}

#[test]
fn network_none_has_only_loopback_and_host_shares_the_hosts() {
    let f = fixture();
    let out = f.sh("ls /sys/class/net; ip link show lo | head -1");
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("lo"), "{stdout}");
    assert!(
        lines.next().is_some_and(|l| l.contains("UP")),
        "lo is up: {stdout}"
    );
    let host: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let out = f.env.run(&[
        "run",
        "--network",
        "host",
        "--image",
        &f.image,
        "--",
        "ls",
        "/sys/class/net",
    ]);
    let inside: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    for name in &host {
        assert!(
            inside.contains(name),
            "host interface {name} is not visible with --network host: {inside:?}"
        );
    }
}

#[test]
fn only_terminal_and_locale_variables_of_the_host_come_in() {
    let f = fixture();
    let out = f
        .env
        .command(&[
            "run",
            "--network",
            "none",
            "-e",
            "FROM_FLAG=yes",
            "--image",
            &f.image,
            "--",
            "env",
        ])
        .env("SANDBOX_TEST_SECRET", "canary")
        .env("REGISTRY_PASSWORD", "canary")
        .env("TERM", "xterm-test")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap();
    let env = text(&out.stdout);
    assert!(!env.contains("canary"), "host secrets leaked in: {env}");
    for expected in [
        "TERM=xterm-test",
        "LC_ALL=C.UTF-8",
        "FROM_FLAG=yes",
        "PATH=/bin",
        "HOME=/",
    ] {
        assert!(
            env.lines().any(|l| l.starts_with(expected)),
            "{expected} missing: {env}"
        );
    }
}

#[test]
fn a_setuid_binary_inside_gains_nothing() {
    let env = TestEnv::new();
    let registry = Registry::start();
    let mut entries = oci::busybox_full_entries();
    entries.extend([Entry::dir("opt"), Entry::dir("opt/suid")]);
    entries.push(Entry::File {
        path: "opt/suid/id".into(),
        mode: 0o4755,
        uid: 0,
        gid: 0,
        data: std::fs::read("/bin/busybox").unwrap(),
    });
    let image = oci::build(&ImageSpec {
        layers: vec![LayerSpec {
            entries,
            compression: Compression::Gzip,
        }],
        architecture: oci::host_arch().into(),
    });
    oci::push(&registry.url(), "suid/app", "1", &image);
    let reference = format!("{}/suid/app:1", registry.host());
    let out = env.run(&[
        "run",
        "--network",
        "none",
        "--image",
        &reference,
        "--",
        "/opt/suid/id",
        "-u",
    ]);
    assert_eq!(
        text(&out.stdout).trim(),
        env.uid().to_string(),
        "setuid root took effect: {}",
        text(&out.stderr)
    );
    let out = env.run(&["run", "--as-root", "--image", &reference, "--", "id", "-u"]);
    assert_eq!(
        text(&out.stdout).trim(),
        "0",
        "--as-root runs as container root"
    );
}

#[test]
fn an_image_whose_proc_is_a_symlink_is_refused() {
    let env = TestEnv::new();
    let registry = Registry::start();
    let victim = env.path().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    env.give_to_user(&victim);
    let mut entries = oci::busybox_entries();
    entries.push(Entry::symlink("proc", victim.to_str().unwrap()));
    let image = oci::build(&ImageSpec {
        layers: vec![LayerSpec {
            entries,
            compression: Compression::Gzip,
        }],
        architecture: oci::host_arch().into(),
    });
    oci::push(&registry.url(), "evil/proc", "1", &image);
    let err = env.fails(&[
        "run",
        "--network",
        "none",
        "--image",
        &format!("{}/evil/proc:1", registry.host()),
        "--",
        "true",
    ]);
    assert!(err.contains("`/proc` in the image is a symlink"), "{err}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("hint: the image has a symlink where sandbox mounts")),
        "the refusal's hint comes with it: {err}"
    );
    assert!(
        std::fs::read_dir(&victim).unwrap().next().is_none(),
        "something was mounted or written at the symlink's target"
    );
}

#[test]
fn a_missing_newuidmap_names_its_package() {
    // A fresh store: no pause process holds a namespace yet, so one must be made.
    let env = TestEnv::new();
    let out = env
        .command(&[
            "run",
            "--network",
            "none",
            "--image",
            "127.0.0.1:1/any/image",
            "--",
            "true",
        ])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let err = text(&out.stderr);
    assert!(err.contains("`newuidmap` is not installed"), "{err}");
    assert!(err.contains("apt-get install uidmap"), "{err}");
}

/// Two layers: the upper one whites out a file and marks a directory opaque.
fn layered_image(env: &TestEnv, registry: &Registry) -> String {
    let mut base = oci::busybox_full_entries();
    base.extend([
        Entry::dir("data"),
        Entry::file("data/old", b"old"),
        Entry::file("gone", b"x"),
    ]);
    let top = vec![
        Entry::file(".wh.gone", b""),
        Entry::dir("data"),
        Entry::file("data/.wh..wh..opq", b""),
        Entry::file("data/new", b"new"),
    ];
    let image = oci::build(&ImageSpec {
        layers: vec![
            LayerSpec {
                entries: base,
                compression: Compression::Gzip,
            },
            LayerSpec {
                entries: top,
                compression: Compression::Zstd,
            },
        ],
        architecture: oci::host_arch().into(),
    });
    oci::push(&registry.url(), "layered/app", "1", &image);
    let reference = format!("{}/layered/app:1", registry.host());
    env.ok(&["pull", &reference]);
    reference
}

#[test]
fn whiteouts_and_opaque_dirs_work_on_kernel_overlayfs_and_fuse_overlayfs() {
    let env = TestEnv::new();
    let registry = Registry::start();
    let reference = layered_image(&env, &registry);
    for (choice, expected) in [("kernel", "kernel overlayfs"), ("fuse", "fuse-overlayfs")] {
        if choice == "fuse" {
            let fuse = std::fs::metadata("/dev/fuse").map(|m| {
                std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o006 == 0o006
            });
            assert!(
                fuse.unwrap_or(false),
                "/dev/fuse must be usable by ordinary users for the fuse-overlayfs fallback (Debian's default is 0666; scripts/host-packages.sh sets it)"
            );
        }
        let out = env
            .command(&[
                "-v",
                "run",
                "--network",
                "none",
                "--image",
                &reference,
                "--",
                "sh",
                "-c",
                "ls /data; test -e /gone && echo gone-visible; touch x && echo project-writable",
            ])
            .env("SANDBOX_OVERLAY", choice)
            .output()
            .unwrap();
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{choice}: {stderr}");
        assert_eq!(
            stdout, "new\nproject-writable\n",
            "{choice}: the whiteout or the opaque marker was not honoured"
        );
        assert!(
            stderr.contains(&format!("runs on {expected}")),
            "-v names the overlay: {stderr}"
        );
    }
}

#[test]
fn later_commands_reuse_the_user_namespace_the_pause_process_holds() {
    let f = fixture();
    // Each command nests a user namespace of its own below the store's, which the pause
    // process holds: a command that had to make the store's namespace anew would start (and
    // record) another pause process.
    assert!(f.run(&["true"]).status.success());
    let pid_file = std::fs::read_to_string(f.env.store().join("pause.pid")).unwrap();
    assert!(f.run(&["true"]).status.success());
    let again = std::fs::read_to_string(f.env.store().join("pause.pid")).unwrap();
    assert_eq!(
        pid_file, again,
        "the second command made a namespace of its own"
    );
    let pid = pid_file.split_whitespace().next().unwrap();
    let store_ns = std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
    let inside = text(&f.run(&["readlink", "/proc/self/ns/user"]).stdout);
    assert_ne!(
        inside,
        store_ns.display().to_string(),
        "the command runs in the store's user namespace instead of a nested one"
    );
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "sandbox-pause");
    crate::support::signal(pid.parse().unwrap(), libc::SIGKILL);
    // With it gone, the next command makes a namespace again and works.
    assert!(f.run(&["true"]).status.success());
}

/// Fifty one-shot runs started at once, each in its own project dir, all succeed: one start's
/// collection of dead containers never takes another's half-made container dir.
#[test]
fn fifty_runs_started_at_once_all_succeed() {
    let f = fixture();
    for network in ["none", "pasta"] {
        let children: Vec<(usize, Child)> = (0..50)
            .map(|i| {
                let dir = f.env.path().join(format!("p-{network}-{i}"));
                std::fs::create_dir_all(&dir).unwrap();
                f.env.give_to_user(&dir);
                let child = f
                    .env
                    .command(&[
                        "run",
                        "--network",
                        network,
                        "--image",
                        &f.image,
                        "--",
                        "sleep",
                        "2",
                    ])
                    .current_dir(&dir)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                (i, child)
            })
            .collect();
        let failures: Vec<String> = children
            .into_iter()
            .filter_map(|(i, child)| {
                let out = child.wait_with_output().unwrap();
                (!out.status.success()).then(|| {
                    format!(
                        "run {i} ({network}) exited {:?}: {}",
                        out.status.code(),
                        text(&out.stderr)
                    )
                })
            })
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        assert_eq!(
            f.env.store_entries("containers"),
            Vec::<String>::new(),
            "every container dir is gone once its run ended"
        );
    }
}

/// A shell joining a running sandbox gets a terminal of the sandbox's own devpts too.
#[test]
fn a_joining_enter_gets_a_terminal_of_the_sandbox() {
    let f = fixture();
    let mut first = f.spawn(&["sh", "-c", "echo ready; sleep 20"]);
    let mut stdout = first.stdout.take().unwrap();
    let mut buf = [0u8; 64];
    let n = stdout.read(&mut buf).unwrap();
    assert!(text(&buf[..n]).contains("ready"));
    let (master, slave) = pty(24, 80);
    let cmd = f.env.command(&[
        "enter",
        "--network",
        "none",
        "--image",
        &f.image,
        "-e",
        "PS1=JOINED> ",
    ]);
    let mut child = spawn_on_pty(cmd, &slave);
    drop(slave);
    let mut screen = Screen {
        master: std::fs::File::from(master),
        seen: String::new(),
    };
    screen.expect("JOINED> ");
    screen.send("tty; ps -o pid,comm | grep -c sleep\r");
    screen.expect("/dev/pts/");
    screen.expect("1");
    screen.send("exit 4\r");
    assert_eq!(child.wait().unwrap().code(), Some(4));
    let _ = first.kill();
    let _ = first.wait();
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// SANDBOX_ROOT picks the store as --root does; an error's usage line does not then show
/// `--root <DIR>` as if it were required.
#[test]
fn sandbox_root_from_the_environment_is_used_and_not_shown_as_required() {
    let env = TestEnv::new();
    let root = env.path().join("env-store");
    let out = env
        .command(&["run"])
        .env("SANDBOX_ROOT", &root)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("Usage: sandbox run <CMD>...") && !stderr.contains("--root"),
        "{stderr}"
    );
    let out = env
        .command(&["df"])
        .env("SANDBOX_ROOT", &root)
        .output()
        .unwrap();
    assert!(
        text(&out.stdout).contains(&format!("store: {}", root.display())),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}
