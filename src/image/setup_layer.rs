//! Setup layers: each of a project's `setup` steps, run once in a container of the image with
//! the layers of the steps before it (a copy step is made without one), kept as one more layer
//! in the store under `setup/<key>/root/` (overlay format, like `layers/`), with `setup.json`
//! beside it, written last. As a Containerfile's lines, the keys form a chain: step k's key
//! hashes step k-1's key and step k, so appending a step runs only that one and editing step k
//! reruns k and what follows. The chain starts from the base manifest digest, the toolchain and
//! the env (every step sees the env, so a change of it reruns them all). Every project with the
//! same inputs shares the layers.

use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil::beneath;
use crate::image::store::Store;

/// What every step sits on.
#[derive(Serialize)]
pub struct ChainRoot<'a> {
    pub base_manifest: &'a str,
    pub toolchain: Option<&'a str>,
    pub env: &'a [(String, String)],
}

/// One step's part of its layer's key: for a command, its text and the names of its secrets
/// (never their values); for a copy, where from and to, and the content's digest.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum StepKey<'a> {
    Run {
        command: &'a str,
        secrets: Vec<&'a str>,
    },
    Copy {
        from: &'a Path,
        to: &'a str,
        content: String,
    },
}

#[derive(Serialize)]
struct Link<'a> {
    parent: &'a str,
    step: &'a StepKey<'a>,
}

fn digest_of<T: Serialize>(value: &T) -> String {
    let json = serde_json::to_vec(value).unwrap_or_default();
    crate::image::Digest::of_bytes(&json).to_string()
}

impl ChainRoot<'_> {
    /// `sha256:<hex>` of the chain's start, as canonical JSON.
    pub fn key(&self) -> String {
        digest_of(self)
    }

    /// Each step's key, in order.
    pub fn chain(&self, steps: &[StepKey<'_>]) -> Vec<String> {
        let mut parent = self.key();
        steps
            .iter()
            .map(|step| {
                let key = digest_of(&Link {
                    parent: &parent,
                    step,
                });
                parent = key.clone();
                key
            })
            .collect()
    }
}

/// Written beside a finished setup layer, last.
#[derive(Debug, Serialize, Deserialize)]
pub struct SetupRecord {
    pub key: String,
    pub base_manifest: String,
    /// The key of the layer below (the chain's start for the first step).
    #[serde(default)]
    pub parent: String,
    /// The step, as `SetupStep::describe` words it.
    #[serde(default)]
    pub step: String,
    /// Its number in the project's steps (1-based).
    #[serde(default)]
    pub number: usize,
    /// The project whose setup made it.
    #[serde(default)]
    pub project: Option<PathBuf>,
    /// Before a layer per step: all of one project's steps in one layer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
    /// Seconds since the epoch.
    pub built: u64,
}

/// The chain of setup layers a project's last run used: a layer its project's chain has moved
/// past (an edit of a step) and no other project's chain holds is superseded.
#[derive(Debug, Serialize, Deserialize)]
pub struct ProjectChain {
    pub dir: PathBuf,
    pub keys: Vec<String>,
}

/// Whether no run of this sandbox will use `setup` again: a layer of all steps (before a layer
/// per step), or one whose project's chain moved past it and no other project's holds.
pub fn superseded(setup: &StoredSetup, chains: &[ProjectChain]) -> bool {
    let Some(record) = &setup.record else {
        return false;
    };
    if !record.steps.is_empty() {
        return true;
    }
    let Some(project) = &record.project else {
        return false;
    };
    !chains.iter().any(|c| c.keys.contains(&record.key)) && chains.iter().any(|c| &c.dir == project)
}

/// Takes out of a setup step's upper dir what sandbox itself put there rather than the step:
/// the /etc files it wrote (`expected`: path in the image and the text it wrote), where the step
/// left them as they were, and dirs copied up only because sandbox made mount points or files
/// in them (empty, with the same mode and owner as below). What remains is the step's own
/// doing: a layer that does not name the preparing user, the same on every machine.
pub fn clean_setup_upper(
    upper: &Path,
    lowers: &[PathBuf],
    expected: &[(PathBuf, String)],
    made: &[PathBuf],
) -> std::io::Result<()> {
    // The step wrote this upper dir: a dir on the way may now be a link (`rm -rf /etc; ln -s
    // ~/D /etc`), and nothing is read or removed through one.
    let root = nix::fcntl::open(
        upper,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    for (path, text) in expected {
        let rel = path.strip_prefix("/").unwrap_or(path);
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            continue;
        };
        let Ok(dir) = beneath::open_dir_beneath(root.as_fd(), parent) else {
            continue;
        };
        let limit = text.len() as u64 + 1;
        if beneath::read_regular_at(dir.as_fd(), name, limit)?.as_deref() == Some(text.as_bytes()) {
            beneath::unlink_at(dir.as_fd(), name)?;
        }
    }
    let made: Vec<PathBuf> = made
        .iter()
        .map(|p| p.strip_prefix("/").unwrap_or(p).to_owned())
        .collect();
    remove_copied_up_dirs(upper, Path::new(""), lowers, &made)?;
    Ok(())
}

/// Removes empty dirs under `upper/rel` (deepest first) that only repeat the image's own, or
/// that sandbox made (`made`: mount points, the home) where the image has none.
fn remove_copied_up_dirs(
    upper: &Path,
    rel: &Path,
    lowers: &[PathBuf],
    made: &[PathBuf],
) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let dir = upper.join(rel);
    for entry in fs_err::read_dir(&dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_copied_up_dirs(upper, &rel.join(entry.file_name()), lowers, made)?;
        }
    }
    if rel.as_os_str().is_empty() || fs_err::read_dir(&dir)?.next().is_some() {
        return Ok(());
    }
    let opaque = sys::cpath(&dir)
        .ok()
        .zip(sys::cstring("user.overlay.opaque").ok())
        .is_some_and(|(p, n)| sys::small_xattr(&p, &n).is_some());
    let mine = fs_err::symlink_metadata(&dir)?;
    let below = lowers
        .iter()
        .rev()
        .find_map(|l| fs_err::symlink_metadata(l.join(rel)).ok());
    let same = below.as_ref().is_some_and(|b| {
        b.is_dir() && b.mode() == mine.mode() && b.uid() == mine.uid() && b.gid() == mine.gid()
    });
    let sandbox_made = below.is_none() && made.iter().any(|m| m == rel);
    if (same || sandbox_made) && !opaque {
        fs_err::remove_dir(&dir)?;
    }
    Ok(())
}

/// Setup layers no run used for this long are removed by `prune`.
pub const UNUSED_DAYS: u64 = 30;

/// A setup layer as stored.
pub struct StoredSetup {
    pub dir: PathBuf,
    pub record: Option<SetupRecord>,
    pub used: Option<std::time::SystemTime>,
}

fn hex(key: &str) -> &str {
    key.strip_prefix("sha256:").unwrap_or(key)
}

impl Store {
    pub fn setup_dir(&self) -> PathBuf {
        self.root().join("setup")
    }

    fn setup_entry(&self, key: &str) -> PathBuf {
        self.setup_dir().join(hex(key))
    }

    /// The layer root of a finished setup layer, if it is stored. Its record's mtime is set to
    /// now: `prune` removes setup layers that no run used for `UNUSED_DAYS`.
    pub fn setup_layer(&self, key: &str) -> Option<PathBuf> {
        let entry = self.setup_entry(key);
        let record = std::fs::OpenOptions::new()
            .write(true)
            .open(entry.join("setup.json"))
            .ok()?;
        let _ = record.set_modified(std::time::SystemTime::now());
        Some(entry.join("root"))
    }

    /// Every entry under `setup/`: its dir, its record (none while it is being committed, or
    /// when a kill interrupted that) and when a run last used it.
    pub fn setup_layers(&self) -> Vec<StoredSetup> {
        let Ok(entries) = fs_err::read_dir(self.setup_dir()) else {
            return Vec::new();
        };
        entries
            .flatten()
            .map(|e| {
                let dir = e.path();
                let record_path = dir.join("setup.json");
                StoredSetup {
                    record: fs_err::read(&record_path)
                        .ok()
                        .and_then(|b| serde_json::from_slice(&b).ok()),
                    used: fs_err::metadata(&record_path)
                        .and_then(|m| m.modified())
                        .ok(),
                    dir,
                }
            })
            .collect()
    }

    fn chains_dir(&self) -> PathBuf {
        self.root().join("projects")
    }

    /// Records `keys` as the project's current chain (when it changed).
    pub fn record_chain(&self, dir: &Path, keys: &[String]) -> std::io::Result<()> {
        let name = crate::image::Digest::of_bytes(dir.as_os_str().as_encoded_bytes());
        let file = self.chains_dir().join(format!("{}.json", name.hex()));
        let chain = ProjectChain {
            dir: dir.to_owned(),
            keys: keys.to_vec(),
        };
        let bytes = serde_json::to_vec_pretty(&chain).map_err(std::io::Error::other)?;
        if fs_err::read(&file).is_ok_and(|old| old == bytes) {
            return Ok(());
        }
        fs_err::create_dir_all(self.chains_dir())?;
        crate::fsutil::atomic::write_file_atomic(&file, &bytes, 0o600)
    }

    /// Every project's current chain.
    pub fn chains(&self) -> Vec<ProjectChain> {
        let Ok(entries) = fs_err::read_dir(self.chains_dir()) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| fs_err::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect()
    }

    /// Moves a container's upper dir into the store as the setup layer `key` (a rename within
    /// the store), then writes its record: until then, it is not a setup layer.
    pub fn commit_setup_layer(
        &self,
        key: &str,
        upper: &std::path::Path,
        record: &SetupRecord,
    ) -> std::io::Result<PathBuf> {
        let entry = self.setup_entry(key);
        let _ = fs_err::remove_dir_all(&entry);
        fs_err::create_dir_all(&entry)?;
        fs_err::rename(upper, entry.join("root"))?;
        let bytes = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
        crate::fsutil::atomic::write_file_atomic(&entry.join("setup.json"), &bytes, 0o600)?;
        Ok(entry.join("root"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(command: &str) -> StepKey<'_> {
        StepKey::Run {
            command,
            secrets: Vec::new(),
        }
    }

    #[test]
    fn a_steps_key_depends_on_the_steps_before_it_and_not_after() {
        let env = vec![("A".to_owned(), "1".to_owned())];
        let root = ChainRoot {
            base_manifest: "sha256:aa",
            toolchain: Some("node@22"),
            env: &env,
        };
        let two = root.chain(&[run("apt-get update"), run("npm ci")]);
        let three = root.chain(&[run("apt-get update"), run("npm ci"), run("npm test")]);
        assert_eq!(two[..], three[..2], "appending keeps the earlier keys");
        let edited = root.chain(&[run("apt-get update -q"), run("npm ci")]);
        assert!(
            edited.iter().zip(&two).all(|(a, b)| a != b),
            "editing step 1 changes all"
        );
        let secret = root.chain(&[StepKey::Run {
            command: "apt-get update",
            secrets: vec!["TOKEN"],
        }]);
        assert_ne!(secret[0], two[0]);
        let other_env = vec![("A".to_owned(), "2".to_owned())];
        let moved = ChainRoot {
            env: &other_env,
            ..root_clone(&root)
        };
        assert_ne!(moved.chain(&[run("apt-get update")])[0], two[0]);
    }

    fn root_clone<'a>(r: &ChainRoot<'a>) -> ChainRoot<'a> {
        ChainRoot {
            base_manifest: r.base_manifest,
            toolchain: r.toolchain,
            env: r.env,
        }
    }

    fn stored(key: &str, project: Option<&str>, steps: &[&str]) -> StoredSetup {
        StoredSetup {
            dir: PathBuf::from("/store/setup").join(key),
            record: Some(SetupRecord {
                key: key.into(),
                base_manifest: "sha256:aa".into(),
                parent: String::new(),
                step: "make".into(),
                number: 1,
                project: project.map(PathBuf::from),
                steps: steps.iter().map(|s| s.to_string()).collect(),
                built: 0,
            }),
            used: None,
        }
    }

    #[test]
    fn a_layer_is_superseded_when_its_projects_chain_moved_past_it_and_no_other_holds_it() {
        let chains = vec![
            ProjectChain {
                dir: "/p/a".into(),
                keys: vec!["k1".into(), "k2b".into()],
            },
            ProjectChain {
                dir: "/p/b".into(),
                keys: vec!["k1".into(), "k2".into()],
            },
        ];
        assert!(
            !superseded(&stored("k1", Some("/p/a"), &[]), &chains),
            "in use"
        );
        assert!(
            !superseded(&stored("k2", Some("/p/a"), &[]), &chains),
            "b's chain holds it"
        );
        assert!(
            superseded(&stored("k3", Some("/p/a"), &[]), &chains),
            "a moved past it"
        );
        assert!(
            !superseded(&stored("k3", Some("/p/c"), &[]), &chains),
            "c never said"
        );
        assert!(
            superseded(&stored("old", None, &["a", "b"]), &chains),
            "all steps in one"
        );
    }

    #[test]
    fn what_sandbox_put_in_a_setup_upper_goes_and_what_the_step_did_stays() {
        let lower = tempfile::tempdir().unwrap();
        let upper = tempfile::tempdir().unwrap();
        for dir in ["etc", "proc", "opt"] {
            fs_err::create_dir_all(lower.path().join(dir)).unwrap();
            fs_err::create_dir_all(upper.path().join(dir)).unwrap();
        }
        fs_err::write(upper.path().join("etc/hosts"), "127.0.0.1 app\n").unwrap();
        fs_err::write(upper.path().join("etc/passwd"), "root:x:0:0\nnew:x:1:1\n").unwrap();
        fs_err::create_dir_all(upper.path().join("opt/tool")).unwrap();
        fs_err::write(upper.path().join("opt/tool/bin"), "x").unwrap();
        let expected = vec![
            (PathBuf::from("/etc/hosts"), "127.0.0.1 app\n".to_owned()),
            (PathBuf::from("/etc/passwd"), "root:x:0:0\n".to_owned()),
        ];
        fs_err::create_dir_all(upper.path().join("sys")).unwrap();
        fs_err::create_dir_all(upper.path().join("srv")).unwrap();
        clean_setup_upper(
            upper.path(),
            &[lower.path().to_owned()],
            &expected,
            &[PathBuf::from("/sys")],
        )
        .unwrap();
        assert!(
            !upper.path().join("sys").exists(),
            "a mount point sandbox made: gone"
        );
        assert!(
            upper.path().join("srv").exists(),
            "an empty dir the step made: kept"
        );
        assert!(
            !upper.path().join("etc/hosts").exists(),
            "as sandbox wrote it: gone"
        );
        assert!(
            upper.path().join("etc/passwd").exists(),
            "the step changed it: kept"
        );
        assert!(
            !upper.path().join("proc").exists(),
            "an empty copy-up: gone"
        );
        assert!(upper.path().join("opt/tool/bin").exists());
    }

    #[test]
    fn the_chains_start_changes_with_every_input() {
        let env = vec![("A".to_owned(), "1".to_owned())];
        let other_env = vec![("A".to_owned(), "2".to_owned())];
        let base = ChainRoot {
            base_manifest: "sha256:aa",
            toolchain: Some("java@17"),
            env: &env,
        };
        for variant in [
            ChainRoot {
                base_manifest: "sha256:bb",
                ..root_clone(&base)
            },
            ChainRoot {
                toolchain: Some("java@21"),
                ..root_clone(&base)
            },
            ChainRoot {
                env: &other_env,
                ..root_clone(&base)
            },
        ] {
            assert_ne!(variant.key(), base.key());
        }
        assert_eq!(base.key(), root_clone(&base).key());
    }
}
