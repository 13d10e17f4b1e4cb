//! Trials of what the host lets this user do, for `sandbox doctor`: each runs in a forked
//! child, so whatever it changes (namespaces, mounts) ends with it.

use std::path::Path;

/// Runs `trial` in a forked child; its `Err` text comes back through a pipe.
fn in_child(trial: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let proof = sys::SingleThreaded::check()
        .ok_or_else(|| "internal error: a thread is running".to_owned())?;
    let (read, write) = sys::pipe().map_err(|e| e.to_string())?;
    match sys::fork(&proof).map_err(|e| e.to_string())? {
        sys::Forked::Child(_) => {
            drop(read);
            let code = match trial() {
                Ok(()) => 0,
                Err(text) => {
                    use std::os::fd::AsFd as _;
                    sys::write_all(write.as_fd(), text.as_bytes());
                    1
                }
            };
            sys::exit_now(code)
        }
        sys::Forked::Parent(child) => {
            drop(write);
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut std::fs::File::from(read), &mut text);
            match sys::waitpid(child, false) {
                Some((_, 0)) => Ok(()),
                _ if !text.is_empty() => Err(text),
                _ => Err("the trial died".into()),
            }
        }
    }
}

/// A user namespace of one's own, with one's own ids mapped.
fn own_user_namespace() -> Result<(), String> {
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    sys::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS)
        .map_err(|e| format!("unshare(CLONE_NEWUSER) failed: {e}"))?;
    let write =
        |path: &str, text: String| fs_err::write(path, text).map_err(|e| format!("{path}: {e}"));
    write("/proc/self/setgroups", "deny".into())?;
    write("/proc/self/uid_map", format!("{uid} {uid} 1\n"))?;
    write("/proc/self/gid_map", format!("{gid} {gid} 1\n"))
}

/// Whether this user may make a user namespace.
pub fn user_namespaces() -> Result<(), String> {
    in_child(own_user_namespace)
}

/// Whether the kernel mounts overlayfs (with `userxattr`) in a user namespace of this user's,
/// tried in a scratch dir under `scratch`.
pub fn overlay_in_user_namespace(scratch: &Path) -> Result<(), String> {
    let dir = scratch.join(format!("sandbox-doctor-{}", std::process::id()));
    for sub in ["lower", "upper", "work", "merged"] {
        fs_err::create_dir_all(dir.join(sub)).map_err(|e| e.to_string())?;
    }
    let result = in_child(|| {
        own_user_namespace()?;
        let options = format!(
            "lowerdir={},upperdir={},workdir={},userxattr",
            dir.join("lower").display(),
            dir.join("upper").display(),
            dir.join("work").display()
        );
        let overlay = sys::cstring("overlay").map_err(|e| e.to_string())?;
        let target = sys::cpath(&dir.join("merged")).map_err(|e| e.to_string())?;
        let data = sys::cstring(&options).map_err(|e| e.to_string())?;
        sys::mount(Some(&overlay), &target, Some(&overlay), 0, Some(&data))
            .map_err(|e| format!("mount -t overlay: {e}"))
    });
    let _ = remove_scratch(&dir);
    result
}

/// Removes a scratch dir of `overlay_in_user_namespace`: the kernel made its `work/work` with
/// mode 000, which must be opened up first.
pub fn remove_scratch(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let work = dir.join("work/work");
    if fs_err::symlink_metadata(&work).is_ok_and(|m| m.is_dir()) {
        fs_err::set_permissions(&work, std::fs::Permissions::from_mode(0o700))?;
    }
    fs_err::remove_dir_all(dir)
}

/// Whether the relay network can be set up: in a user and network namespace of this user's,
/// every address local, the packet queue bound and the nftables rules installed.
pub fn relay_network() -> Result<(), String> {
    in_child(|| {
        own_user_namespace()?;
        sys::unshare(libc::CLONE_NEWNET).map_err(|e| format!("unshare(CLONE_NEWNET): {e}"))?;
        sys::loopback_up().map_err(|e| format!("bringing lo up: {e}"))?;
        sys::route_everything_to_loopback().map_err(|e| format!("the local route: {e}"))?;
        let _queue = sys::Queue::bind(sys::SYN_QUEUE)
            .map_err(|e| format!("binding a netfilter queue: {e}"))?;
        sys::install_relay_rules(Some(crate::runtime::net::relay::RELAY_PORT))
            .map_err(|e| format!("installing the nftables rules (TPROXY, NFQUEUE): {e}"))
    })
}

/// Whether the relay network can be set up under this kernel, as the first trial under its
/// release found and wrote down in `<store>/relay-support` (`RELEASE ok` or `RELEASE no:
/// why`): a run reads one small file, a new kernel costs one trial. Without a store yet, or
/// while a thread runs (the trial forks), it is taken to work and not written down.
pub fn relay_here(store: &Path) -> bool {
    let release = fs_err::read_to_string("/proc/sys/kernel/osrelease")
        .map(|r| r.trim().to_owned())
        .unwrap_or_default();
    let record = store.join("relay-support");
    if let Some(known) = fs_err::read_to_string(&record)
        .ok()
        .and_then(|text| relay_record_says(&text, &release))
    {
        return known;
    }
    if sys::SingleThreaded::check().is_none() || !store.is_dir() {
        return true;
    }
    let found = relay_network();
    let text = match &found {
        Ok(()) => format!("{release} ok\n"),
        Err(why) => format!("{release} no: {}\n", why.replace('\n', " ")),
    };
    let temporary = store.join(format!(".relay-support.{}", std::process::id()));
    if fs_err::write(&temporary, text).is_ok() && fs_err::rename(&temporary, &record).is_err() {
        let _ = fs_err::remove_file(&temporary);
    }
    found.is_ok()
}

/// What a `relay-support` record says for `release`; `None` when it is for another kernel
/// (or unreadable).
fn relay_record_says(text: &str, release: &str) -> Option<bool> {
    let (recorded, verdict) = text.trim().split_once(' ')?;
    (recorded == release && !release.is_empty()).then(|| verdict == "ok")
}

/// Whether this kernel filters system calls with seccomp.
pub fn seccomp() -> bool {
    fs_err::read_to_string("/proc/self/status")
        .is_ok_and(|status| status.lines().any(|l| l.starts_with("Seccomp:")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relay_record_counts_for_its_own_kernel_only() {
        assert_eq!(relay_record_says("6.1.0 ok\n", "6.1.0"), Some(true));
        assert_eq!(
            relay_record_says(
                "6.1.0 no: installing the nftables rules: EOPNOTSUPP\n",
                "6.1.0"
            ),
            Some(false)
        );
        assert_eq!(relay_record_says("6.1.0 ok\n", "6.2.0"), None);
        assert_eq!(relay_record_says("garbage", "6.1.0"), None);
        assert_eq!(relay_record_says(" ok", ""), None);
    }
}
