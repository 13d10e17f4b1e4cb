//! `sandbox push REF`: the prepared sandbox (see `export`) to a registry. Blobs the registry
//! has are skipped, the base image's are mounted from its repository when it is on the same
//! registry, the rest uploaded; the manifest goes last. Prints the pushed digest.

use crate::cli::args::{GlobalArgs, PushArgs};
use crate::cli::errors::CliError;
use crate::cli::progress::Progress;
use crate::project::mobility::publish;

#[allow(clippy::print_stdout)]
pub fn run(global: &GlobalArgs, args: &PushArgs) -> Result<(), CliError> {
    let progress = Progress::new(global.quiet).verbose(global.verbose);
    let target = publish::target(&args.reference)?;
    let project = crate::project::mobility::parts::project_parts(
        &global.locations(),
        args.locked,
        args.compression.into(),
        &progress,
    )?;
    let (digest, uploaded, skipped) = publish::push(&project, &target, &progress)?;
    println!("pushed {target}@{digest} ({uploaded} blobs uploaded, {skipped} already there)");
    Ok(())
}
