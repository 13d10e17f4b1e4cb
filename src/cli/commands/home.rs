//! `sandbox reset`: empties the project's persistent home (see `image::store::homes`).

use crate::cli::args::GlobalArgs;
use crate::cli::errors::CliError;
use crate::project::access;
use crate::project::files;

#[allow(clippy::print_stdout)]
pub fn reset(global: &GlobalArgs) -> Result<(), CliError> {
    let cwd = std::env::current_dir()?;
    // The project dir, as `run` finds it: sandbox.toml's, else the current dir.
    let dir = match files::locate(&global.locations(), &cwd)? {
        Some(file) => file.parent().map_or_else(|| cwd.clone(), |d| d.to_owned()),
        None => cwd.clone(),
    };
    let containers = global.locations().store_root()?.join("containers");
    if let Some(running) = crate::runtime::state::running(&containers)
        .into_iter()
        .find(|c| c.project_dir == dir)
    {
        return Err(CliError::Usage {
            message: format!(
                "the sandbox of {} is running ({}); its home is in use",
                dir.display(),
                running.id
            ),
            hint: Some(format!("end it first (`sandbox stop {}`)", running.id)),
        });
    }
    // In the store's user namespace: files container root made there are then ours to remove.
    let progress = crate::cli::progress::Progress::new(global.quiet);
    let (store, _) = access::open_store_in_namespace(&global.locations(), &progress)?;
    let emptied = store.reset_home(&dir)?;
    println!(
        "{} the home of {}",
        if emptied { "emptied" } else { "nothing in" },
        dir.display()
    );
    Ok(())
}
