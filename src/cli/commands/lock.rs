//! `sandbox lock [--update]`: records in sandbox.lock the digests the project's image resolved
//! to and the key of each setup step's layer. Without --update a lock that still matches
//! sandbox.toml is kept as it is (no registry asked; a version 1 lock is upgraded in place);
//! --update asks the registry what the tag names now.

use crate::cli::args::{GlobalArgs, LockArgs};
use crate::cli::errors::CliError;
use crate::cli::progress::Progress;
use crate::config::lock::{self, Inputs, LockFile, Resolved};
use crate::image::Reference;
use crate::project::access;
use crate::project::files::{self, LockState};

#[allow(clippy::print_stdout)]
pub fn run(global: &GlobalArgs, args: &LockArgs) -> Result<(), CliError> {
    let progress = Progress::new(global.quiet).verbose(global.verbose);
    let cwd = std::env::current_dir()?;
    let project = files::load(&global.locations(), &cwd)?;
    if let Some(push) = &args.push {
        return lock_and_push(global, &project, push, &progress);
    }
    if !args.update {
        if let LockState::Current(mut current) = files::lock_state(&project)? {
            let path = lock::path_for(&project);
            if current.version < lock::VERSION {
                // Everything needed is in the lock and the project: no registry is asked.
                current.resolved.setup =
                    crate::project::setup_steps::chain(&project, &current.resolved.manifest)?;
                current.resolved.setup_key = None;
                let old = current.version;
                current.version = lock::VERSION;
                lock::write(&project, &current)?;
                println!(
                    "upgraded {} from version {old} to {} (a key per setup step)",
                    path.display(),
                    lock::VERSION
                );
                return Ok(());
            }
            println!(
                "{} is up to date (`sandbox lock --update` asks the registry again)",
                path.display()
            );
            return Ok(());
        }
    }
    let reference = Reference::parse(&project.image.value)?;
    let (store, ownership) = access::open_store_in_namespace(&global.locations(), &progress)?;
    let record = access::pull(&store, ownership, &reference, &progress)?;
    let inputs = Inputs::of(&project);
    let manifest = record.manifest_digest.to_string();
    let setup = crate::project::setup_steps::chain(&project, &manifest)?;
    let file = LockFile {
        version: lock::VERSION,
        inputs,
        resolved: Resolved {
            digest: record.resolved_digest.to_string(),
            platform: record.platform.clone(),
            manifest,
            setup_key: None,
            setup,
            prepared: None,
        },
    };
    let path = lock::write(&project, &file)?;
    println!(
        "wrote {}: {} -> {}",
        path.display(),
        project.image.value,
        record.manifest_digest
    );
    Ok(())
}

/// `sandbox lock --push REF`: prepares the sandbox (with the locked base when the lock is
/// current), pushes it, and writes the lock with the prepared image pinned by digest.
#[allow(clippy::print_stdout)]
fn lock_and_push(
    global: &GlobalArgs,
    project: &crate::config::project::Project,
    push: &str,
    progress: &Progress,
) -> Result<(), CliError> {
    let target = crate::project::mobility::publish::target(push)?;
    let prepared = crate::project::mobility::parts::project_parts(
        &global.locations(),
        false,
        crate::image::archive::export::LayerCompression::Gzip,
        progress,
    )?;
    let (digest, uploaded, skipped) =
        crate::project::mobility::publish::push(&prepared, &target, progress)?;
    let base = &prepared.base;
    let manifest = base.manifest_digest.to_string();
    let pinned = format!("{}@{digest}", target.name());
    let file = LockFile {
        version: lock::VERSION,
        inputs: Inputs::of(project),
        resolved: Resolved {
            digest: base.resolved_digest.to_string(),
            platform: base.platform.clone(),
            setup: crate::project::setup_steps::chain(project, &manifest)?,
            manifest,
            setup_key: None,
            prepared: Some(pinned.clone()),
        },
    };
    // Made here: a run of this lock pulls it without asking for `sandbox trust`.
    let normal = crate::image::Reference::parse(&pinned)
        .map(|r| r.to_string())
        .unwrap_or_else(|_| pinned.clone());
    prepared.store.record_made_prepared(&normal)?;
    let path = lock::write(project, &file)?;
    println!(
        "pushed {target}@{digest} ({uploaded} blobs uploaded, {skipped} already there); {} pins it as the prepared sandbox",
        path.display()
    );
    Ok(())
}
