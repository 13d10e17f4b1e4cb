//! `sandbox rmi`, `sandbox prune`, `sandbox df`

use crate::cli::args::{GlobalArgs, PruneArgs, RmiArgs};

/// How long the home of a project that is gone is kept after its last use.
const HOME_GRACE: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
use crate::cli::errors::CliError;
use crate::cli::format;
use crate::cli::progress::Progress;
use crate::image::store::tree_size;
use crate::image::{gc, Reference};
use crate::project::access;
use crate::runtime::state;

#[allow(clippy::print_stdout)]
pub fn rmi(global: &GlobalArgs, args: &RmiArgs) -> Result<(), CliError> {
    let references = args
        .references
        .iter()
        .map(|r| Reference::parse(r))
        .collect::<Result<Vec<_>, _>>()?;
    let progress = Progress::new(global.quiet);
    let running =
        crate::runtime::state::running(&global.locations().store_root()?.join("containers"));
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
    let (store, _) = access::open_store_in_namespace(&global.locations(), &progress)?;
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
pub fn prune(global: &GlobalArgs, args: &PruneArgs) -> Result<(), CliError> {
    let progress = Progress::new(global.quiet);
    let (store, _) = access::open_store_in_namespace(&global.locations(), &progress)?;
    let freed = gc::prune(&store)?;
    // A project dir may be gone for a while (a branch checked out elsewhere, a disk not
    // mounted): its home waits a week after its last use, unless --homes.
    let grace = if args.homes {
        std::time::Duration::ZERO
    } else {
        HOME_GRACE
    };
    let (homes, home_bytes) = store.prune_homes(grace)?;
    // What killed sandboxes left (the next run would remove it too), and what an interrupted
    // `doctor` left.
    let containers = store.root().join("containers");
    let stale = state::stale(&containers);
    let container_bytes: u64 = stale.iter().map(|d| tree_size(d)).sum();
    let left = state::collect_stale(&containers);
    let (probes, probe_bytes) = remove_probe_leftovers(store.root());
    println!(
        "removed {} layers, {} blobs, {} setup layers, {} homes of projects that are gone, {} containers that were killed, {} leftovers of interrupted work; {} freed",
        freed.layers,
        freed.blobs,
        freed.setup,
        homes,
        left,
        freed.temp + probes,
        format::size(freed.bytes + home_bytes + container_bytes + probe_bytes)
    );
    Ok(())
}

/// `doctor`'s scratch dirs (`sandbox-doctor-PID`) whose doctor is gone: the overlay it tried
/// leaves a `work/work` dir of mode 000, which an old version did not remove.
fn remove_probe_leftovers(root: &std::path::Path) -> (usize, u64) {
    let Ok(entries) = fs_err::read_dir(root) else {
        return (0, 0);
    };
    let mut freed = (0, 0);
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("sandbox-doctor-") else {
            continue;
        };
        if std::path::Path::new("/proc").join(pid).exists() {
            continue;
        }
        let bytes = tree_size(&entry.path());
        if crate::runtime::probe::remove_scratch(&entry.path()).is_ok() {
            freed.0 += 1;
            freed.1 += bytes;
        }
    }
    freed
}

#[allow(clippy::print_stdout)]
pub fn df(global: &GlobalArgs) -> Result<(), CliError> {
    let store = access::open_store(&global.locations())?;
    let usage = gc::usage(&store)?;
    let homes = store.homes();
    let home_bytes: u64 = homes.iter().map(|h| h.bytes).sum();
    let orphaned_bytes: u64 = homes.iter().filter(|h| h.orphaned()).map(|h| h.bytes).sum();
    let containers = store.root().join("containers");
    let running = state::running(&containers).len();
    let container_bytes = tree_size(&containers);
    let stale_bytes: u64 = state::stale(&containers).iter().map(|d| tree_size(d)).sum();
    let caches = crate::project::caches::list(&global.locations());
    let cache_bytes: u64 = caches.iter().map(|(_, path)| tree_size(path)).sum();
    let mut rows = vec![
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
            "homes".into(),
            homes.len().to_string(),
            format::size(home_bytes),
            "-".into(),
            format::size(orphaned_bytes),
        ],
        vec![
            "containers".into(),
            running.to_string(),
            format::size(container_bytes),
            "-".into(),
            format::size(stale_bytes),
        ],
        vec![
            "caches".into(),
            caches.len().to_string(),
            format::size(cache_bytes),
            "-".into(),
            "-".into(),
        ],
        vec![
            "tmp".into(),
            "-".into(),
            format::size(usage.temp_bytes),
            "-".into(),
            format::size(usage.temp_bytes),
        ],
    ];
    // Layers hold the images' bytes: the images row is a view of them, not more disk.
    let total = usage.layer_bytes
        + usage.blob_bytes
        + usage.setup_bytes
        + home_bytes
        + container_bytes
        + cache_bytes
        + usage.temp_bytes;
    let reclaimable = usage.unused_bytes
        + usage.unused_setup_bytes
        + orphaned_bytes
        + stale_bytes
        + usage.temp_bytes;
    rows.push(vec![
        "total".into(),
        "-".into(),
        format::size(total),
        "-".into(),
        format::size(reclaimable),
    ]);
    print!("{}", format::table(&rows));
    println!("store: {}", store.root().display());
    if let Some(dir) = global.locations().caches_root() {
        println!(
            "caches: {} (`sandbox cache rm NAME` removes one)",
            dir.display()
        );
    }
    Ok(())
}
