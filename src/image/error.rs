//! The image layer's one error type. Messages name the reference, registry, blob or path they
//! concern; `hint()` says what the user can do about it, and the CLI prints it as `hint: ...`.

use std::path::PathBuf;

use crate::image::digest::Digest;
use crate::image::reference::ReferenceError;

/// Which step of reaching a registry failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetStage {
    Dns,
    Connect,
    Tls,
    Timeout,
    Transfer,
}

impl std::fmt::Display for NetStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NetStage::Dns => "DNS lookup",
            NetStage::Connect => "connection",
            NetStage::Tls => "TLS handshake",
            NetStage::Timeout => "request (timed out)",
            NetStage::Transfer => "transfer",
        })
    }
}

type Source = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),

    #[error("image {reference} not found on registry {registry}: {answer}")]
    NotFound {
        reference: String,
        registry: String,
        answer: String,
    },

    /// `reference` is empty for `sandbox login`, which asks for no repository.
    #[error("registry {registry} {}: {answer}", if reference.is_empty() { "refused the credentials".to_owned() } else { format!("denied access to {reference}") })]
    Denied {
        reference: String,
        registry: String,
        answer: String,
        had_credentials: bool,
    },

    #[error("cannot reach registry {host}: {stage} failed")]
    Unreachable {
        host: String,
        stage: NetStage,
        #[source]
        source: Source,
    },

    #[error("registry {host} answered `{status}` for {url}: {answer}")]
    HttpStatus {
        host: String,
        status: u16,
        url: String,
        answer: String,
    },

    #[error("registry {host} sent a bad answer for {url}: {source}")]
    Protocol {
        host: String,
        url: String,
        #[source]
        source: Source,
    },

    #[error("{what} {expected} from {host} does not match its digest (got {actual}); nothing of it was kept")]
    DigestMismatch {
        what: &'static str,
        expected: Digest,
        actual: Digest,
        host: String,
    },

    #[error("{what} {digest} from {host} has {actual} bytes, but its descriptor says {expected}")]
    SizeMismatch {
        what: &'static str,
        digest: Digest,
        expected: u64,
        actual: u64,
        host: String,
    },

    #[error(
        "blob {digest} from {host}: the registry stalled, sending nothing for {idle_secs} s after {received} of {expected} bytes, also when asked again"
    )]
    Stalled {
        digest: Digest,
        host: String,
        received: u64,
        expected: u64,
        idle_secs: u64,
    },

    #[error(
        "blob {digest} from {host}: the connection broke after {received} of {expected} bytes"
    )]
    Truncated {
        digest: Digest,
        host: String,
        received: u64,
        expected: u64,
        #[source]
        source: Option<Source>,
    },

    #[error("layer {layer}: its uncompressed content has diff_id {actual}, but the image config says {expected}")]
    DiffIdMismatch {
        layer: Digest,
        expected: Digest,
        actual: Digest,
    },

    #[error("{what} from {host} is larger than the {limit}-byte limit")]
    TooLarge {
        what: String,
        host: String,
        limit: u64,
    },

    #[error("unsupported media type `{media_type}` for {what}")]
    UnsupportedMediaType { media_type: String, what: String },

    #[error("{reference} is a Docker schema 1 manifest, which sandbox does not support")]
    Schema1 { reference: String },

    #[error("{reference} has no image for {wanted}; it offers: {offered}")]
    NoMatchingPlatform {
        reference: String,
        wanted: String,
        offered: String,
    },

    #[error("invalid {what} for {reference}: {source}")]
    BadManifest {
        what: &'static str,
        reference: String,
        #[source]
        source: Source,
    },

    #[error("layer {layer}: entry `{entry}`: {reason}")]
    BadLayerEntry {
        layer: Digest,
        entry: String,
        reason: String,
    },

    #[error("layer {layer} is corrupt: {reason}")]
    CorruptLayer {
        layer: Digest,
        reason: String,
        #[source]
        source: Option<std::io::Error>,
    },

    #[error("layer {layer}: entry `{entry}` is owned by id {id}, outside the ids this user can map ({mapped})")]
    UnmappedOwner {
        layer: Digest,
        entry: String,
        id: u64,
        mapped: String,
    },

    #[error("layer {layer} unpacks to more than {} of file data, far more than its size suggests", crate::settings::limits::human_size(*limit))]
    LayerTooLarge { layer: Digest, limit: u64 },

    #[error("no space left on device while writing to the store at {store}")]
    NoSpace {
        store: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("the credentials file {path} cannot be read: {source}")]
    BadCredentialsFile {
        path: PathBuf,
        #[source]
        source: Source,
    },

    #[error("image {reference} is not in the store")]
    NotInStore { reference: String },

    #[error("loading would replace {reference} (now {old}), which the sandbox.lock of {} pins", projects.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    ReplacesPinned {
        reference: String,
        old: Digest,
        projects: Vec<PathBuf>,
    },

    #[error("image {reference} is the base of the setup steps of {}: removing it removes their setup layers", projects.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    InUse {
        reference: String,
        projects: Vec<PathBuf>,
    },

    #[error("the store at {store} was unpacked with a different id mapping ({recorded}); this user now maps {current}")]
    IdMappingChanged {
        store: PathBuf,
        recorded: String,
        current: String,
    },

    #[error("the store record {path} is damaged: {source}")]
    DamagedRecord {
        path: PathBuf,
        #[source]
        source: Source,
    },

    #[error("cannot build the HTTP client for {host}")]
    Client {
        host: String,
        #[source]
        source: Source,
    },

    #[error("bad CA certificate {path}: {source}")]
    BadCertificate {
        path: PathBuf,
        #[source]
        source: Source,
    },

    #[error("there is no place for {what}: HOME is not set")]
    NoHome { what: &'static str },

    #[error("internal error: cannot encode {what}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },

    #[error("the compressed layer {digest} of {reference} is not kept in the store (it was pulled by an older sandbox, or pruned)")]
    BlobNotKept { reference: String, digest: Digest },

    #[error("cannot copy {} from the project into the setup layer", from.display())]
    CopyStep {
        from: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{0}")]
    Internal(String),

    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl ImageError {
    /// What the user can do next, when we know.
    pub fn hint(&self) -> Option<String> {
        match self {
            ImageError::BlobNotKept { reference, .. } => Some(format!(
                "pull it again (`sandbox rmi {reference}` and `sandbox pull {reference}`): layers are kept as they came since this version"
            )),
            ImageError::NoHome { .. } => {
                Some("set HOME (or XDG_CONFIG_HOME) to an absolute path".into())
            }
            ImageError::Denied {
                registry,
                reference,
                had_credentials,
                ..
            } => Some(if reference.is_empty() {
                "check the user name and password (some registries want an access token instead of the password)".to_owned()
            } else if *had_credentials {
                format!("your stored login for {registry} was refused: log in again with `sandbox login {registry}` (it replaces it), or `sandbox logout {registry}` to pull anonymously")
            } else {
                format!("log in first: `sandbox login {registry}`")
            }),
            ImageError::NotFound { .. } => {
                Some("check the repository name and tag; `busybox` means `docker.io/library/busybox:latest`".into())
            }
            ImageError::Unreachable { stage: NetStage::Tls, host, .. } => Some(format!(
                "if {host} uses a private CA, put it at {config}/containers/certs.d/{host}/ca.crt; if it is plain HTTP, mark it `insecure = true` under [[registry]] in {config}/sandbox/config.toml",
                config = crate::fsutil::shown::config_dir()
            )),
            ImageError::Unreachable { stage: NetStage::Dns, .. } => {
                Some(format!("check the host name and this machine's DNS; a mirror can be set in {}/sandbox/config.toml", crate::fsutil::shown::config_dir()))
            }
            ImageError::Unreachable { .. } => {
                Some("check that the registry is up and reachable from this machine".into())
            }
            ImageError::Schema1 { .. } => {
                Some("rebuild or re-push the image with a current tool (docker, podman, skopeo)".into())
            }
            ImageError::LayerTooLarge { .. } => Some(format!(
                "a layer this compressible is unusual (a zip bomb looks like this); if you trust the image, raise the limit with {}=N (the most file data per byte of layer, {} by default)",
                crate::image::unpack::ratio::RATIO_VARIABLE,
                crate::image::unpack::ratio::DEFAULT_RATIO
            )),
            ImageError::NoSpace { store, .. } => Some(format!(
                "free space on the file system holding {}, or run `sandbox prune`",
                store.display()
            )),
            ImageError::UnmappedOwner { .. } => Some(
                "give this user a larger subordinate range in /etc/subuid and /etc/subgid (e.g. `sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $USER`)".into(),
            ),
            ImageError::IdMappingChanged { store, .. } => Some(format!(
                "restore the previous /etc/subuid range, or move {} aside and pull again",
                store.display()
            )),
            ImageError::DamagedRecord { .. } => {
                Some("remove the image with `sandbox rmi` and pull it again".into())
            }
            ImageError::NotInStore { .. } => Some("`sandbox images` lists what is stored".into()),
            ImageError::ReplacesPinned { .. } => Some(
                "load it under another name with `--name`, or replace it all the same with `sandbox load --force`".into(),
            ),
            ImageError::InUse { reference, .. } => Some(format!(
                "`sandbox rmi --force {reference}` removes it all the same; those projects then pull it and run their setup steps again"
            )),
            _ => None,
        }
    }
}
