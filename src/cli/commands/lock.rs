//! `sandbox lock [--update]`: records in sandbox.lock the digests the project's image resolved
//! to and its setup key. Without --update a lock that still matches sandbox.toml is kept as it
//! is (no registry asked); --update asks the registry what the tag names now.

use crate::cli::args::{GlobalArgs, LockArgs};
use crate::cli::errors::CliError;
use crate::cli::progress::Progress;
use crate::cli::project::{self, LockState};
use crate::cli::session;
use crate::config::lock::{self, Inputs, LockFile, Resolved};
use crate::image::setup_layer::SetupInputs;
use crate::image::Reference;

#[allow(clippy::print_stdout)]
pub fn run(global: &GlobalArgs, args: &LockArgs) -> Result<(), CliError> {
    let progress = Progress::new(global.quiet).verbose(global.verbose);
    let cwd = std::env::current_dir()?;
    let project = project::load(global, &cwd)?;
    if !args.update {
        if let LockState::Current(_) = project::lock_state(&project)? {
            println!(
                "{} is up to date (`sandbox lock --update` asks the registry again)",
                lock::path_for(&project).display()
            );
            return Ok(());
        }
    }
    let reference = Reference::parse(&project.image.value)?;
    let (store, ownership) = session::open_store_in_namespace(global, &progress)?;
    let record = session::pull(&store, ownership, &reference, &progress)?;
    let inputs = Inputs::of(&project);
    let manifest = record.manifest_digest.to_string();
    let setup_key = (!project.setup.is_empty()).then(|| {
        SetupInputs {
            base_manifest: &manifest,
            toolchain: inputs.toolchain.as_deref(),
            steps: &project.setup,
            env: &project.env,
        }
        .key()
    });
    let file = LockFile {
        version: 1,
        inputs,
        resolved: Resolved {
            digest: record.resolved_digest.to_string(),
            platform: record.platform.clone(),
            manifest,
            setup_key,
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
