//! Reading a file tree that hostile code may be changing: a path beneath a root, reached
//! without following any symbolic link (the path's own components included), and walked by
//! directory fds in sorted order. The project dir is writable from inside every sandbox, so
//! what setup copies out of it must never be steered to a file outside it.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{Mode, SFlag};

/// One entry of a tree, as found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Dir { mode: u32, mtime: i64 },
    File { mode: u32, mtime: i64, size: u64 },
    Symlink { target: PathBuf },
}

/// What a visit is told of each entry: its path relative to the start (empty for the start
/// itself), the entry, and for a file, the file open for reading.
pub type Visitor<'a> = dyn FnMut(&Path, &Node, Option<std::fs::File>) -> io::Result<()> + 'a;

fn unsupported(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{} is {what}, which setup does not copy", path.display()),
    )
}

/// Opens `rel` beneath the dir `root` with no symbolic link anywhere on the way (ELOOP names
/// one, EXDEV a way out), as an O_PATH fd.
pub fn open_beneath(root: &Path, rel: &Path) -> io::Result<OwnedFd> {
    let root = nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
    nix::fcntl::openat2(&root, rel, how).map_err(|e| match e {
        nix::errno::Errno::ELOOP => io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has a symbolic link on its way; setup copies only what is really in the project", rel.display()),
        ),
        other => io::Error::from(other),
    })
}

fn node_of(fd: impl AsFd, name: &Path, path: &Path) -> io::Result<Node> {
    let st = nix::sys::stat::fstatat(
        fd,
        name,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW | nix::fcntl::AtFlags::AT_EMPTY_PATH,
    )?;
    let mode = st.st_mode & 0o7777;
    match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFDIR => Ok(Node::Dir {
            mode,
            mtime: st.st_mtime,
        }),
        SFlag::S_IFREG => Ok(Node::File {
            mode,
            mtime: st.st_mtime,
            size: u64::try_from(st.st_size).unwrap_or(0),
        }),
        SFlag::S_IFLNK => Ok(Node::Symlink {
            target: PathBuf::new(),
        }),
        SFlag::S_IFIFO => Err(unsupported(path, "a FIFO")),
        SFlag::S_IFSOCK => Err(unsupported(path, "a socket")),
        _ => Err(unsupported(path, "a device")),
    }
}

/// Visits `rel` beneath `root` and, when it is a dir, everything in it, parents before
/// children and names in byte order. Symbolic links inside are reported, never followed.
pub fn visit(root: &Path, rel: &Path, visitor: &mut Visitor<'_>) -> io::Result<()> {
    let start = open_beneath(root, rel)?;
    let node = node_of(&start, Path::new(""), rel)?;
    visit_node(&start, Path::new(""), rel, node, visitor)
}

/// Visits the entry open (O_PATH) as `fd`, found as `node`, named `shown` relative to the start.
fn visit_node(
    fd: &OwnedFd,
    shown: &Path,
    full: &Path,
    node: Node,
    visitor: &mut Visitor<'_>,
) -> io::Result<()> {
    match node {
        Node::File { .. } => {
            // Reopened through /proc/self/fd: an O_PATH fd cannot be read, and the path is
            // this very inode, not a name that could be swapped.
            let file = reopen(fd, OFlag::O_RDONLY)?;
            visitor(shown, &node, Some(std::fs::File::from(file)))
        }
        Node::Symlink { .. } => Err(unsupported(full, "a symbolic link")),
        Node::Dir { .. } => {
            visitor(shown, &node, None)?;
            let dir_fd = reopen(fd, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
            let mut names: Vec<Vec<u8>> = Vec::new();
            let mut dir = nix::dir::Dir::from_fd(dir_fd)?;
            for entry in dir.iter() {
                let name = entry?.file_name().to_bytes().to_vec();
                if name != b"." && name != b".." {
                    names.push(name);
                }
            }
            names.sort();
            for name in names {
                let name = Path::new(std::ffi::OsStr::from_bytes(&name));
                let child_shown = shown.join(name);
                let child_full = full.join(name);
                let found = node_of(fd, name, &child_full);
                match found? {
                    Node::Symlink { .. } => {
                        let target = nix::fcntl::readlinkat(fd, name)?;
                        visitor(
                            &child_shown,
                            &Node::Symlink {
                                target: PathBuf::from(target),
                            },
                            None,
                        )?;
                    }
                    child => {
                        let child_fd = nix::fcntl::openat(
                            fd,
                            name,
                            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                            Mode::empty(),
                        )?;
                        // The entry must still be what we looked at.
                        let again = node_of(&child_fd, Path::new(""), &child_full)?;
                        if std::mem::discriminant(&again) != std::mem::discriminant(&child) {
                            return Err(io::Error::other(format!(
                                "{} changed while it was read",
                                child_full.display()
                            )));
                        }
                        visit_node(&child_fd, &child_shown, &child_full, again, visitor)?;
                    }
                }
            }
            Ok(())
        }
    }
}

fn reopen(fd: &OwnedFd, flags: OFlag) -> io::Result<OwnedFd> {
    use std::os::fd::AsRawFd as _;
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    Ok(nix::fcntl::open(
        path.as_str(),
        flags | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(root: &Path, rel: &str) -> io::Result<Vec<(PathBuf, Node, Option<String>)>> {
        let mut seen = Vec::new();
        visit(root, Path::new(rel), &mut |path, node, file| {
            let content = file.map(|mut f| {
                let mut s = String::new();
                io::Read::read_to_string(&mut f, &mut s).unwrap();
                s
            });
            seen.push((path.to_owned(), node.clone(), content));
            Ok(())
        })?;
        Ok(seen)
    }

    #[test]
    fn a_tree_is_walked_in_order_with_links_reported_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("conf");
        fs_err::create_dir_all(dir.join("sub")).unwrap();
        fs_err::write(dir.join("b.txt"), "b").unwrap();
        fs_err::write(dir.join("a.txt"), "a").unwrap();
        fs_err::write(dir.join("sub/c"), "c").unwrap();
        std::os::unix::fs::symlink("/etc/shadow", dir.join("link")).unwrap();
        let seen = collect(root.path(), "conf").unwrap();
        let names: Vec<String> = seen
            .iter()
            .map(|(p, _, _)| p.display().to_string())
            .collect();
        assert_eq!(names, ["", "a.txt", "b.txt", "link", "sub", "sub/c"]);
        assert_eq!(seen[1].2.as_deref(), Some("a"));
        assert_eq!(
            seen[3].1,
            Node::Symlink {
                target: "/etc/shadow".into()
            }
        );
    }

    #[test]
    fn a_link_on_the_way_or_as_the_start_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs_err::write(outside.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("ci")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("key")).unwrap();
        for rel in ["ci/secret", "key", "../x"] {
            let err = collect(root.path(), rel).unwrap_err();
            assert!(
                err.to_string().contains("symbolic link")
                    || err.raw_os_error() == Some(libc::EXDEV),
                "{rel}: {err}"
            );
        }
        let fifo = root.path().join("fifo");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
        assert!(collect(root.path(), "fifo")
            .unwrap_err()
            .to_string()
            .contains("a FIFO"));
    }
}
