//! Host-side file work in dirs that code inside the sandbox can write (the project dir, upper
//! dirs, export targets there): every step goes through a dir fd, and no link below the
//! trusted root is ever followed. Code inside plants `dist/index.json -> ~/.bashrc` or
//! `etc -> ~/D` and waits for sandbox to write or delete through it.

use std::ffi::{OsStr, OsString};
use std::io::{self, Write as _};
use std::os::fd::{AsFd, AsRawFd as _, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{Mode, SFlag};

/// A host path sandbox writes: `root` is opened as the user named it (links followed: the
/// user's own), and every component of `rest` is walked without following a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuardedPath {
    pub root: PathBuf,
    pub rest: PathBuf,
}

/// `path` with `.` and `..` resolved by name (what a link-free walk would reach).
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

impl GuardedPath {
    /// `path` as given on the command line (relative to `cwd`). Under one of `writable` (the
    /// project dir), everything below it is guarded; elsewhere only the last component is
    /// (the dirs above it are the user's own).
    pub fn new(path: &Path, cwd: &Path, writable: &[&Path]) -> Self {
        let full = lexical(&cwd.join(path));
        if let Some(root) = writable.iter().find(|w| full.starts_with(w)) {
            return Self {
                root: root.to_path_buf(),
                rest: full.strip_prefix(root).unwrap_or(Path::new("")).to_owned(),
            };
        }
        match (full.parent(), full.file_name()) {
            (Some(parent), Some(name)) => Self {
                root: parent.to_owned(),
                rest: PathBuf::from(name),
            },
            _ => Self {
                root: full,
                rest: PathBuf::new(),
            },
        }
    }

    /// The path as shown to the user.
    pub fn shown(&self) -> PathBuf {
        self.root.join(&self.rest)
    }

    /// The dir holding the last component, walked without links, and that component's name.
    pub fn open_parent(&self) -> io::Result<(OwnedFd, OsString)> {
        let name = self
            .rest
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
        let root = open_root(&self.root)?;
        let parent = self.rest.parent().unwrap_or(Path::new(""));
        Ok((open_dir_beneath(root.as_fd(), parent)?, name.to_owned()))
    }
}

fn open_root(root: &Path) -> io::Result<OwnedFd> {
    Ok(nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?)
}

/// What a link met on a guarded walk is called in errors.
fn link_refused(what: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "{} is a link (or is under one), which sandbox does not follow in a dir the sandbox can write",
            what.display()
        ),
    )
}

fn how(flags: OFlag) -> OpenHow {
    OpenHow::new().flags(flags | OFlag::O_CLOEXEC).resolve(
        ResolveFlag::RESOLVE_BENEATH
            | ResolveFlag::RESOLVE_NO_SYMLINKS
            | ResolveFlag::RESOLVE_NO_MAGICLINKS,
    )
}

/// `rel` under `dir` (an O_PATH dir fd), with no link on the way.
pub fn open_dir_beneath(dir: BorrowedFd<'_>, rel: &Path) -> io::Result<OwnedFd> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    nix::fcntl::openat2(dir, rel, how(OFlag::O_PATH | OFlag::O_DIRECTORY)).map_err(|e| match e {
        Errno::ELOOP | Errno::EXDEV => link_refused(rel),
        e => io::Error::from(e),
    })
}

/// What is at `name` in `dir`, not following a link: `None` when nothing is.
pub fn kind_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<SFlag>> {
    match nix::sys::stat::fstatat(dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(SFlag::from_bits_truncate(
            stat.st_mode & SFlag::S_IFMT.bits(),
        ))),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The dir `name` in `dir` (made with `mode` when missing), never through a link.
pub fn dir_at(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<OwnedFd> {
    match nix::sys::stat::mkdirat(dir, name, Mode::from_bits_truncate(mode)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(e.into()),
    }
    open_dir_beneath(dir, Path::new(name))
}

/// The regular file `rel` under `dir`, opened to read with no link on the way and without
/// blocking (a FIFO never answers): `Ok(Err(what))` names what is there instead ("a FIFO", "a
/// link (or under one)"...), so the caller can refuse it by name.
pub fn open_regular_beneath(
    dir: BorrowedFd<'_>,
    rel: &Path,
) -> io::Result<Result<std::fs::File, &'static str>> {
    let fd = match nix::fcntl::openat2(
        dir,
        rel,
        how(OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY),
    ) {
        Ok(fd) => fd,
        Err(Errno::ELOOP | Errno::EXDEV) => return Ok(Err("a link (or under one)")),
        // What open(2) says of a socket.
        Err(Errno::ENXIO) => return Ok(Err("a socket")),
        Err(e) => return Err(e.into()),
    };
    let kind = nix::sys::stat::fstat(&fd)?.st_mode & SFlag::S_IFMT.bits();
    Ok(match SFlag::from_bits_truncate(kind) {
        SFlag::S_IFREG => Ok(std::fs::File::from(fd)),
        SFlag::S_IFIFO => Err("a FIFO"),
        SFlag::S_IFSOCK => Err("a socket"),
        SFlag::S_IFCHR | SFlag::S_IFBLK => Err("a device"),
        SFlag::S_IFDIR => Err("a directory"),
        _ => Err("not a file"),
    })
}

/// A regular file `name` in `dir` read whole (up to `limit`), not through a link and without
/// blocking on a FIFO; `None` when it is missing or not a regular file.
pub fn read_regular_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    limit: u64,
) -> io::Result<Option<Vec<u8>>> {
    use std::io::Read as _;
    let file = match open_regular_beneath(dir, Path::new(name)) {
        Ok(Ok(file)) => file,
        Ok(Err(_)) => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.take(limit).read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// Removes the file (or link) `name` in `dir`: the entry itself, never what a link names.
pub fn unlink_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    Ok(nix::unistd::unlinkat(
        dir,
        name,
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    )?)
}

/// Opens `name` in `dir` to append (made with `mode` when missing): never through a link, and
/// only a regular file (a FIFO would block the writer).
pub fn append_at(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<std::fs::File> {
    let fd = nix::fcntl::openat(
        dir,
        name,
        OFlag::O_WRONLY
            | OFlag::O_APPEND
            | OFlag::O_CREAT
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(mode),
    )
    .map_err(|e| match e {
        Errno::ELOOP => link_refused(Path::new(name)),
        e => io::Error::from(e),
    })?;
    let file = std::fs::File::from(fd);
    if !file.metadata()?.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", Path::new(name).display()),
        ));
    }
    Ok(file)
}

/// Writes a whole new file `name` in `dir` with `mode`: the bytes go to an unnamed file
/// (O_TMPFILE; where the file system has none, a fresh O_EXCL name), which is then renamed
/// over `name`, replacing a link there instead of following it.
pub fn replace_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    mode: u32,
    write: impl FnOnce(&mut std::fs::File) -> io::Result<()>,
) -> io::Result<()> {
    let temp_name = OsString::from(format!(
        ".{}.tmp-{}",
        String::from_utf8_lossy(name.as_bytes()),
        crate::fsutil::unique::unique_suffix()
    ));
    let mut linked = false;
    let mut file = match nix::fcntl::openat(
        dir,
        ".",
        OFlag::O_TMPFILE | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(mode),
    ) {
        Ok(fd) => std::fs::File::from(fd),
        Err(Errno::EOPNOTSUPP | Errno::EISDIR | Errno::EINVAL) => {
            linked = true;
            std::fs::File::from(nix::fcntl::openat(
                dir,
                temp_name.as_os_str(),
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(mode),
            )?)
        }
        Err(e) => return Err(e.into()),
    };
    let result = (|| {
        write(&mut file)?;
        file.flush()?;
        if !linked {
            // A name for the unnamed file; linkat refuses one that exists, link or not.
            let own = format!("/proc/self/fd/{}", file.as_raw_fd());
            nix::unistd::linkat(
                nix::fcntl::AT_FDCWD,
                own.as_str(),
                dir,
                temp_name.as_os_str(),
                nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
            )?;
            linked = true;
        }
        nix::fcntl::renameat(dir, temp_name.as_os_str(), dir, name)?;
        Ok(())
    })();
    if result.is_err() && linked {
        let _ = unlink_at(dir, &temp_name);
    }
    result
}

/// The file `name` in `dir` as a fd to write a new copy into (O_EXCL: a name already there,
/// a link included, is an error, never followed).
pub fn create_new_at(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<std::fs::File> {
    Ok(std::fs::File::from(nix::fcntl::openat(
        dir,
        name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(mode),
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_under_the_project_are_guarded_below_it_and_others_at_their_name() {
        let p = GuardedPath::new(
            Path::new("dist/app.tar"),
            Path::new("/w/app"),
            &[Path::new("/w/app")],
        );
        assert_eq!(p.root, Path::new("/w/app"));
        assert_eq!(p.rest, Path::new("dist/app.tar"));
        let p = GuardedPath::new(
            Path::new("/srv/out/app.tar"),
            Path::new("/w/app"),
            &[Path::new("/w/app")],
        );
        assert_eq!(
            (p.root.as_path(), p.rest.as_path()),
            (Path::new("/srv/out"), Path::new("app.tar"))
        );
        let p = GuardedPath::new(
            Path::new("../x/../app/d/./f"),
            Path::new("/w/app"),
            &[Path::new("/w/app")],
        );
        assert_eq!(
            (p.root.as_path(), p.rest.as_path()),
            (Path::new("/w/app"), Path::new("d/f"))
        );
    }

    #[test]
    fn a_planted_link_is_never_followed_on_the_way_or_at_the_end() {
        let t = tempfile::tempdir().unwrap();
        let project = t.path().join("project");
        let victim = t.path().join("victim");
        fs_err::create_dir_all(project.join("real")).unwrap();
        fs_err::create_dir_all(&victim).unwrap();
        fs_err::write(victim.join("f"), "keep").unwrap();
        std::os::unix::fs::symlink(&victim, project.join("dist")).unwrap();
        std::os::unix::fs::symlink(victim.join("f"), project.join("real/f")).unwrap();
        let writable = [project.as_path()];
        // Through a linked dir: refused.
        let through = GuardedPath::new(Path::new("dist/f"), &project, &writable);
        assert!(through.open_parent().is_err());
        // At a linked name: appending refuses, replacing replaces the link itself.
        let (dir, name) = GuardedPath::new(Path::new("real/f"), &project, &writable)
            .open_parent()
            .unwrap();
        assert!(append_at(dir.as_fd(), &name, 0o644).is_err());
        assert!(read_regular_at(dir.as_fd(), &name, 100).unwrap().is_none());
        replace_at(dir.as_fd(), &name, 0o644, |f| f.write_all(b"new")).unwrap();
        assert_eq!(
            fs_err::read_to_string(project.join("real/f")).unwrap(),
            "new"
        );
        assert_eq!(fs_err::read_to_string(victim.join("f")).unwrap(), "keep");
        assert!(!fs_err::symlink_metadata(project.join("real/f"))
            .unwrap()
            .is_symlink());
        // A name that exists is never created through.
        std::os::unix::fs::symlink(victim.join("g"), project.join("real/g")).unwrap();
        assert!(create_new_at(dir.as_fd(), OsStr::new("g"), 0o644).is_err());
        assert!(!victim.join("g").exists());
        unlink_at(dir.as_fd(), OsStr::new("g")).unwrap();
        assert!(fs_err::read_to_string(victim.join("f")).is_ok());
    }
}
