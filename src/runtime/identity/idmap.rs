//! The keep-id identity map (podman's `--userns=keep-id`): inside, the user is themselves (same
//! uid and gid); container root and every other id come from the user's subordinate ranges in
//! /etc/subuid and /etc/subgid. Without a range we fall back to mapping the user's one id.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::runtime::error::RuntimeError;

/// `inside` ids map to `outside` ids, `count` of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// `(first, count)` pairs of ids.
pub type Ranges = Vec<(u32, u32)>;

/// How ids inside our namespaces relate to the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdMapping {
    /// Running as real root: no user namespace needed, ids are the host's.
    HostRoot,
    /// keep-id over subordinate ranges; written with newuidmap/newgidmap.
    KeepId {
        uid: u32,
        gid: u32,
        uids: Vec<IdRange>,
        gids: Vec<IdRange>,
    },
    /// No subordinate range: only the user's own ids exist inside.
    Single { uid: u32, gid: u32 },
}

impl IdMapping {
    /// The mapping for the calling user, from the given subuid/subgid files.
    pub fn for_current_user(subuid: &Path, subgid: &Path) -> Result<Self, RuntimeError> {
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        if uid == 0 {
            return Ok(Self::HostRoot);
        }
        let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name);
        let sub_uids = read_ranges(subuid, name.as_deref(), uid)?;
        let sub_gids = read_ranges(subgid, name.as_deref(), uid)?;
        if sub_uids.is_empty() || sub_gids.is_empty() {
            return Ok(Self::Single { uid, gid });
        }
        Ok(Self::KeepId {
            uid,
            gid,
            uids: keep_id(uid, &sub_uids),
            gids: keep_id(gid, &sub_gids),
        })
    }

    /// Inside-id ranges `(first, count)` that exist, for uids and gids.
    pub fn inside_ranges(&self) -> (Ranges, Ranges) {
        match self {
            IdMapping::HostRoot => (vec![(0, u32::MAX)], vec![(0, u32::MAX)]),
            IdMapping::KeepId { uids, gids, .. } => (
                uids.iter().map(|r| (r.inside, r.count)).collect(),
                gids.iter().map(|r| (r.inside, r.count)).collect(),
            ),
            IdMapping::Single { uid, gid } => (vec![(*uid, 1)], vec![(*gid, 1)]),
        }
    }
}

impl fmt::Display for IdMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdMapping::HostRoot => f.write_str("host ids (root)"),
            IdMapping::Single { uid, gid } => write!(f, "only uid {uid} / gid {gid}"),
            IdMapping::KeepId { uids, gids, .. } => {
                let show = |rs: &[IdRange]| {
                    rs.iter()
                        .map(|r| format!("{}->{}+{}", r.inside, r.outside, r.count))
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                write!(f, "uids {}; gids {}", show(uids), show(gids))
            }
        }
    }
}

/// The calling user's subordinate `(first, count)` ranges in `path` (/etc/subuid or subgid).
pub fn subordinate_ranges(path: &Path) -> Result<Vec<(u32, u32)>, RuntimeError> {
    let uid = nix::unistd::getuid().as_raw();
    let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name);
    read_ranges(path, name.as_deref(), uid)
}

/// Reads `name:first:count` (or `uid:first:count`) lines for the user; when the system files
/// have none, the subid service /etc/nsswitch.conf names (SSSD, FreeIPA), as newuidmap does.
fn read_ranges(path: &Path, name: Option<&str>, uid: u32) -> Result<Vec<(u32, u32)>, RuntimeError> {
    let text = match fs_err::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(RuntimeError::Io(e)),
    };
    let ranges = parse_ranges(&text, name, uid);
    if ranges.is_empty() {
        if let Some(from_service) = from_subid_service(path, name) {
            return Ok(from_service);
        }
    }
    Ok(ranges)
}

/// The service the `subid:` line of nsswitch.conf names, unless it is the files.
pub fn subid_service(nsswitch: &str) -> Option<&str> {
    nsswitch
        .lines()
        .find_map(|l| l.trim().strip_prefix("subid:"))
        .and_then(|rest| rest.split_whitespace().next())
        .filter(|service| *service != "files")
}

/// The ranges shadow's libsubid has for `name` from that service, through `getsubids`
/// (`-g` for gids). Only for the system files: a test's own files stay the only source.
fn from_subid_service(path: &Path, name: Option<&str>) -> Option<Vec<(u32, u32)>> {
    let gids = match path.to_str()? {
        "/etc/subuid" => false,
        "/etc/subgid" => true,
        _ => return None,
    };
    let nsswitch = fs_err::read_to_string("/etc/nsswitch.conf").ok()?;
    subid_service(&nsswitch)?;
    let mut command = std::process::Command::new("getsubids");
    if gids {
        command.arg("-g");
    }
    let out = command
        .arg(name?)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| parse_getsubids(&String::from_utf8_lossy(&out.stdout)))
}

/// `getsubids` lines: `0: alice 100000 65536`.
fn parse_getsubids(text: &str) -> Vec<(u32, u32)> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace().skip(2);
            let first = fields.next()?.parse::<u32>().ok()?;
            let count = fields.next()?.parse::<u32>().ok()?;
            (count > 0).then_some((first, count))
        })
        .collect()
}

fn parse_ranges(text: &str, name: Option<&str>, uid: u32) -> Vec<(u32, u32)> {
    let uid_text = uid.to_string();
    text.lines()
        .filter_map(|line| {
            let mut fields = line.trim().split(':');
            let owner = fields.next()?;
            let first = fields.next()?.parse::<u32>().ok()?;
            let count = fields.next()?.parse::<u32>().ok()?;
            let mine = Some(owner) == name || owner == uid_text;
            (mine && count > 0).then_some((first, count))
        })
        .collect()
}

/// keep-id over subordinate ranges: inside ids 0.. take subordinate ids in order, skipping the
/// user's own id, which maps to itself.
fn keep_id(own: u32, subs: &[(u32, u32)]) -> Vec<IdRange> {
    let mut out = Vec::new();
    let mut next_inside: u32 = 0;
    for &(mut outside, mut count) in subs {
        while count > 0 {
            if next_inside == own {
                next_inside = next_inside.saturating_add(1);
            }
            // How many fit before we reach the user's own id.
            let room = if next_inside < own {
                own - next_inside
            } else {
                u32::MAX - next_inside
            };
            let take = count.min(room);
            if take == 0 {
                break;
            }
            out.push(IdRange {
                inside: next_inside,
                outside,
                count: take,
            });
            next_inside = next_inside.saturating_add(take);
            outside = outside.saturating_add(take);
            count -= take;
        }
    }
    out.push(IdRange {
        inside: own,
        outside: own,
        count: 1,
    });
    out.sort_by_key(|r| r.inside);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_subuid_by_name_or_uid() {
        let text = "other:1:2\nme:100000:65536\n1000:300000:10\n";
        assert_eq!(
            parse_ranges(text, Some("me"), 1000),
            vec![(100000, 65536), (300000, 10)]
        );
        assert!(parse_ranges(text, Some("nobody"), 5).is_empty());
    }

    #[test]
    fn keep_id_skips_the_users_own_id() {
        let map = keep_id(1000, &[(100000, 65536)]);
        assert_eq!(
            map,
            vec![
                IdRange {
                    inside: 0,
                    outside: 100000,
                    count: 1000
                },
                IdRange {
                    inside: 1000,
                    outside: 1000,
                    count: 1
                },
                IdRange {
                    inside: 1001,
                    outside: 101000,
                    count: 64536
                },
            ]
        );
    }

    #[test]
    fn keep_id_with_a_small_range() {
        let map = keep_id(1000, &[(200000, 10)]);
        assert_eq!(
            map,
            vec![
                IdRange {
                    inside: 0,
                    outside: 200000,
                    count: 10
                },
                IdRange {
                    inside: 1000,
                    outside: 1000,
                    count: 1
                },
            ]
        );
    }

    #[test]
    fn ranges_from_a_subid_service_are_read_as_getsubids_prints_them() {
        let nsswitch = "passwd: files systemd\n# subid: nope\nsubid:   sss\n";
        assert_eq!(subid_service(nsswitch), Some("sss"));
        assert_eq!(subid_service("subid: files\n"), None);
        assert_eq!(subid_service("passwd: files\n"), None);
        assert_eq!(
            parse_getsubids("0: alice 100000 65536\n1: alice 300000 1000\nError x\n"),
            vec![(100_000, 65_536), (300_000, 1000)]
        );
    }
}
