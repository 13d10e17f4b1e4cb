//! A project's prepared image (`parts`) pushed to a registry: blobs the registry has are
//! skipped, the base image's are mounted from its repository when it is on the same registry,
//! the rest uploaded; the manifest goes last.

use crate::image::archive::export::{self, SetupLayer};
use crate::image::blob_stream::BlobStream;
use crate::image::error::ImageError;
use crate::image::registry::client::{Connection, RegistryClient};
use crate::image::registry::credentials::CredentialFiles;
use crate::image::store::Store;
use crate::image::{Digest, Reference};
use crate::project::access;
use crate::project::error::ProjectError;
use crate::project::mobility::parts::ProjectParts;
use crate::project::reporter::ProjectReporter;

/// A reference to push to: a tag, not a digest.
pub fn target(text: &str) -> Result<Reference, ProjectError> {
    let target = Reference::parse(text)?;
    if target.digest().is_some() {
        return Err(ProjectError::refused(
            format!("{target} names a digest; push to a tag"),
            "e.g. registry.example/team/app:dev",
        ));
    }
    Ok(target)
}

/// Counts of what a push did.
#[derive(Default)]
struct Tally {
    uploaded: usize,
    skipped: usize,
}

/// Pushes the project's prepared image to `target`: its manifest digest, blobs uploaded and
/// skipped. A setup layer whose blob was never made is uploaded while it is compressed; the
/// manifest, made once every blob is, goes last.
pub fn push(
    project: &ProjectParts,
    target: &Reference,
    progress: &dyn ProjectReporter,
) -> Result<(crate::image::Digest, usize, usize), ProjectError> {
    let store = &project.store;
    let registries = access::user_config(progress)?.registries;
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
    let mut tally = Tally::default();
    for blob in export::base_layers(store, &project.base)? {
        push_blob(
            &client,
            store,
            &blob,
            mount_from.as_deref(),
            progress,
            &mut tally,
        )?;
    }
    for layer in &project.setup {
        let known = export::setup_blob_record(layer, project.epoch, project.compression)?;
        match known {
            // Made before: skipped when the registry has it, else sent from the store.
            Some((blob, _)) if store.blob_path(&blob.digest).is_file() => {
                push_blob(&client, store, &blob, None, progress, &mut tally)?;
            }
            Some((blob, _)) if client.blob_exists(&blob.digest)? => {
                let id = progress.layer_started(&blob.digest, blob.size);
                progress.layer_finished(id, true);
                tally.skipped += 1;
            }
            // Never made, or not kept: made again while it is uploaded.
            _ => {
                push_stream(&client, project, layer, progress)?;
                tally.uploaded += 1;
            }
        }
    }
    // Every setup blob is made now: this only writes the config and manifest.
    let prepared = export::prepare(store, &project.inputs(), export::Need::Descriptions)?;
    push_blob(&client, store, &prepared.config, None, progress, &mut tally)?;
    let manifest = store.read_blob(&prepared.manifest.digest)?;
    let tag = target.manifest_selector();
    let digest = client.put_manifest(&tag, &manifest, &prepared.manifest.media_type)?;
    Ok((digest, tally.uploaded, tally.skipped))
}

/// A blob in the store: skipped when the registry has it, mounted when its repository
/// `mount_from` has it, else uploaded.
fn push_blob(
    client: &RegistryClient,
    store: &Store,
    blob: &crate::image::blob_stream::Blob,
    mount_from: Option<&str>,
    progress: &dyn ProjectReporter,
    tally: &mut Tally,
) -> Result<(), ProjectError> {
    let id = progress.layer_started(&blob.digest, blob.size);
    let there = client.blob_exists(&blob.digest)?
        || match mount_from {
            Some(from) => client.mount_blob(&blob.digest, from)?,
            None => false,
        };
    if there {
        tally.skipped += 1;
    } else {
        client.upload_blob(
            &blob.digest,
            blob.size,
            &store.blob_path(&blob.digest),
            &|n| progress.layer_progress(id, n),
        )?;
        tally.uploaded += 1;
    }
    progress.layer_finished(id, there);
    Ok(())
}

/// Makes a setup layer's blob on one thread while this one uploads it as it comes; the
/// store keeps its description, not the blob (`export` makes it again when it needs it).
fn push_stream(
    client: &RegistryClient,
    project: &ProjectParts,
    layer: &SetupLayer,
    progress: &dyn ProjectReporter,
) -> Result<(), ProjectError> {
    // The bar is named by the setup step's key: the blob's digest is known at its end.
    let label = layer
        .entry
        .file_name()
        .and_then(|n| Digest::parse(&format!("sha256:{}", n.to_string_lossy())).ok())
        .unwrap_or_else(|| Digest::of_bytes(layer.step.as_bytes()));
    let id = progress.layer_started(&label, 0);
    let stream = BlobStream::new(crate::image::registry::upload::stream_chunk_size());
    let sent_so_far = std::cell::Cell::new(0);
    let (made, sent) = std::thread::scope(|scope| {
        let maker = scope.spawn(|| {
            export::make_setup_blob(
                &project.store,
                layer,
                project.epoch,
                project.compression,
                export::BlobSink::Stream(&stream),
            )
        });
        let sent = client.upload_stream(&stream, &|n| {
            sent_so_far.set(sent_so_far.get() + n);
            progress.layer_length(id, sent_so_far.get());
            progress.layer_progress(id, n);
        });
        // A failed upload stops the maker at its next write.
        if sent.is_err() {
            stream.abandon();
        }
        (maker.join(), sent)
    });
    let made = made.map_err(|_| ProjectError::Internal {
        what: "compressing a setup layer".into(),
        source: "its thread panicked".into(),
    })?;
    // The upload's failure, unless the maker's came first (a disk error reading the layer).
    match (made, sent) {
        (Err(e), Err(ImageError::Internal(_))) => return Err(e.into()),
        (_, Err(e)) => return Err(e.into()),
        (Err(e), Ok(_)) => return Err(e.into()),
        (Ok(_), Ok(_)) => {}
    }
    progress.layer_finished(id, false);
    Ok(())
}
