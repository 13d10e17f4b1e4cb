//! A transient systemd user scope with `Delegate=yes` for a container, as podman asks for one
//! through the user bus: on cgroup v2 hosts where no cgroup is delegated to the user, the
//! user's systemd manager (which owns a delegated subtree) makes one, moves pid 1 into it and
//! writes the limits; it removes the scope once its processes are gone.
//!
//! The call goes through `busctl --user`, only on such hosts and only when limits or metering
//! are asked for, which keeps a D-Bus client out of sandbox's start-up.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::runtime::error::RuntimeError;

/// A unit property's value, with its D-Bus type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Bool(bool),
    U64(u64),
    Str(String),
}

/// The scope to ask for: its unit name and properties, the pid excepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeRequest {
    pub unit: String,
    pub properties: Vec<(String, Value)>,
    /// Where cgroup2 is mounted, to find the scope's dir once pid 1 is in it.
    pub mount: PathBuf,
}

impl ScopeRequest {
    /// A scope for container `id`, with accounting on so it can be metered.
    pub fn new(id: &str, mount: &Path) -> Self {
        let on = |name: &str| (name.to_owned(), Value::Bool(true));
        Self {
            unit: format!("sandbox-{id}.scope"),
            properties: vec![
                (
                    "Description".into(),
                    Value::Str(format!("sandbox container {id}")),
                ),
                on("Delegate"),
                on("CPUAccounting"),
                on("MemoryAccounting"),
                on("TasksAccounting"),
                on("IOAccounting"),
            ],
            mount: mount.to_owned(),
        }
    }

    /// `busctl` arguments for `StartTransientUnit(name, mode, properties, aux)` moving `pid`.
    pub fn busctl_args(&self, pid: i32) -> Vec<String> {
        let mut args: Vec<String> = [
            "--user",
            "--quiet",
            "call",
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "StartTransientUnit",
            "ssa(sv)a(sa(sv))",
        ]
        .map(str::to_owned)
        .to_vec();
        args.push(self.unit.clone());
        args.push("fail".into());
        args.push((self.properties.len() + 1).to_string());
        args.extend(["PIDs", "au", "1"].map(str::to_owned));
        args.push(pid.to_string());
        for (name, value) in &self.properties {
            args.push(name.clone());
            match value {
                Value::Bool(b) => args.extend(["b".into(), b.to_string()]),
                Value::U64(n) => args.extend(["t".into(), n.to_string()]),
                Value::Str(s) => args.extend(["s".into(), s.clone()]),
            }
        }
        // No auxiliary units.
        args.push("0".into());
        args
    }

    /// Asks systemd for the scope with `pid` in it and waits until `pid` is there, so the
    /// command never runs outside it; returns the scope's cgroup dir.
    pub fn start(&self, pid: i32) -> Result<PathBuf, RuntimeError> {
        call_and_wait(&self.unit, &self.busctl_args(pid), pid)
            .map(|path| self.mount.join(path.trim_start_matches('/')))
    }
}

/// Runs `busctl ARGS` for `unit` and waits (5 s at most) until systemd has moved `pid` into
/// it (it does when the unit's job runs, just after replying): the pid's cgroup path.
fn call_and_wait(unit: &str, args: &[String], pid: i32) -> Result<String, RuntimeError> {
    let fail = |detail: String| RuntimeError::Scope {
        unit: unit.to_owned(),
        detail,
    };
    let out = std::process::Command::new("busctl")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| fail(format!("busctl could not run: {e}")))?;
    if !out.status.success() {
        return Err(fail(String::from_utf8_lossy(&out.stderr).trim().to_owned()));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let suffix = format!("/{unit}");
    loop {
        let text = fs_err::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        if let Some(path) =
            crate::runtime::cgroups::v2::current_cgroup(&text).filter(|p| p.ends_with(&suffix))
        {
            return Ok(path.to_owned());
        }
        if Instant::now() >= deadline {
            return Err(fail(format!(
                "process {pid} was not in the scope 5 s after systemd was asked"
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `busctl` arguments for `AttachProcessesToUnit(unit, subcgroup, pids)` with `pid`.
fn attach_args(unit: &str, pid: i32) -> Vec<String> {
    [
        "--user",
        "--quiet",
        "call",
        "org.freedesktop.systemd1",
        "/org/freedesktop/systemd1",
        "org.freedesktop.systemd1.Manager",
        "AttachProcessesToUnit",
        "ssau",
        unit,
        "",
        "1",
    ]
    .map(str::to_owned)
    .into_iter()
    .chain([pid.to_string()])
    .collect()
}

/// Has systemd move `pid` into the running `scope` (a command joining its container): a user
/// may not move a process of its session into its user manager's subtree itself (the kernel
/// wants write access to the cgroup above both), which systemd does for it. Waits until
/// `pid` is there.
pub fn attach(scope: &Path, pid: i32) -> Result<(), RuntimeError> {
    let unit = scope
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    call_and_wait(&unit, &attach_args(&unit, pid), pid).map(|_| ())
}

/// Whether a container's v2 cgroup is a scope systemd made for it (else a dir sandbox made in
/// a cgroup delegated to the user, which the user writes to directly).
pub fn is_scope(cgroup: &Path) -> bool {
    cgroup.file_name().is_some_and(|n| {
        n.to_string_lossy().starts_with("sandbox-") && n.to_string_lossy().ends_with(".scope")
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn joining_asks_systemd_to_attach_the_pid_to_the_scope_by_its_unit_name() {
        let args = attach_args("sandbox-0123456789ab.scope", 77);
        let at = args.iter().position(|a| a == "ssau").unwrap();
        assert_eq!(args[at - 1], "AttachProcessesToUnit");
        assert_eq!(
            &args[at + 1..],
            ["sandbox-0123456789ab.scope", "", "1", "77"]
        );
        assert!(is_scope(Path::new(
            "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/sandbox-0123456789ab.scope"
        )));
        assert!(!is_scope(Path::new(
            "/sys/fs/cgroup/delegated/sandbox-1a2b3c4d-0123456789ab"
        )));
    }

    use super::*;

    #[test]
    fn the_call_names_the_pid_delegation_and_each_limit_with_its_type() {
        let mut scope = ScopeRequest::new("0123456789ab", Path::new("/sys/fs/cgroup"));
        scope
            .properties
            .push(("MemoryMax".into(), Value::U64(64 << 20)));
        let args = scope.busctl_args(4242);
        let at = args.iter().position(|a| a == "ssa(sv)a(sa(sv))").unwrap();
        assert_eq!(args[at + 1], "sandbox-0123456789ab.scope");
        assert_eq!(args[at + 2], "fail");
        // The count covers PIDs plus each property.
        assert_eq!(args[at + 3], "8");
        assert_eq!(&args[at + 4..at + 8], ["PIDs", "au", "1", "4242"]);
        let joined = args.join(" ");
        assert!(joined.contains("Delegate b true"));
        assert!(joined.contains("MemoryMax t 67108864"));
        assert!(joined.contains("Description s sandbox container 0123456789ab"));
        assert_eq!(args.last().map(String::as_str), Some("0"));
        assert_eq!(args[0], "--user");
    }
}
