//! `sandbox.lock`: what a project's sandbox.toml resolved to, so every machine gets the same
//! shell, offline too and after a tag moves. TOML, diff-friendly; `[inputs]` repeats what
//! sandbox.toml said (so a drift can be shown as a diff), `[resolved]` holds the digests.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::error::ConfigError;
use crate::config::project::Project;
use crate::fsutil::atomic::write_file_atomic;

pub const FILE_NAME: &str = "sandbox.lock";
/// The version written: 2 has a setup key per step (1 had one for all).
pub const VERSION: u32 = 2;
const HEADER: &str = "# sandbox.lock: what sandbox.toml resolved to, written by `sandbox lock`.\n\
# Commit it: `sandbox run`/`enter` then use these digests without asking the registry about\n\
# the tag, and `--locked` refuses to run when sandbox.toml no longer matches. Do not edit.\n";

/// What in sandbox.toml decides the sandbox's contents.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toolchain: Option<String>,
    pub image: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub setup: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

impl Inputs {
    pub fn of(project: &Project) -> Self {
        Self {
            toolchain: project
                .toolchain
                .as_ref()
                .map(crate::config::project::Toolchain::key),
            image: project.image.value.clone(),
            setup: project
                .setup
                .iter()
                .map(crate::config::setup::SetupStep::describe)
                .collect(),
            env: project.env.iter().cloned().collect(),
        }
    }
}

/// The digests the inputs resolved to.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Resolved {
    /// What the tag named: an index for a multi-platform image, else the manifest.
    pub digest: String,
    /// The platform the manifest below is for.
    pub platform: String,
    pub manifest: String,
    /// Version 1: one key for all the setup steps' layer (read, never written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_key: Option<String>,
    /// The key of each setup step's layer, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub setup: Vec<String>,
    /// The prepared sandbox (image and setup layers) pushed by `sandbox lock --push`, by
    /// digest: a machine without the setup layers pulls it instead of running setup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prepared: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LockFile {
    pub version: u32,
    pub inputs: Inputs,
    pub resolved: Resolved,
}

pub fn path_for(project: &Project) -> PathBuf {
    project.dir.join(FILE_NAME)
}

/// The project's lock, if it has one.
pub fn read(project: &Project) -> Result<Option<LockFile>, ConfigError> {
    let path = path_for(project);
    let Some(text) = crate::config::files::read_optional(&path, crate::config::files::SMALL)?
    else {
        return Ok(None);
    };
    crate::config::ownership::check(&path)?;
    parse(&path, &text).map(Some)
}

/// Validates the text of a sandbox.lock at `path` (which errors name).
pub fn parse(path: &std::path::Path, text: &str) -> Result<LockFile, ConfigError> {
    let lock: LockFile =
        toml::from_str(text).map_err(|e| crate::config::diagnostic::from_toml(path, text, &e))?;
    if !(1..=VERSION).contains(&lock.version) {
        return Err(ConfigError::Other {
            message: format!(
                "{} has version {}, which this sandbox does not know",
                path.display(),
                lock.version
            ),
            hint: Some("upgrade sandbox, or write a new lock with `sandbox lock --update`".into()),
        });
    }
    Ok(lock)
}

/// Writes the lock by temp file and rename: a symlink planted at sandbox.lock (the project
/// dir is writable from inside the sandbox) is replaced, never followed.
pub fn write(project: &Project, lock: &LockFile) -> Result<PathBuf, ConfigError> {
    let body = toml::to_string(lock).map_err(|source| ConfigError::EncodeLock { source })?;
    let path = path_for(project);
    write_file_atomic(&path, format!("{HEADER}\n{body}").as_bytes(), 0o644)?;
    Ok(path)
}

/// The lines of `[inputs]` that differ, as `- old` / `+ new`; empty when they match.
pub fn drift(locked: &Inputs, now: &Inputs) -> Vec<String> {
    let text = |i: &Inputs| toml::to_string(i).unwrap_or_default();
    let (old, new) = (text(locked), text(now));
    let old_lines: Vec<&str> = old.lines().collect();
    let new_lines: Vec<&str> = new.lines().collect();
    let mut out: Vec<String> = old_lines
        .iter()
        .filter(|l| !new_lines.contains(l))
        .map(|l| format!("- {l}"))
        .collect();
    out.extend(
        new_lines
            .iter()
            .filter(|l| !old_lines.contains(l))
            .map(|l| format!("+ {l}")),
    );
    out
}

/// Where a lock's image comes from: the manifest for this platform, else what the tag named.
pub fn pinned_reference(lock: &LockFile, host_platform: &str) -> String {
    let repository = lock
        .inputs
        .image
        .split('@')
        .next()
        .unwrap_or(&lock.inputs.image);
    // Drop the tag (a `:` after the last `/`), keep a registry port.
    let name = match repository.rfind(':') {
        Some(i) if i > repository.rfind('/').unwrap_or(0) => &repository[..i],
        _ => repository,
    };
    let digest = if lock.resolved.platform == host_platform {
        &lock.resolved.manifest
    } else {
        &lock.resolved.digest
    };
    format!("{name}@{digest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(image: &str, setup: &[&str]) -> Inputs {
        Inputs {
            toolchain: Some("php@8.2".into()),
            image: image.into(),
            setup: setup.iter().map(|s| s.to_string()).collect(),
            env: BTreeMap::new(),
        }
    }

    #[test]
    fn drift_shows_what_changed() {
        let a = inputs("docker.io/library/php:8.2-cli", &["apt-get update"]);
        assert!(drift(&a, &a).is_empty());
        let b = inputs("docker.io/library/php:8.3-cli", &["apt-get update"]);
        assert_eq!(
            drift(&a, &b),
            [
                "- image = \"docker.io/library/php:8.2-cli\"",
                "+ image = \"docker.io/library/php:8.3-cli\""
            ]
        );
    }

    #[test]
    fn a_version_1_lock_is_read_and_a_version_3_refused() {
        let path = std::path::Path::new("/p/sandbox.lock");
        let old = "version = 1\n[inputs]\nimage = \"busybox:1\"\nsetup = [\"make\"]\n[resolved]\ndigest = \"sha256:aa\"\nplatform = \"linux/amd64\"\nmanifest = \"sha256:bb\"\nsetup_key = \"sha256:cc\"\n";
        let lock = parse(path, old).unwrap();
        assert_eq!(lock.version, 1);
        assert_eq!(lock.resolved.setup_key.as_deref(), Some("sha256:cc"));
        assert_eq!(lock.inputs.setup, ["make"]);
        let future = old.replace("version = 1", "version = 3");
        assert!(parse(path, &future).is_err());
    }

    #[test]
    fn the_pinned_reference_keeps_the_registry_port() {
        let lock = LockFile {
            version: 1,
            inputs: inputs("127.0.0.1:5000/library/php:8.2-cli", &[]),
            resolved: Resolved {
                digest: "sha256:aa".into(),
                platform: "linux/amd64".into(),
                manifest: "sha256:bb".into(),
                setup_key: None,
                setup: Vec::new(),
                prepared: None,
            },
        };
        assert_eq!(
            pinned_reference(&lock, "linux/amd64"),
            "127.0.0.1:5000/library/php@sha256:bb"
        );
        assert_eq!(
            pinned_reference(&lock, "linux/arm64"),
            "127.0.0.1:5000/library/php@sha256:aa"
        );
    }
}
