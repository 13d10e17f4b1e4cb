//! `sandbox setup ls`: the project's setup steps with their layers (stored or still to build,
//! size, when built), and what edits of the project superseded (`prune` reclaims it).

use crate::cli::args::{GlobalArgs, SetupCommand};
use crate::cli::errors::CliError;
use crate::cli::format;
use crate::image::setup_layer::superseded;
use crate::image::store::tree_size;
use crate::image::Reference;
use crate::project::access;
use crate::project::files::{self, LockState};
use crate::project::setup_steps;

#[allow(clippy::print_stdout)]
pub fn run(global: &GlobalArgs, command: &SetupCommand) -> Result<(), CliError> {
    match command {
        SetupCommand::Ls => ls(global),
    }
}

#[allow(clippy::print_stdout)]
fn ls(global: &GlobalArgs) -> Result<(), CliError> {
    let cwd = std::env::current_dir()?;
    let config = files::load(&global.locations(), &cwd)?;
    let store = access::open_store(&global.locations())?;
    // The base manifest: the lock's, else the stored image's; nothing is pulled here.
    let manifest = match files::lock_state(&config)? {
        LockState::Current(lock) => Some(lock.resolved.manifest),
        _ => {
            let reference = Reference::parse(&config.image.value)?;
            store
                .image(&reference.to_string())?
                .map(|r| r.manifest_digest.to_string())
        }
    };
    let keys = match &manifest {
        Some(m) => setup_steps::chain(&config, m)?,
        None => Vec::new(),
    };
    let layers = store.setup_layers();
    let mut rows = vec![vec![
        "STEP".to_owned(),
        "LAYER".into(),
        "SIZE".into(),
        "BUILT".into(),
        "COMMAND".into(),
    ]];
    for (index, step) in config.setup.iter().enumerate() {
        let stored = keys.get(index).and_then(|key| {
            layers
                .iter()
                .find(|l| l.record.as_ref().is_some_and(|r| &r.key == key))
        });
        let (layer, size, built) = match (keys.get(index), stored) {
            (Some(key), Some(layer)) => (
                short(key),
                format::size(tree_size(&layer.dir)),
                layer
                    .record
                    .as_ref()
                    .map_or_else(String::new, |r| format::ago(r.built)),
            ),
            (Some(key), None) => (short(key), "-".into(), "not yet".into()),
            (None, _) => ("-".into(), "-".into(), "not yet".into()),
        };
        rows.push(vec![
            format!("{}/{}", index + 1, config.setup.len()),
            layer,
            size,
            built,
            step.describe(),
        ]);
    }
    if config.setup.is_empty() {
        println!("{} has no setup steps", config.file.display());
    } else {
        print!("{}", format::table(&rows));
    }
    if manifest.is_none() {
        println!(
            "{} is not in the store yet: `sandbox run` pulls it and builds the layers",
            config.image.value
        );
    }
    let chains = store.chains();
    let (count, bytes) = layers
        .iter()
        .filter(|l| {
            l.record
                .as_ref()
                .is_some_and(|r| r.project.as_ref() == Some(&config.dir))
                && superseded(l, &chains)
        })
        .fold((0, 0), |(n, b), l| (n + 1, b + tree_size(&l.dir)));
    if count > 0 {
        println!(
            "{count} layer{} of this project superseded by edits, {}: `sandbox prune` removes {}",
            if count == 1 { "" } else { "s" },
            format::size(bytes),
            if count == 1 { "it" } else { "them" }
        );
    }
    Ok(())
}

fn short(key: &str) -> String {
    key.strip_prefix("sha256:")
        .unwrap_or(key)
        .chars()
        .take(12)
        .collect()
}
