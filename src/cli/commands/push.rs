//! `sandbox push REF`: the prepared sandbox (see `export`) to a registry. Blobs the registry
//! has are skipped, the base image's are mounted from its repository when it is on the same
//! registry, the rest uploaded; the manifest goes last. Prints the pushed digest.

use crate::cli::args::{GlobalArgs, PushArgs};
use crate::cli::errors::CliError;
use crate::cli::progress::Progress;
use crate::cli::session;
use crate::image::blob_stream::BlobStream;
use crate::image::error::ImageError;
use crate::image::export::{self, SetupLayer};
use crate::image::registry::client::{Connection, RegistryClient};
use crate::image::registry::credentials::CredentialFiles;
use crate::image::reporter::PullReporter as _;
use crate::image::store::Store;
use crate::image::{Digest, Reference};

#[allow(clippy::print_stdout)]
pub fn run(global: &GlobalArgs, args: &PushArgs) -> Result<(), CliError> {
    let progress = Progress::new(global.quiet).verbose(global.verbose);
    let target = push_target(&args.reference)?;
    let project = crate::cli::commands::export::project_parts(
        global,
        args.locked,
        args.compression,
        &progress,
    )?;
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
    project: &crate::cli::commands::export::ProjectParts,
    target: &Reference,
    progress: &Progress,
) -> Result<(crate::image::Digest, usize, usize), CliError> {
    let store = &project.store;
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
    progress: &Progress,
    tally: &mut Tally,
) -> Result<(), CliError> {
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
    project: &crate::cli::commands::export::ProjectParts,
    layer: &SetupLayer,
    progress: &Progress,
) -> Result<(), CliError> {
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
    let made = made.map_err(|_| CliError::Internal {
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
