//! Set-up shared by the commands: the user config, and the store opened inside the user
//! namespace its layers belong to.

use std::path::PathBuf;

use crate::cli::args::GlobalArgs;
use crate::cli::errors::CliError;
use crate::cli::progress::Progress;
use crate::config::user::{self, UserConfig};
use crate::image::reporter::PullReporter as _;
use crate::image::store::Store;
use crate::image::unpack::Ownership;
use crate::runtime::identity::userns;
use crate::runtime::IdMapping;

/// Where the store lives: --root, $SANDBOX_ROOT, else $XDG_DATA_HOME/sandbox (never a
/// directory relative to wherever the command happens to run).
pub fn store_root(global: &GlobalArgs) -> Result<PathBuf, CliError> {
    if let Some(root) = &global.root {
        return Ok(root.clone());
    }
    dirs::data_dir()
        .map(|d| d.join("sandbox"))
        .ok_or_else(|| CliError::NoHome {
            what: "the image store",
            variable: "SANDBOX_ROOT or XDG_DATA_HOME",
        })
}

/// The store opened without entering a namespace, for read-only commands.
pub fn open_store(global: &GlobalArgs) -> Result<Store, CliError> {
    Ok(Store::open(&store_root(global)?)?)
}

/// The store opened inside its user namespace, for commands that write or remove layers.
/// Must be called before any thread starts.
pub fn open_store_in_namespace(
    global: &GlobalArgs,
    progress: &Progress,
) -> Result<(Store, Ownership), CliError> {
    let mapping = IdMapping::for_current_user("/etc/subuid".as_ref(), "/etc/subgid".as_ref())?;
    let root = store_root(global)?;
    let pause_file = root.join("pause.pid");
    // The store dir must exist for the pause file; Store::open below makes the rest.
    let _ = fs_err::create_dir_all(&root);
    userns::enter(&mapping, Some(&pause_file))?;
    let store = Store::open(&root)?;
    let fingerprint = serde_json::to_string(&mapping).map_err(|e| CliError::Internal {
        what: "the id mapping's fingerprint".into(),
        source: Box::new(e),
    })?;
    let first_time = store.check_id_mapping(&fingerprint, &mapping.to_string())?;
    if first_time {
        if let IdMapping::Single { uid, .. } = mapping {
            progress.notice(&format!(
                "uid {uid} has no subordinate ids in /etc/subuid and /etc/subgid, so every file in an image will belong to you; \
                 add a range with `sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $USER` for images that use several users"
            ));
        }
    }
    let ownership = match &mapping {
        IdMapping::Single { .. } => Ownership::Squash,
        other => {
            let (uids, gids) = other.inside_ranges();
            Ownership::Preserve { uids, gids }
        }
    };
    Ok((store, ownership))
}

/// The user config, with warnings about skipped containers' files shown as notices.
pub fn user_config(progress: &Progress) -> Result<UserConfig, CliError> {
    let config = user::load()?;
    for warning in &config.warnings {
        progress.notice(warning);
    }
    Ok(config)
}

/// Pulls `reference` into `store` with the user's registries and credentials (the store must
/// have been opened inside its namespace).
pub fn pull(
    store: &Store,
    ownership: Ownership,
    reference: &crate::image::Reference,
    progress: &Progress,
) -> Result<crate::image::store::images::ImageRecord, CliError> {
    pull_as(store, ownership, reference, reference, progress)
}

/// Pulls `reference` and records it as `record_as` (a locked digest under its tag).
pub fn pull_as(
    store: &Store,
    ownership: Ownership,
    reference: &crate::image::Reference,
    record_as: &crate::image::Reference,
    progress: &Progress,
) -> Result<crate::image::store::images::ImageRecord, CliError> {
    let config = user_config(progress)?;
    let credentials = crate::image::registry::credentials::CredentialFiles::standard();
    let cx = crate::image::pull::PullContext {
        registries: &config.registries,
        credentials: &credentials,
        ownership,
        platform: crate::image::platform::Platform::host(),
        reporter: progress,
    };
    Ok(crate::image::pull::pull_as(
        store, reference, record_as, &cx,
    )?)
}
