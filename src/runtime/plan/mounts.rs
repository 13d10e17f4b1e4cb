//! The container's mounts as plain data, in order (bubblewrap's setup ops); executed by
//! `runtime::mounts`.

use std::path::{Path, PathBuf};

pub use crate::runtime::cgroups::CgroupView;

/// Whether a mount target is a directory or a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

/// One step of the plan. Targets are absolute paths inside the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountOp {
    Bind {
        source: PathBuf,
        target: PathBuf,
        kind: Kind,
        read_only: bool,
    },
    Proc {
        target: PathBuf,
    },
    /// sysfs read-only; with the host's network namespace sysfs cannot be mounted rootless, so
    /// the host's /sys is bound read-only instead.
    Sys {
        target: PathBuf,
        own_netns: bool,
    },
    /// The sandbox's cgroups, read-only (see `CgroupView`); mounted in pid 1's own cgroup
    /// namespace, so their root is the sandbox's cgroup.
    CgroupFs {
        target: PathBuf,
        view: CgroupView,
    },
    Tmpfs {
        target: PathBuf,
        options: String,
    },
    Devpts {
        target: PathBuf,
    },
    Symlink {
        link: PathBuf,
        points_to: String,
    },
    /// A symlink made only where the image has nothing: a convenience the image's own file
    /// or dir wins over.
    SymlinkIfMissing {
        link: PathBuf,
        points_to: PathBuf,
    },
    /// Hide a path: /dev/null over a file, an empty read-only tmpfs over a directory.
    Mask {
        target: PathBuf,
    },
    /// Remount a path read-only (it is bound onto itself first).
    ReadOnly {
        target: PathBuf,
    },
    /// Make a directory and those above it that are missing, owned by `owner`.
    Dir {
        target: PathBuf,
        owner: Option<(u32, u32)>,
    },
    /// Give an empty home (a new or reset one, or `--fresh-home`) the image's `/etc/skel`
    /// shell files, owned by `owner`, as `useradd -m` does; a home with anything in it is
    /// left alone.
    Skel {
        home: PathBuf,
        owner: Option<(u32, u32)>,
    },
}

/// The user's home inside: made with `owner`, and the per-project home (`source`) bound over
/// it when there is one.
#[derive(Clone, Copy, Debug)]
pub struct HomeMount<'a> {
    pub target: &'a Path,
    pub owner: Option<(u32, u32)>,
    pub source: Option<&'a Path>,
    /// Fill it from /etc/skel when empty (a user's command; never a setup step, whose layer
    /// must hold only what the step did).
    pub skel: bool,
    /// The home's name through a symlink (`/home/me` with `/home -> var/home`), linked to
    /// `target`.
    pub alias: Option<&'a Path>,
}

/// /proc paths podman masks by default.
const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/dev/block",
];

const READ_ONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// The mounts of a container, in order: /proc, /sys (mounted when the container has its own
/// network namespace, else the host's bound read-only), its cgroups, /dev, /tmp, the home, the project dir
/// (`project`, bound at its own path), then the masks and read-only paths over /proc and /sys.
///
/// The home comes before the project: a project under the home (`~/src/app`, where most
/// projects live) is bound inside the per-project home at its own path, the dirs above it made
/// the user's. Bound the other way round, the home hid the project.
pub fn plan(
    own_netns: bool,
    cgroups: &CgroupView,
    home: HomeMount<'_>,
    project: Option<&Path>,
    tmp_size: Option<u64>,
) -> Vec<MountOp> {
    // A size in KiB for tmpfs (0 would mean no limit at all).
    let sized = |bytes: u64| format!("size={}k", (bytes / 1024).max(1));
    let mut ops = vec![
        MountOp::Proc {
            target: "/proc".into(),
        },
        MountOp::Sys {
            target: "/sys".into(),
            own_netns,
        },
        MountOp::CgroupFs {
            target: "/sys/fs/cgroup".into(),
            view: cgroups.clone(),
        },
        MountOp::Tmpfs {
            target: "/dev".into(),
            options: "mode=755,size=65536k".into(),
        },
    ];
    for dev in DEVICES {
        ops.push(MountOp::Bind {
            source: Path::new("/dev").join(dev),
            target: Path::new("/dev").join(dev),
            kind: Kind::File,
            read_only: false,
        });
    }
    ops.push(MountOp::Devpts {
        target: "/dev/pts".into(),
    });
    for (link, to) in [
        ("/dev/ptmx", "pts/ptmx"),
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
        ("/dev/core", "/proc/kcore"),
    ] {
        ops.push(MountOp::Symlink {
            link: link.into(),
            points_to: to.into(),
        });
    }
    ops.push(MountOp::Tmpfs {
        target: "/dev/shm".into(),
        options: format!("mode=1777,{}", sized(tmp_size.unwrap_or(64 << 20))),
    });
    ops.push(MountOp::Tmpfs {
        target: "/tmp".into(),
        options: match tmp_size {
            Some(bytes) => format!("mode=1777,{}", sized(bytes)),
            None => "mode=1777".into(),
        },
    });
    // After the tmpfs mounts, so a home or project under /tmp is not covered by them.
    ops.push(MountOp::Dir {
        target: home.target.to_owned(),
        owner: home.owner,
    });
    if let Some(source) = home.source {
        ops.push(MountOp::Bind {
            source: source.to_owned(),
            target: home.target.to_owned(),
            kind: Kind::Dir,
            read_only: false,
        });
    }
    if home.skel {
        ops.push(MountOp::Skel {
            home: home.target.to_owned(),
            owner: home.owner,
        });
    }
    if let Some(project) = project {
        if project.starts_with(home.target) && project != home.target {
            ops.push(MountOp::Dir {
                target: project.to_owned(),
                owner: home.owner,
            });
        }
        ops.push(MountOp::Bind {
            source: project.to_owned(),
            target: project.to_owned(),
            kind: Kind::Dir,
            read_only: false,
        });
    }
    if let Some(alias) = home.alias {
        ops.push(MountOp::SymlinkIfMissing {
            link: alias.to_owned(),
            points_to: home.target.to_owned(),
        });
    }
    ops.extend(MASKED.iter().map(|p| MountOp::Mask { target: p.into() }));
    ops.extend(
        READ_ONLY
            .iter()
            .map(|p| MountOp::ReadOnly { target: p.into() }),
    );
    ops
}
