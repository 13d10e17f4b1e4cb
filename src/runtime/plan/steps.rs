//! The order pid 1 builds the container's root in, as data: the overlay, its own cgroup
//! namespace, the plan's mounts (/proc, /sys, /dev, /tmp, /sys/fs/cgroup, the home, the
//! project, masks), the /etc files, the caches (made in the home as the user's, then bound),
//! the host's CAs and what the user forwards. pid 1 runs the list as it is; a change of order
//! is a change here, seen by the unit test of the whole list.

use crate::runtime::plan::launch::{EtcFile, RootfsPlan};
use crate::runtime::plan::mounts::{Kind, MountOp};

/// One step of building the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootfsStep {
    /// The overlay of the image's layers and the container's upper dir, at the merged dir.
    Overlay,
    /// pid 1's own cgroup namespace, made once it is in the sandbox's cgroups: the cgroups
    /// mounted after it are rooted at the sandbox's own.
    CgroupNamespace,
    Mount(MountOp),
    /// A file written into /etc (in the overlay's upper dir).
    WriteEtc(EtcFile),
}

impl RootfsPlan {
    /// Every step, in the order pid 1 takes them.
    pub fn steps(&self) -> Vec<RootfsStep> {
        let mut steps = vec![RootfsStep::Overlay, RootfsStep::CgroupNamespace];
        steps.extend(self.mounts.iter().cloned().map(RootfsStep::Mount));
        steps.extend(self.etc_files.iter().cloned().map(RootfsStep::WriteEtc));
        // After the home exists: a cache's target is made inside it, as the user's.
        for cache in &self.caches {
            steps.push(RootfsStep::Mount(MountOp::Dir {
                target: cache.target.clone(),
                owner: Some(cache.owner),
            }));
            steps.push(RootfsStep::Mount(MountOp::Bind {
                source: cache.host.clone(),
                target: cache.target.clone(),
                kind: Kind::Dir,
                read_only: false,
            }));
        }
        // The host-trusting CA bundle and JVM store, read-only: at sandbox's own paths in
        // /dev, and for a command over the image's own files.
        steps.extend(self.trust.iter().map(|(source, target)| {
            RootfsStep::Mount(MountOp::Bind {
                source: source.clone(),
                target: target.clone(),
                kind: Kind::File,
                read_only: true,
            })
        }));
        // Last, what the user forwards ([forward], -v): theirs to place, over anything.
        steps.extend(self.forward.iter().map(|forward| {
            RootfsStep::Mount(MountOp::Bind {
                source: forward.source.clone(),
                target: forward.target.clone(),
                kind: if forward.dir { Kind::Dir } else { Kind::File },
                read_only: forward.read_only,
            })
        }));
        steps
    }
}
