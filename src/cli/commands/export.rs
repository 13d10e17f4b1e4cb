//! `sandbox export -o FILE.tar|DIR/`: the prepared sandbox (the project's image with its setup
//! layers, built first when missing, and the config it runs with) as a standard OCI image.

use std::os::fd::AsFd as _;

use crate::cli::args::{ExportArgs, GlobalArgs};
use crate::cli::errors::CliError;
use crate::cli::progress::Progress;
use crate::fsutil::beneath::{self, GuardedPath};
use crate::image::archive::export::{self};
use crate::project::access;

#[allow(clippy::print_stdout)]
pub fn run(global: &GlobalArgs, args: &ExportArgs) -> Result<(), CliError> {
    let progress = Progress::new(global.quiet).verbose(global.verbose);
    let cwd = std::env::current_dir()?;
    let crate::project::mobility::parts::PreparedProject {
        store,
        prepared,
        base,
        config,
        setup_layers,
    } = crate::project::mobility::parts::prepare_project(
        &global.locations(),
        args.locked,
        args.compression.into(),
        &progress,
    )?;
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
    let (store, ownership) = access::open_store_in_namespace(&global.locations(), &progress)?;
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
    let loaded = crate::image::archive::load::load(
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
