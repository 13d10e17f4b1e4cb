//! `sandbox export -o FILE.tar|DIR/`: the prepared sandbox (the project's image with its setup
//! layers, built first when missing, and the config it runs with) as a standard OCI image.

use std::collections::BTreeMap;
use std::os::fd::AsFd as _;

use crate::cli::args::{CompressionArg, ExportArgs, GlobalArgs};
use crate::cli::errors::CliError;
use crate::cli::progress::Progress;
use crate::cli::{project, session, setup_steps};
use crate::fsutil::beneath::{self, GuardedPath};
use crate::image::export::{self, ExportInputs, LayerCompression, SetupLayer};

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
    global: &GlobalArgs,
    locked: bool,
    compression: CompressionArg,
    progress: &Progress,
) -> Result<PreparedProject, CliError> {
    let parts = project_parts(global, locked, compression, progress)?;
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
    global: &GlobalArgs,
    locked: bool,
    compression: CompressionArg,
    progress: &Progress,
) -> Result<ProjectParts, CliError> {
    let cwd = std::env::current_dir()?;
    let config = project::load(global, &cwd)?;
    crate::config::trust::check(&config)?;
    let chosen = crate::cli::commands::run::image_reference(None, locked, Some(&config), progress)?;
    let host = crate::cli::commands::run::host_facts(global)?;
    let inputs = crate::cli::commands::run::project_inputs(Some(&config), &cwd)?;
    let (store, ownership) = session::open_store_in_namespace(global, progress)?;
    let image =
        crate::cli::commands::run::prepare_image(&store, ownership.clone(), &chosen, progress)?;
    let inputs =
        crate::cli::egress::with_image_mirrors(&inputs, Some(&config), &image.layers, progress)?;
    let roots = setup_steps::prepare(
        &store, &config, &inputs, &image, &host, &ownership, progress,
    )?;
    let base = store
        .images()?
        .into_iter()
        .find(|r| r.manifest_digest.to_string() == image.manifest)
        .ok_or_else(|| CliError::Usage {
            message: format!("{} is not in the store", image.reference),
            hint: Some("pull it again with `sandbox pull`".into()),
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
        compression: match compression {
            CompressionArg::Gzip => LayerCompression::Gzip,
            CompressionArg::Zstd => LayerCompression::Zstd,
        },
    })
}

#[allow(clippy::print_stdout)]
pub fn run(global: &GlobalArgs, args: &ExportArgs) -> Result<(), CliError> {
    let progress = Progress::new(global.quiet).verbose(global.verbose);
    let cwd = std::env::current_dir()?;
    let PreparedProject {
        store,
        prepared,
        base,
        config,
        setup_layers,
    } = prepare_project(global, args.locked, args.compression, &progress)?;
    let name = args.name.clone().unwrap_or_else(|| {
        let dir = config
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_else(|| "project".into());
        let safe: String = dir
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        format!("localhost/{}:sandbox", safe.trim_matches(['-', '.']))
    });
    // The project dir is the sandbox's to write: no link there is followed on the way to the
    // output or at it (code inside may have planted `dist -> ~`).
    let target = GuardedPath::new(&args.output, &cwd, &[config.dir.as_path()]);
    let output = target.shown();
    let (parent, file_name) = target.open_parent()?;
    let existing = beneath::kind_at(parent.as_fd(), &file_name)?;
    let as_dir = args.output.as_os_str().to_string_lossy().ends_with('/')
        || existing == Some(nix::sys::stat::SFlag::S_IFDIR);
    if as_dir {
        let dir = beneath::dir_at(parent.as_fd(), &file_name, 0o755)?;
        export::write_layout(&store, &prepared, &name, dir.as_fd(), &output)?;
    } else {
        // Written unnamed beside the target, then renamed over it: never a half-written
        // archive there, never written through a link there.
        beneath::replace_at(parent.as_fd(), &file_name, 0o644, |file| {
            export::write_archive(
                &store,
                &prepared,
                &name,
                std::io::BufWriter::new(&mut *file),
            )
            .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
            .map(drop)?;
            file.sync_all()
        })?;
    }
    println!(
        "wrote {} ({}, {} layers: {} of the image, {} of setup): {}",
        output.display(),
        if as_dir {
            "OCI image layout"
        } else {
            "OCI archive"
        },
        prepared.layers.len(),
        base.layers.len(),
        setup_layers,
        prepared.manifest.digest
    );
    Ok(())
}

/// `sandbox load PATH [--name NAME]`.
#[allow(clippy::print_stdout)]
pub fn load(global: &GlobalArgs, args: &crate::cli::args::LoadArgs) -> Result<(), CliError> {
    let progress = Progress::new(global.quiet).verbose(global.verbose);
    let path = std::env::current_dir()?.join(&args.path);
    let (store, ownership) = session::open_store_in_namespace(global, &progress)?;
    let guard = |reference: &str, old: &crate::image::Digest| {
        let projects = projects_pinning(&store, reference);
        if projects.is_empty() || args.force {
            return Ok(());
        }
        Err(crate::image::error::ImageError::ReplacesPinned {
            reference: reference.to_owned(),
            old: old.clone(),
            projects,
        })
    };
    let loaded = crate::image::load::load(
        &store,
        &path,
        args.name.as_deref(),
        &ownership,
        &progress,
        &guard,
    )?;
    let record = &loaded.record;
    println!(
        "loaded {} ({} layers): {}",
        record.reference,
        record.layers.len(),
        record.manifest_digest
    );
    if let Some(old) = &loaded.replaced {
        println!("replaced {}, which was {old}", record.reference);
    }
    Ok(())
}

/// The current projects (known to the store, their dir still there) whose sandbox.lock pins
/// `reference`.
fn projects_pinning(
    store: &crate::image::store::Store,
    reference: &str,
) -> Vec<std::path::PathBuf> {
    let normal = |r: &str| {
        crate::image::Reference::parse(r)
            .map(|r| r.to_string())
            .ok()
    };
    let mut dirs: Vec<std::path::PathBuf> = store
        .chains()
        .into_iter()
        .map(|c| c.dir)
        .filter(|dir| {
            let path = dir.join(crate::config::lock::FILE_NAME);
            crate::config::files::read_optional(&path, crate::config::files::SMALL)
                .ok()
                .flatten()
                .and_then(|text| crate::config::lock::parse(&path, &text).ok())
                .is_some_and(|lock| normal(&lock.inputs.image).as_deref() == Some(reference))
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
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
