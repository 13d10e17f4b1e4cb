//! `sandbox pull [REF]` (no REF: the project's image, as sandbox.lock pins it)

use crate::cli::args::{GlobalArgs, PullArgs};
use crate::cli::errors::CliError;
use crate::cli::format;
use crate::cli::progress::Progress;
use crate::image::Reference;
use crate::project::access;
use crate::project::files;

#[allow(clippy::print_stdout)]
pub fn run(global: &GlobalArgs, args: &PullArgs) -> Result<(), CliError> {
    let progress = Progress::new(global.quiet);
    let reference = match &args.reference {
        Some(text) => Reference::parse(text)?,
        None => {
            let cwd = std::env::current_dir()?;
            let project = files::load(&global.locations(), &cwd)?;
            let text = match files::lock_state(&project)? {
                files::LockState::Current(lock) => crate::config::lock::pinned_reference(
                    &lock,
                    &crate::image::platform::Platform::host().to_string(),
                ),
                _ => project.image.value.clone(),
            };
            Reference::parse(&text)?
        }
    };
    // Before anything that may start a thread: the namespace needs a single-threaded process.
    let (store, ownership) = access::open_store_in_namespace(&global.locations(), &progress)?;
    let record = access::pull(&store, ownership, &reference, &progress)?;
    if global.quiet {
        println!("{}", record.manifest_digest);
    } else {
        // A pinned reference (a locked project's) names its digest already.
        let reference = record.reference.to_string();
        let digest = record.manifest_digest.to_string();
        let digest = if reference.contains(&digest) {
            String::new()
        } else {
            format!(" {digest}")
        };
        println!(
            "pulled {reference}{digest} ({} layers, {})",
            record.layers.len(),
            format::size(record.size)
        );
    }
    Ok(())
}
