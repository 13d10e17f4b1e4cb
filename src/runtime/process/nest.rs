//! The command's own user and mount namespaces, nested below the ones pid 1 set the container
//! up in, as bubblewrap does.
//!
//! Why: mounts copied into a mount namespace owned by a less privileged user namespace are
//! locked together with their flags, so even container root (a setup step, `--as-root`) cannot
//! unmount `/proc/sys` or a mask, or make a read-only bind writable. And the container's
//! network, pid, ipc and uts namespaces stay owned by the outer user namespace: container root
//! holds no capability over them (no NET_ADMIN on the network namespace, no sethostname).
//!
//! The command's child unshares, then pid 1 (root of the outer namespace, with CAP_SETUID and
//! CAP_SETGID there) writes the child's maps: the identity over every id pid 1 has, so uids and
//! gids mean the same inside as in the layers.

use std::os::fd::{AsFd as _, OwnedFd};

/// The child's end: unshare, say so, wait until mapped.
pub struct NestChild {
    unshared: OwnedFd,
    mapped: OwnedFd,
}

/// pid 1's end: wait for the unshare, write the maps, say so.
pub struct NestParent {
    unshared: OwnedFd,
    mapped: OwnedFd,
}

/// The two pipes between pid 1 and the command's child.
pub fn pair() -> std::io::Result<(NestParent, NestChild)> {
    let (unshared_read, unshared_write) = sys::pipe()?;
    let (mapped_read, mapped_write) = sys::pipe()?;
    Ok((
        NestParent {
            unshared: unshared_read,
            mapped: mapped_write,
        },
        NestChild {
            unshared: unshared_write,
            mapped: mapped_read,
        },
    ))
}

impl NestChild {
    /// Moves this process into a new user and mount namespace and waits for its maps.
    ///
    /// pid 1 is undumpable, and so is this fork of it, which makes its /proc files root's and
    /// the maps unwritable for pid 1; it is dumpable only while pid 1 writes them. Nothing else
    /// runs in the container's pid namespace yet to look at it (joiners come after).
    pub fn enter(self) -> std::io::Result<()> {
        sys::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS)?;
        sys::set_dumpable(true)?;
        if !sys::write_all(self.unshared.as_fd(), b"u") {
            return Err(std::io::Error::other(
                "pid 1 ended before the maps were written",
            ));
        }
        drop(self.unshared);
        let mut byte = [0u8; 1];
        let mapped = sys::read_some(self.mapped.as_fd(), &mut byte);
        sys::set_dumpable(false)?;
        match mapped {
            Some(1) if byte[0] == b'm' => Ok(()),
            _ => Err(std::io::Error::other(
                "pid 1 could not write the nested user namespace's id maps",
            )),
        }
    }
}

/// The identity map over the ranges of `own` (a `/proc/self/[ug]id_map` text): each id
/// inside stands for itself in the parent.
pub fn identity_map(own: &str) -> String {
    own.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let inside = fields.next()?;
            let _outside = fields.next()?;
            let count = fields.next()?;
            Some(format!("{inside} {inside} {count}\n"))
        })
        .collect()
}

impl NestParent {
    /// Waits for `child` to unshare, then writes its maps. On an error the child is told
    /// nothing and fails on its own when this end closes.
    pub fn map(self, child: sys::Pid) -> std::io::Result<()> {
        let mut byte = [0u8; 1];
        if sys::read_some(self.unshared.as_fd(), &mut byte) != Some(1) {
            return Err(std::io::Error::other(
                "the command's process ended before it made its namespaces",
            ));
        }
        for (own, theirs) in [
            ("/proc/self/uid_map", "uid_map"),
            ("/proc/self/gid_map", "gid_map"),
        ] {
            let map = identity_map(&fs_err::read_to_string(own)?);
            fs_err::write(format!("/proc/{child}/{theirs}"), map)?;
        }
        if !sys::write_all(self.mapped.as_fd(), b"m") {
            return Err(std::io::Error::other("the command's process ended"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::identity_map;

    #[test]
    fn the_nested_map_is_the_identity_over_every_range() {
        let own = "         0     100000       1000\n      1000       1000          1\n      1001     101001      64535\n";
        assert_eq!(
            identity_map(own),
            "0 0 1000\n1000 1000 1\n1001 1001 64535\n"
        );
    }
}
