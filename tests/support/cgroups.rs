//! cgroup v1 subtrees delegated to the test user for one test, made (as root) beneath the
//! cgroups this test process is already in, per controller: the machine's own processes stay
//! where they are and its cgroups' limits are never written. Removed when dropped.

use std::path::{Path, PathBuf};

use super::TestEnv;

pub const CONTROLLERS: [&str; 5] = ["memory", "pids", "cpu", "cpuacct", "blkio"];

pub struct Delegation {
    /// (controller, delegated dir)
    pub dirs: Vec<(String, PathBuf)>,
}

/// Where `controller`'s v1 hierarchy is mounted (`None` when it is not, e.g. on a v2-only host).
fn mount_point(controller: &str) -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mounts.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut fields = right.split_whitespace();
        let (fstype, _source, options) = (fields.next()?, fields.next()?, fields.next()?);
        let point = left.split_whitespace().nth(4)?;
        (fstype == "cgroup" && options.split(',').any(|o| o == controller))
            .then(|| PathBuf::from(point))
    })
}

/// This process's cgroup in `controller`'s hierarchy.
fn own_cgroup(controller: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers
            .split(',')
            .any(|c| c == controller)
            .then(|| path.to_owned())
    })
}

impl Delegation {
    /// Delegates a subtree per controller to `env`'s user and names it in `env`'s user config.
    /// Needs root (as CI runs the tests); says what is missing otherwise.
    pub fn new(env: &TestEnv, name: &str) -> Self {
        let delegation = Self::unwritten(env, name);
        env.write("config/sandbox/config.toml", &delegation.config());
        delegation
    }

    /// The same, leaving the user config to the caller (`config` is what it must hold).
    pub fn unwritten(env: &TestEnv, name: &str) -> Self {
        assert!(
            super::env::is_root(),
            "delegating cgroups to the test user needs root (CI runs the tests as root)"
        );
        let mut dirs = Vec::new();
        for controller in CONTROLLERS {
            let (Some(mount), Some(own)) = (mount_point(controller), own_cgroup(controller)) else {
                panic!("the cgroup v1 `{controller}` hierarchy is missing: these tests need a v1 host (as CI's)");
            };
            let dir = mount
                .join(own.trim_start_matches('/'))
                .join(format!("{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("mkdir the delegated cgroup");
            if let Some(user) = &env.user {
                for path in [dir.clone(), dir.join("cgroup.procs"), dir.join("tasks")] {
                    std::os::unix::fs::chown(&path, Some(user.uid), Some(user.gid))
                        .expect("chown the delegated cgroup");
                }
            }
            dirs.push((controller.to_owned(), dir));
        }
        Self { dirs }
    }

    /// The user config's table naming the delegated dirs.
    pub fn config(&self) -> String {
        let table: String = self
            .dirs
            .iter()
            .map(|(c, d)| format!("{c} = \"{}\"\n", d.display()))
            .collect();
        format!("[cgroups.v1]\n{table}")
    }

    pub fn dir(&self, controller: &str) -> &Path {
        &self
            .dirs
            .iter()
            .find(|(c, _)| c == controller)
            .expect("a delegated controller")
            .1
    }

    /// Waits (up to 10 s) until no container cgroup is left: they go once pid 1 has ended,
    /// after sandbox has returned.
    pub fn wait_until_empty(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !self.children().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the sandbox's cgroups stayed: {:?}",
                self.children()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The container cgroups left under the delegated dirs.
    pub fn children(&self) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .flat_map(|(_, d)| {
                std::fs::read_dir(d)
                    .map(|e| {
                        e.flatten()
                            .filter(|e| e.path().is_dir())
                            .map(|e| e.path())
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default()
            })
            .collect()
    }
}

impl Drop for Delegation {
    fn drop(&mut self) {
        for (_, dir) in &self.dirs {
            for child in std::fs::read_dir(dir)
                .map(|e| e.flatten().collect::<Vec<_>>())
                .unwrap_or_default()
            {
                if child.path().is_dir() {
                    let _ = std::fs::remove_dir(child.path());
                }
            }
            let _ = std::fs::remove_dir(dir);
        }
    }
}
