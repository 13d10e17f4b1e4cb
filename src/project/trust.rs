//! Whether and how a sandbox trusts the host's CAs (`[tls]` in the user config): on by default
//! when the host trusts CAs of its own beyond its distribution's bundle.

use std::path::PathBuf;

use crate::image::store::Store;
use crate::project::error::ProjectError;
use crate::project::reporter::ProjectReporter;
use crate::runtime::plan::HostTrust;

/// The CA files of the host's to trust, per the user config.
pub fn host_files() -> Result<Vec<PathBuf>, ProjectError> {
    let settings = crate::config::user::tls()?;
    let local = crate::image::trust::host_ca_files(&[]);
    let mut files = if settings.host_cas.unwrap_or(!local.is_empty()) {
        local
    } else {
        Vec::new()
    };
    files.extend(settings.ca_files);
    Ok(files)
}

/// The trust files for a container on `layers` (lowest first) whose env is `env` (image's,
/// then the project's), or `None` when there is nothing of the host's to trust.
pub fn for_layers(
    store: &Store,
    files: &[PathBuf],
    layers: &[PathBuf],
    env: &[(String, String)],
    progress: &dyn ProjectReporter,
) -> Result<Option<HostTrust>, ProjectError> {
    if files.is_empty() {
        return Ok(None);
    }
    let java_home = env
        .iter()
        .rev()
        .find(|(k, _)| k == "JAVA_HOME")
        .map(|(_, v)| v.as_str());
    let Some(made) = crate::image::trust::prepare(store, layers, files, java_home)? else {
        return Ok(None);
    };
    crate::runtime::RunReporter::verbose(
        progress,
        &format!(
            "trusting the host's CAs inside: {}",
            made.added
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    Ok(Some(HostTrust {
        bundle: made.bundle,
        java_store: made.java_store,
        system_bundle: made.system_bundle,
        jvm_stores: made.jvm_stores,
    }))
}

/// The image's `Env`, a template's defaults where the image leaves them unset, and the
/// project's, as pairs (the project's last).
pub fn env_pairs(
    image_env: &[String],
    defaults: &[(String, String)],
    project_env: &[(String, String)],
) -> Vec<(String, String)> {
    let image: Vec<(String, String)> = image_env
        .iter()
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let unset: Vec<(String, String)> = defaults
        .iter()
        .filter(|(key, _)| !image.iter().any(|(k, _)| k == key))
        .cloned()
        .collect();
    image
        .into_iter()
        .chain(unset)
        .chain(project_env.iter().cloned())
        .collect()
}
