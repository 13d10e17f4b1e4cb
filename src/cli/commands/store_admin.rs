//! `sandbox rmi`, `sandbox prune`, `sandbox df`

use crate::cli::args::{GlobalArgs, RmiArgs};
use crate::cli::errors::CliError;
use crate::cli::progress::Progress;
use crate::cli::{format, session};
use crate::image::{gc, Reference};

#[allow(clippy::print_stdout)]
pub fn rmi(global: &GlobalArgs, args: &RmiArgs) -> Result<(), CliError> {
    let references = args
        .references
        .iter()
        .map(|r| Reference::parse(r))
        .collect::<Result<Vec<_>, _>>()?;
    let progress = Progress::new(global.quiet);
    let running = crate::runtime::state::running(&session::store_root(global)?.join("containers"));
    for reference in &references {
        let name = reference.to_string();
        if let Some(sandbox) = running.iter().find(|s| s.image == name) {
            return Err(CliError::Usage {
                message: format!(
                    "image {name} is in use by the running sandbox {} ({})",
                    sandbox.id,
                    sandbox.project_dir.display()
                ),
                hint: Some(format!("stop it first: `sandbox stop {}`", sandbox.id)),
            });
        }
    }
    let (store, _) = session::open_store_in_namespace(global, &progress)?;
    for reference in references {
        let freed = gc::remove_image(&store, &reference, args.force)?;
        println!(
            "removed {reference} ({} layers, {} setup layers, {} freed)",
            freed.layers,
            freed.setup,
            format::size(freed.bytes)
        );
    }
    Ok(())
}

#[allow(clippy::print_stdout)]
pub fn prune(global: &GlobalArgs) -> Result<(), CliError> {
    let progress = Progress::new(global.quiet);
    let (store, _) = session::open_store_in_namespace(global, &progress)?;
    let freed = gc::prune(&store)?;
    println!(
        "removed {} layers, {} blobs, {} setup layers, {} leftovers of interrupted work; {} freed",
        freed.layers,
        freed.blobs,
        freed.setup,
        freed.temp,
        format::size(freed.bytes)
    );
    Ok(())
}

#[allow(clippy::print_stdout)]
pub fn df(global: &GlobalArgs) -> Result<(), CliError> {
    let store = session::open_store(global)?;
    let usage = gc::usage(&store)?;
    let rows = vec![
        vec![
            "TYPE".to_owned(),
            "COUNT".into(),
            "SIZE".into(),
            "SHARED".into(),
            "RECLAIMABLE".into(),
        ],
        vec![
            "images".into(),
            usage.images.to_string(),
            format::size(usage.layer_bytes - usage.unused_bytes),
            format::size(usage.shared_bytes),
            "-".into(),
        ],
        vec![
            "layers".into(),
            usage.layers.to_string(),
            format::size(usage.layer_bytes),
            format::size(usage.shared_bytes),
            format::size(usage.unused_bytes),
        ],
        vec![
            "blobs".into(),
            usage.blobs.to_string(),
            format::size(usage.blob_bytes),
            "-".into(),
            "-".into(),
        ],
        vec![
            "setup".into(),
            usage.setup_layers.to_string(),
            format::size(usage.setup_bytes),
            "-".into(),
            format::size(usage.unused_setup_bytes),
        ],
        vec![
            "tmp".into(),
            "-".into(),
            format::size(usage.temp_bytes),
            "-".into(),
            format::size(usage.temp_bytes),
        ],
    ];
    print!("{}", format::table(&rows));
    println!("store: {}", store.root().display());
    Ok(())
}
