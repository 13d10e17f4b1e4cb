//! A project's prepared image, as export, push and `lock --push` make it: the base image,
//! pulled, and the setup layers, built when missing, with the config the sandbox runs with.

use std::collections::BTreeMap;

use crate::image::archive::export::{self, ExportInputs, LayerCompression, SetupLayer};
use crate::project::error::ProjectError;
use crate::project::locations::Locations;
use crate::project::reporter::ProjectReporter;
use crate::project::{access, files, image_choice, inputs, setup_steps};

/// The project's git remote `origin`, when it has one with an http(s) URL: the same on every
/// clone, so the label does not make configs differ between machines.
fn git_origin(dir: &std::path::Path) -> Option<String> {
    let text = crate::config::files::read_optional(&dir.join(".git/config"), 256 * 1024)
        .ok()
        .flatten()?;
    let mut in_origin = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_origin = line == "[remote \"origin\"]";
        } else if in_origin {
            if let Some(url) = line
                .strip_prefix("url")
                .map(|r| r.trim_start_matches([' ', '=']))
            {
                let url = url.trim();
                let safe = (url.starts_with("https://") || url.starts_with("http://"))
                    && !url.contains('@')
                    && url.chars().all(|c| c.is_ascii_graphic());
                return safe.then(|| url.to_owned());
            }
        }
    }
    None
}

/// `SOURCE_DATE_EPOCH`, else 0: times in setup layers are clamped to it.
fn epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// What the project's prepared image is made of, before its setup blobs are made.
pub struct ProjectParts {
    pub store: crate::image::store::Store,
    pub base: crate::image::store::images::ImageRecord,
    pub config: crate::config::project::Project,
    pub setup: Vec<SetupLayer>,
    env: Vec<String>,
    labels: BTreeMap<String, String>,
    pub epoch: u64,
    pub compression: LayerCompression,
}

impl ProjectParts {
    pub fn inputs(&self) -> ExportInputs<'_> {
        ExportInputs {
            base: &self.base,
            setup: &self.setup,
            env: self.env.clone(),
            labels: self.labels.clone(),
            epoch: self.epoch,
            compression: self.compression,
        }
    }
}

/// The project's prepared image: its blobs made (setup layers built first when missing).
pub struct PreparedProject {
    pub store: crate::image::store::Store,
    pub prepared: export::Prepared,
    pub base: crate::image::store::images::ImageRecord,
    pub config: crate::config::project::Project,
    pub setup_layers: usize,
}

pub fn prepare_project(
    locations: &Locations,
    locked: bool,
    compression: LayerCompression,
    progress: &dyn ProjectReporter,
) -> Result<PreparedProject, ProjectError> {
    let parts = project_parts(locations, locked, compression, progress)?;
    let prepared = export::prepare(&parts.store, &parts.inputs(), export::Need::Blobs)?;
    Ok(PreparedProject {
        setup_layers: parts.setup.len(),
        store: parts.store,
        prepared,
        base: parts.base,
        config: parts.config,
    })
}

/// The project's parts: its base pulled and its setup layers built when missing.
pub fn project_parts(
    locations: &Locations,
    locked: bool,
    compression: LayerCompression,
    progress: &dyn ProjectReporter,
) -> Result<ProjectParts, ProjectError> {
    let cwd = std::env::current_dir()?;
    let config = files::load(locations, &cwd)?;
    crate::config::trust::check(&config)?;
    let chosen = image_choice::image_reference(None, locked, Some(&config), progress)?;
    let host = inputs::host_facts(locations)?;
    let inputs = inputs::project_inputs(Some(&config), &cwd)?;
    let (store, ownership) = access::open_store_in_namespace(locations, progress)?;
    let image = image_choice::prepare_image(&store, ownership.clone(), &chosen, progress)?;
    let inputs = crate::project::egress::with_image_mirrors(
        &inputs,
        Some(&config),
        &image.layers,
        progress,
    )?;
    let roots = setup_steps::prepare(
        &store, &config, &inputs, &image, &host, &ownership, progress,
    )?;
    let base = store
        .images()?
        .into_iter()
        .find(|r| r.manifest_digest.to_string() == image.manifest)
        .ok_or_else(|| {
            ProjectError::refused(
                format!("{} is not in the store", image.reference),
                "pull it again with `sandbox pull`",
            )
        })?;
    let setup: Vec<SetupLayer> = roots
        .iter()
        .zip(&config.setup)
        .map(|(root, step)| SetupLayer {
            root: root.clone(),
            entry: root.parent().map_or_else(|| root.clone(), |p| p.to_owned()),
            step: step.describe(),
        })
        .collect();
    // What the sandbox runs with: the image's variables, then the template's and project's
    // (`~/` as root's home, the image's user).
    let env = crate::runtime::environment::Environment::base(
        &image.env,
        &config.env_defaults,
        &config.env,
        std::path::Path::new("/root"),
    )
    .into_vec()
    .into_iter()
    .map(|(k, v)| format!("{k}={v}"))
    .collect();
    let mut labels = BTreeMap::new();
    labels.insert(
        "dev.sandbox.config.sha256".to_owned(),
        crate::image::Digest::of_bytes(config.text.as_bytes())
            .hex()
            .to_owned(),
    );
    if let Some(url) = git_origin(&config.dir) {
        labels.insert("org.opencontainers.image.source".to_owned(), url);
    }
    Ok(ProjectParts {
        store,
        base,
        config,
        setup,
        env,
        labels,
        epoch: epoch(),
        compression,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_label_is_the_origin_remote_when_it_is_a_plain_http_url() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(dir.path().join(".git")).unwrap();
        let config = |url: &str| {
            fs_err::write(
                dir.path().join(".git/config"),
                format!("[core]\n\tbare = false\n[remote \"origin\"]\n\turl = {url}\n\tfetch = +refs/heads/*\n"),
            )
            .unwrap();
            git_origin(dir.path())
        };
        assert_eq!(
            config("https://git.example/team/app.git").as_deref(),
            Some("https://git.example/team/app.git")
        );
        // Credentials in the URL, or ssh, are never put in an image.
        assert_eq!(config("https://user:token@git.example/app.git"), None);
        assert_eq!(config("git@git.example:team/app.git"), None);
    }
}
