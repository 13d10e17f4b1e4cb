//! The trust list: sandbox.toml files whose requests for host access (the host's network, its
//! loopback, ports published beyond loopback) the user allowed with `sandbox trust`, as
//! `mise trust` and `direnv allow` do. A cloned project is someone else's file: an entry holds
//! for that path and that content only, so an edit needs a new `sandbox trust`.

use std::path::PathBuf;

use crate::config::error::ConfigError;
use crate::config::project::Project;
use crate::fsutil::atomic::write_file_atomic;

/// `$XDG_CONFIG_HOME/sandbox/trusted`: one `sha256-of-content path` line per file.
pub fn list_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("sandbox").join("trusted"))
}

fn entry(project: &Project) -> String {
    let digest = crate::image::Digest::of_bytes(project.text.as_bytes());
    format!("{} {}", digest.hex(), project.file.display())
}

/// The entry for the prepared sandbox a project's sandbox.lock pins (in place of running its
/// setup steps): for that lock's path and that pin only.
fn prepared_entry(project: &Project, prepared: &str) -> String {
    let digest = crate::image::Digest::of_bytes(format!("prepared {prepared}").as_bytes());
    format!(
        "{} {}",
        digest.hex(),
        crate::config::lock::path_for(project).display()
    )
}

fn listed(wanted: &str) -> bool {
    list_path()
        .and_then(|path| {
            crate::config::files::read_optional(&path, crate::config::files::LIST)
                .ok()
                .flatten()
        })
        .is_some_and(|text| text.lines().any(|l| l == wanted))
}

pub fn is_trusted(project: &Project) -> bool {
    listed(&entry(project))
}

/// Whether the user trusted the project's lock pinning `prepared` (`sandbox trust` run while
/// the lock pinned it).
pub fn is_prepared_trusted(project: &Project, prepared: &str) -> bool {
    listed(&prepared_entry(project, prepared))
}

/// Records the file's current content as trusted (replacing older entries for its path), and
/// the prepared sandbox its lock pins, when it pins one.
pub fn trust(project: &Project, prepared: Option<&str>) -> Result<(), ConfigError> {
    let path = list_path().ok_or(ConfigError::NoHome {
        what: "the trust list",
    })?;
    let suffixes = [
        format!(" {}", project.file.display()),
        format!(" {}", crate::config::lock::path_for(project).display()),
    ];
    let mut lines: Vec<String> =
        crate::config::files::read_optional(&path, crate::config::files::LIST)?
            .unwrap_or_default()
            .lines()
            .filter(|l| !suffixes.iter().any(|s| l.ends_with(s.as_str())))
            .map(str::to_owned)
            .collect();
    lines.push(entry(project));
    if let Some(prepared) = prepared {
        lines.push(prepared_entry(project, prepared));
    }
    if let Some(dir) = path.parent() {
        fs_err::create_dir_all(dir)?;
    }
    write_file_atomic(&path, format!("{}\n", lines.join("\n")).as_bytes(), 0o600)?;
    Ok(())
}

/// Fails, pointing at the first request for host access, unless the file is trusted.
pub fn check(project: &Project) -> Result<(), ConfigError> {
    let Some(first) = project.host_access.first() else {
        return Ok(());
    };
    if is_trusted(project) {
        return Ok(());
    }
    Err(project.error_at(
        first.span.clone(),
        format!(
            "{} asks for host access: {}",
            project
                .file
                .file_name()
                .map_or("sandbox.toml".into(), |n| n.to_string_lossy()),
            first.value
        ),
        Some(format!(
            "read {} first; if you want this, run `sandbox trust` in {} (an edit of the file needs it again)",
            project.file.display(),
            project.dir.display()
        )),
    ))
}
