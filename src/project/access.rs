//! The store and the user config, as every command opens them: the user config, and the store opened inside the user
//! namespace its layers belong to.

use crate::config::user::{self, UserConfig};
use crate::image::store::Store;
use crate::image::unpack::Ownership;
use crate::project::error::ProjectError;
use crate::project::locations::Locations;
use crate::project::reporter::ProjectReporter;
use crate::runtime::identity::userns;
use crate::runtime::IdMapping;

/// The store opened without entering a namespace, for read-only commands.
pub fn open_store(locations: &Locations) -> Result<Store, ProjectError> {
    Ok(Store::open(&locations.store_root()?)?)
}

/// The store opened inside its user namespace, for commands that write or remove layers.
/// Must be called before any thread starts.
pub fn open_store_in_namespace(
    locations: &Locations,
    progress: &dyn ProjectReporter,
) -> Result<(Store, Ownership), ProjectError> {
    let mapping = IdMapping::for_current_user("/etc/subuid".as_ref(), "/etc/subgid".as_ref())?;
    let root = locations.store_root()?;
    let pause_file = root.join("pause.pid");
    // The store dir must exist for the pause file; Store::open below makes the rest.
    let _ = fs_err::create_dir_all(&root);
    userns::enter(&mapping, Some(&pause_file))?;
    let store = Store::open(&root)?;
    let fingerprint = serde_json::to_string(&mapping).map_err(|e| ProjectError::Internal {
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
pub fn user_config(progress: &dyn ProjectReporter) -> Result<UserConfig, ProjectError> {
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
    progress: &dyn ProjectReporter,
) -> Result<crate::image::store::images::ImageRecord, ProjectError> {
    pull_as(store, ownership, reference, reference, progress)
}

/// Pulls `reference` and records it as `record_as` (a locked digest under its tag).
pub fn pull_as(
    store: &Store,
    ownership: Ownership,
    reference: &crate::image::Reference,
    record_as: &crate::image::Reference,
    progress: &dyn ProjectReporter,
) -> Result<crate::image::store::images::ImageRecord, ProjectError> {
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
