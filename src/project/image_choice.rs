//! Which image a project's sandbox runs, and that image in the store: --image; else
//! sandbox.toml's, pinned by sandbox.lock when the lock matches; pulled when missing.

use crate::config::project::Project;
use crate::image::platform::Platform;
use crate::image::runnable::{self, Runnable};
use crate::image::unpack::Ownership;
use crate::image::Reference;
use crate::project::access;
use crate::project::error::ProjectError;
use crate::project::files::{self, LockState};
use crate::project::reporter::ProjectReporter;

/// The image to run, and how it is named.
pub struct ChosenImage {
    /// What is pulled: the digest sandbox.lock pins, else the reference itself.
    pub reference: Reference,
    /// For a locked project, the tag the lock came from: the image is stored under it.
    pub tag: Option<Reference>,
    /// The prepared sandbox the lock pins (`sandbox lock --push`), by digest.
    pub prepared: Option<Reference>,
}

impl ChosenImage {
    /// How `ps` names it: a locked project's tag with a short digest, not a second
    /// `repo@sha256:...`.
    pub fn shown(&self) -> String {
        match (&self.tag, self.reference.digest()) {
            (Some(tag), Some(digest)) => format!("{tag} ({})", digest.short()),
            _ => self.reference.to_string(),
        }
    }
}

/// The image to run: --image; else sandbox.toml's, pinned by sandbox.lock when it matches.
pub fn image_reference(
    image_flag: Option<&str>,
    locked_flag: bool,
    config: Option<&Project>,
    progress: &dyn ProjectReporter,
) -> Result<ChosenImage, ProjectError> {
    let Some(config) = config else {
        let text = image_flag.unwrap_or_default();
        return Ok(ChosenImage {
            reference: Reference::parse(text)?,
            tag: None,
            prepared: None,
        });
    };
    let locked = if locked_flag {
        Some(files::require_current_lock(config)?)
    } else {
        match files::lock_state(config)? {
            LockState::Current(lock) => Some(*lock),
            LockState::Missing => None,
            LockState::Drifted(_) => {
                progress.notice("sandbox.lock no longer matches sandbox.toml, so it is not used; `sandbox lock` records the change");
                None
            }
        }
    };
    let parse = |text: &str| {
        Reference::parse(text).map_err(|e| -> ProjectError {
            config
                .error_at(config.image.span.clone(), format!("`{text}`: {e}"), None)
                .into()
        })
    };
    Ok(match locked {
        Some(lock) => ChosenImage {
            reference: parse(&crate::config::lock::pinned_reference(
                &lock,
                &Platform::host().to_string(),
            ))?,
            tag: Some(parse(&lock.inputs.image)?).filter(|t| t.digest().is_none()),
            prepared: lock
                .resolved
                .prepared
                .as_deref()
                .map(Reference::parse)
                .transpose()?
                .filter(|p| p.digest().is_some()),
        },
        None => ChosenImage {
            reference: parse(&config.image.value)?,
            tag: None,
            prepared: None,
        },
    })
}

/// The stored image, pulled first when missing or incomplete. A digest already stored under
/// its tag (`sandbox lock` pulled it) is used as it is, without asking the registry.
pub fn prepare_image(
    store: &crate::image::store::Store,
    ownership: Ownership,
    chosen: &ChosenImage,
    progress: &dyn ProjectReporter,
) -> Result<Runnable, ProjectError> {
    let reference = &chosen.reference;
    if let Some(record) = store.image(&reference.to_string())? {
        if let Some(runnable) = runnable::load(store, &record)? {
            return Ok(runnable);
        }
    }
    if let Some(digest) = reference.digest() {
        let platform = Platform::host().to_string();
        for record in store.images()? {
            let same = record.manifest_digest == *digest
                || (record.resolved_digest == *digest && record.platform == platform);
            let name = reference.name();
            let same_repository = record
                .reference
                .strip_prefix(&name)
                .is_some_and(|rest| rest.starts_with([':', '@']));
            if same && same_repository {
                if let Some(runnable) = runnable::load(store, &record)? {
                    return Ok(runnable);
                }
            }
        }
    }
    // A locked project's digest is stored under its tag (one entry in `images`, not two).
    let record = access::pull_as(
        store,
        ownership,
        reference,
        chosen.tag.as_ref().unwrap_or(reference),
        progress,
    )?;
    runnable::load(store, &record)?.ok_or_else(|| ProjectError::Refused {
        message: format!("{reference} lost a layer while it was being pulled"),
        hint: Some("run the command again".into()),
    })
}
