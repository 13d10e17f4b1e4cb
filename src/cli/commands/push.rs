//! `sandbox push REF`: the prepared sandbox (see `export`) to a registry. Blobs the registry
//! has are skipped, the base image's are mounted from its repository when it is on the same
//! registry, the rest uploaded; the manifest goes last. Prints the pushed digest.

use crate::cli::args::{GlobalArgs, PushArgs};
use crate::cli::errors::CliError;
use crate::cli::progress::Progress;
use crate::cli::session;
use crate::image::registry::client::{Connection, RegistryClient};
use crate::image::registry::credentials::CredentialFiles;
use crate::image::reporter::PullReporter as _;
use crate::image::Reference;

#[allow(clippy::print_stdout)]
pub fn run(global: &GlobalArgs, args: &PushArgs) -> Result<(), CliError> {
    let progress = Progress::new(global.quiet).verbose(global.verbose);
    let target = push_target(&args.reference)?;
    let project = super::export::prepare_project(global, args.locked, args.compression, &progress)?;
    let (digest, uploaded, skipped) = push(&project, &target, &progress)?;
    println!("pushed {target}@{digest} ({uploaded} blobs uploaded, {skipped} already there)");
    Ok(())
}

/// A reference to push to: a tag, not a digest.
pub fn push_target(text: &str) -> Result<Reference, CliError> {
    let target = Reference::parse(text)?;
    if target.digest().is_some() {
        return Err(CliError::Usage {
            message: format!("{target} names a digest; push to a tag"),
            hint: Some("e.g. registry.example/team/app:dev".into()),
        });
    }
    Ok(target)
}

/// Pushes the prepared project to `target`: its manifest digest, blobs uploaded and skipped.
pub fn push(
    project: &super::export::PreparedProject,
    target: &Reference,
    progress: &Progress,
) -> Result<(crate::image::Digest, usize, usize), CliError> {
    let store = &project.store;
    let prepared = &project.prepared;
    let registries = session::user_config(progress)?.registries;
    let credential = CredentialFiles::standard().lookup(target.registry())?;
    let client = RegistryClient::connect(&Connection {
        registry: target.registry().to_owned(),
        repository: target.repository().to_owned(),
        insecure: registries.is_insecure(target.registry()),
        credential,
        push: true,
    })?;
    // The base image's own repository, when it is on this registry: its blobs mount from it.
    let base = Reference::parse(&project.base.reference).ok();
    let mount_from = base
        .filter(|b| b.registry() == target.registry() && b.repository() != target.repository())
        .map(|b| b.repository().to_owned());
    let mut uploaded = 0;
    let mut skipped = 0;
    let mut blobs: Vec<&crate::image::export::Blob> = prepared.layers.iter().collect();
    blobs.push(&prepared.config);
    for blob in blobs {
        let id = progress.layer_started(&blob.digest, blob.size);
        if client.blob_exists(&blob.digest)? {
            skipped += 1;
            progress.layer_finished(id, true);
            continue;
        }
        if let Some(from) = &mount_from {
            if client.mount_blob(&blob.digest, from)? {
                skipped += 1;
                progress.layer_finished(id, true);
                continue;
            }
        }
        client.upload_blob(
            &blob.digest,
            blob.size,
            &store.blob_path(&blob.digest),
            &|n| progress.layer_progress(id, n),
        )?;
        uploaded += 1;
        progress.layer_finished(id, false);
    }
    let manifest = store.read_blob(&prepared.manifest.digest)?;
    let tag = target.manifest_selector();
    let digest = client.put_manifest(&tag, &manifest, &prepared.manifest.media_type)?;
    Ok((digest, uploaded, skipped))
}
