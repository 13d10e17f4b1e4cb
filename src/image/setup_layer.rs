//! Setup layers: a project's `setup` steps, run once in a container of its base image, kept as
//! one more layer in the store under `setup/<key>/root/` (overlay format, like `layers/`), with
//! `setup.json` beside it, written last. The key hashes everything that decides the result
//! (the base manifest digest, the steps, the env, the toolchain), so a change of any rebuilds
//! it and every project with the same inputs shares it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::store::Store;

/// What decides a setup layer's content.
#[derive(Serialize)]
pub struct SetupInputs<'a> {
    pub base_manifest: &'a str,
    pub toolchain: Option<&'a str>,
    pub steps: &'a [String],
    pub env: &'a [(String, String)],
}

impl SetupInputs<'_> {
    /// `sha256:<hex>` of the inputs, as canonical JSON.
    pub fn key(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        super::Digest::of_bytes(&json).to_string()
    }
}

/// Written beside a finished setup layer, last.
#[derive(Debug, Serialize, Deserialize)]
pub struct SetupRecord {
    pub key: String,
    pub base_manifest: String,
    pub steps: Vec<String>,
    /// Seconds since the epoch.
    pub built: u64,
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

    #[test]
    fn the_key_changes_with_every_input() {
        let steps = vec!["apt-get update".to_owned()];
        let env = vec![("A".to_owned(), "1".to_owned())];
        let base = SetupInputs {
            base_manifest: "sha256:aa",
            toolchain: Some("java@17"),
            steps: &steps,
            env: &env,
        };
        let other_steps = vec!["apt-get upgrade".to_owned()];
        let other_env = vec![("A".to_owned(), "2".to_owned())];
        let variants = [
            SetupInputs {
                base_manifest: "sha256:bb",
                ..base_clone(&base)
            },
            SetupInputs {
                toolchain: Some("java@21"),
                ..base_clone(&base)
            },
            SetupInputs {
                steps: &other_steps,
                ..base_clone(&base)
            },
            SetupInputs {
                env: &other_env,
                ..base_clone(&base)
            },
        ];
        for v in variants {
            assert_ne!(v.key(), base.key());
        }
        assert_eq!(base.key(), base_clone(&base).key());
    }

    fn base_clone<'a>(b: &SetupInputs<'a>) -> SetupInputs<'a> {
        SetupInputs {
            base_manifest: b.base_manifest,
            toolchain: b.toolchain,
            steps: b.steps,
            env: b.env,
        }
    }
}
