//! A private environment per test: its own HOME, XDG dirs and store, and a way to run `sandbox`
//! in it as the unprivileged test user.
//!
//! CI runs the tests as root, so when we are root the binary runs as `$SANDBOX_TEST_USER`
//! (default `sandbox-test`, created by .ci/run with /etc/subuid and /etc/subgid ranges) via
//! setpriv. The cargo target dir may sit under /root where that user cannot go, so the binary
//! is copied to a world-readable place first. Run as an ordinary user, the tests use that user.
//!
//! Each test's tree (project, XDG dirs, store) lives where a user's does: under the user's
//! passwd home (`~/src/sandbox-it-XXXX`), the home sandbox reads. Tests of a project elsewhere
//! make their own dir.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub user: Option<User>,
}

impl Drop for TestEnv {
    /// Ends this store's pause process (which sandbox started for the test): it would idle on
    /// for a minute, and the store's pool of warm networks with it.
    fn drop(&mut self) {
        let Ok(text) = std::fs::read_to_string(self.store().join("pause.pid")) else {
            return;
        };
        let Some(pid) = text
            .split_whitespace()
            .next()
            .and_then(|p| p.parse::<i32>().ok())
        else {
            return;
        };
        let is_pause = std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.starts_with(b"sandbox-pause"));
        if is_pause {
            super::signal(pid, libc::SIGKILL);
        }
    }
}

#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

fn lookup_user(name: &str) -> User {
    let out = Command::new("id")
        .args(["-u", name])
        .output()
        .expect("run id");
    assert!(
        out.status.success(),
        "the test user `{name}` does not exist: the end-to-end tests run the binary as an ordinary user; \
         create it with `useradd -m {name}` (with /etc/subuid and /etc/subgid ranges), as .ci/run does, or set SANDBOX_TEST_USER"
    );
    let uid = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("uid");
    let out = Command::new("id")
        .args(["-g", name])
        .output()
        .expect("run id");
    let gid = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("gid");
    User {
        name: name.to_owned(),
        uid,
        gid,
    }
}

/// A user's home as sandbox reads it: the passwd entry's, not $HOME.
pub fn passwd_home(uid: u32) -> PathBuf {
    let out = Command::new("getent")
        .args(["passwd", &uid.to_string()])
        .output()
        .expect("run getent");
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    line.trim_end()
        .split(':')
        .nth(5)
        .filter(|h| h.starts_with('/'))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("uid {uid} has no passwd entry with a home: `{line}`"))
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The binary, copied where the test user can execute it when we run as root.
pub fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let built = PathBuf::from(env!("CARGO_BIN_EXE_sandbox"));
        if !is_root() {
            return built;
        }
        let meta = std::fs::metadata(&built).expect("built binary");
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let dir = PathBuf::from(format!("/tmp/sandbox-it-bin/{}-{mtime}", meta.len()));
        let target = dir.join("sandbox");
        if !target.exists() {
            std::fs::create_dir_all(&dir).expect("bin dir");
            for d in [Path::new("/tmp/sandbox-it-bin"), dir.as_path()] {
                std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            }
            let temp = dir.join(format!("sandbox.{}", std::process::id()));
            std::fs::copy(&built, &temp).expect("copy binary");
            std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            std::fs::rename(&temp, &target).expect("place binary");
        }
        target
    })
}

impl TestEnv {
    pub fn new() -> Self {
        Self::for_user(
            &std::env::var("SANDBOX_TEST_USER").unwrap_or_else(|_| "sandbox-test".into()),
        )
    }

    /// The same, running the binary as `name` (when the tests run as root).
    pub fn for_user(name: &str) -> Self {
        let user = is_root().then(|| lookup_user(name));
        let home = passwd_home(
            user.as_ref()
                .map_or_else(|| nix::unistd::getuid().as_raw(), |u| u.uid),
        );
        let src = home.join("src");
        if let Err(e) = std::fs::create_dir(&src) {
            assert_eq!(
                e.kind(),
                std::io::ErrorKind::AlreadyExists,
                "mkdir {}: {e}",
                src.display()
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("sandbox-it-")
            .tempdir_in(&src)
            .expect("temp dir");
        if let Some(u) = &user {
            // Only the dir itself: other tests' trees are inside it.
            std::os::unix::fs::chown(&src, Some(u.uid), Some(u.gid)).expect("chown ~/src");
        }
        let env = Self { dir, user };
        for sub in ["home", "config", "data", "run", "cache", "project"] {
            std::fs::create_dir_all(env.path().join(sub)).expect("mkdir");
        }
        std::fs::set_permissions(
            env.path().join("run"),
            std::fs::Permissions::from_mode(0o700),
        )
        .expect("chmod");
        env.give_to_user(env.path());
        env
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn home(&self) -> PathBuf {
        self.path().join("home")
    }

    /// The project dir commands start in (under the user's passwd home).
    pub fn project(&self) -> PathBuf {
        self.path().join("project")
    }

    /// The user's home as sandbox reads it (the passwd entry's).
    pub fn passwd_home(&self) -> PathBuf {
        passwd_home(self.uid())
    }

    pub fn config_dir(&self) -> PathBuf {
        self.path().join("config")
    }

    pub fn store(&self) -> PathBuf {
        self.path().join("data/sandbox")
    }

    /// The uid the binary runs as.
    pub fn uid(&self) -> u32 {
        self.user
            .as_ref()
            .map_or_else(|| nix::unistd::getuid().as_raw(), |u| u.uid)
    }

    /// The name of the user the binary runs as.
    pub fn user_name(&self) -> String {
        self.user
            .as_ref()
            .map(|u| u.name.clone())
            .unwrap_or_else(|| std::env::var("USER").unwrap_or_default())
    }

    /// The first subordinate uid of the user the binary runs as, from /etc/subuid.
    pub fn subuid_start(&self) -> u32 {
        let name = self.user_name();
        let text =
            std::fs::read_to_string("/etc/subuid").expect("/etc/subuid is needed by these tests");
        text.lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() == 3 && (f[0] == name || f[0] == self.uid().to_string())).then(|| f[1].parse().ok()).flatten()
            })
            .unwrap_or_else(|| panic!("no /etc/subuid range for `{name}`: add one with `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {name}`"))
    }

    /// Makes `path` (recursively) belong to the test user, when there is one.
    pub fn give_to_user(&self, path: &Path) {
        if let Some(user) = &self.user {
            let status = Command::new("chown")
                .args(["-R", &format!("{}:{}", user.uid, user.gid)])
                .arg(path)
                .status()
                .expect("chown");
            assert!(status.success());
        }
    }

    /// Writes a file as the test user would own it.
    pub fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write");
        self.give_to_user(self.path());
        path
    }

    /// Writes `bytes` at `relative`, owned by the test user.
    pub fn write_bytes(&self, relative: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, bytes).expect("write");
        self.give_to_user(self.path());
        path
    }

    /// `sandbox ARGS` in this environment, as the test user, with a clean environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = match &self.user {
            Some(user) => {
                let mut c = Command::new("/usr/bin/setpriv");
                c.args([
                    &format!("--reuid={}", user.uid),
                    &format!("--regid={}", user.gid),
                    "--init-groups",
                    "--",
                ]);
                c.arg(binary());
                c
            }
            None => Command::new(binary()),
        };
        cmd.args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", self.home())
            .env("XDG_CONFIG_HOME", self.config_dir())
            .env("XDG_DATA_HOME", self.path().join("data"))
            .env("XDG_CACHE_HOME", self.path().join("cache"))
            .env("XDG_RUNTIME_DIR", self.path().join("run"))
            .env(
                "USER",
                self.user.as_ref().map_or_else(
                    || std::env::var("USER").unwrap_or_default(),
                    |u| u.name.clone(),
                ),
            )
            .current_dir(self.path().join("project"))
            .stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run sandbox")
    }

    /// Runs and insists on success, returning stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "`sandbox {}` failed with {:?}\nstdout:\n{}\nstderr:\n{}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs and insists on exit code 125, returning stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(125),
            "`sandbox {}` should fail with 125\nstdout:\n{}\nstderr:\n{stderr}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        stderr
    }

    /// The names in a store subdirectory (empty when it does not exist).
    pub fn store_entries(&self, sub: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.store().join(sub))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Asserts the store holds no half object: nothing in tmp/, and every layer dir is complete.
    pub fn assert_store_consistent(&self) {
        assert_eq!(
            self.store_entries("tmp"),
            Vec::<String>::new(),
            "tmp/ should be empty"
        );
        for layer in self.store_entries("layers") {
            assert!(
                self.store()
                    .join("layers")
                    .join(&layer)
                    .join("layer.json")
                    .exists(),
                "layer {layer} has no layer.json"
            );
        }
    }

    /// The images `sandbox images --json` lists, as (reference, layers).
    pub fn images(&self) -> Vec<(String, Vec<String>)> {
        let out = self.ok(&["images", "--json"]);
        let value: serde_json::Value = serde_json::from_str(&out).expect("images --json is JSON");
        value
            .as_array()
            .expect("array")
            .iter()
            .map(|i| {
                let layers = i["layers"]
                    .as_array()
                    .expect("layers")
                    .iter()
                    .map(|l| {
                        l.as_str()
                            .expect("str")
                            .trim_start_matches("sha256:")
                            .to_owned()
                    })
                    .collect();
                (
                    i["reference"].as_str().expect("reference").to_owned(),
                    layers,
                )
            })
            .collect()
    }
}

/// `inner` run in a mount namespace of its own (made by unshare as root; `inner` still drops
/// to the test user itself) where each host file `over` is bound over the system path
/// `target` (`/etc/hosts`, `/etc/resolv.conf`): what sandbox and its keeper then resolve is
/// the test's, and no lookup leaves the machine.
pub fn in_private_mounts(inner: &Command, files: &[(&Path, &str)]) -> Command {
    assert!(
        is_root(),
        "this test gives sandbox a private /etc/hosts or /etc/resolv.conf, which needs root; \
         `SANDBOX_TEST_SKIP_PRIVATE_ETC=1 scripts/test.sh` reports it as skipped"
    );
    let mut script = String::new();
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c"]);
    for (i, (_, target)) in files.iter().enumerate() {
        script.push_str(&format!("mount --bind \"${}\" {target} && ", i + 1));
    }
    script.push_str(&format!("shift {} && exec \"$@\"", files.len()));
    cmd.arg(script).arg("sh");
    for (over, _) in files {
        cmd.arg(over);
    }
    cmd.arg(inner.get_program()).args(inner.get_args());
    cmd.env_clear().envs(
        inner
            .get_envs()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
    );
    if let Some(dir) = inner.get_current_dir() {
        cmd.current_dir(dir);
    }
    cmd
}
