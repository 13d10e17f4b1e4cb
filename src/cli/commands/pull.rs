//! `sandbox pull REF`

use crate::cli::args::{GlobalArgs, PullArgs};
use crate::cli::errors::CliError;
use crate::cli::format;
use crate::cli::progress::Progress;
use crate::cli::session;
use crate::image::Reference;

#[allow(clippy::print_stdout)]
pub fn run(global: &GlobalArgs, args: &PullArgs) -> Result<(), CliError> {
    let progress = Progress::new(global.quiet);
    let reference = Reference::parse(&args.reference)?;
    // Before anything that may start a thread: the namespace needs a single-threaded process.
    let (store, ownership) = session::open_store_in_namespace(global, &progress)?;
    let record = session::pull(&store, ownership, &reference, &progress)?;
    if global.quiet {
        println!("{}", record.manifest_digest);
    } else {
        println!(
            "pulled {} {} ({} layers, {})",
            record.reference,
            record.manifest_digest,
            record.layers.len(),
            format::size(record.size)
        );
    }
    Ok(())
}
