//! Manifests, indexes and image configs: the few fields we use, parsed from exactly the bytes
//! that were hashed (CVE-2014-8179), with ambiguous documents refused (CVE-2021-41190).

use serde::Deserialize;

use crate::image::digest::Digest;
use crate::image::error::ImageError;
use crate::image::platform::Platform;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_SCHEMA1: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Maps a layer media type to its compression; `None` for types we do not unpack.
pub fn layer_compression(media_type: &str) -> Option<Compression> {
    match media_type {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar" => Some(Compression::None),
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Some(Compression::Gzip),
        "application/vnd.oci.image.layer.v1.tar+zstd"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Some(Compression::Zstd),
        _ => None,
    }
}

/// A content descriptor. `urls` (foreign layers) is deliberately not read: blobs only ever come
/// from the registry itself, so credentials never go to a URL an image names (CVE-2020-15157).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
}

/// A manifest as fetched: either a list of per-platform manifests or one image.
#[derive(Debug)]
pub enum Manifest {
    Index(Vec<Descriptor>),
    Image(ImageManifest),
}

#[derive(Clone, Debug, Deserialize)]
pub struct ImageManifest {
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<u32>,
    media_type: Option<String>,
    manifests: Option<Vec<Descriptor>>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
}

/// Parses a manifest or index, checking its type against the Content-Type it was served with.
pub fn parse_manifest(
    bytes: &[u8],
    content_type: &str,
    reference: &str,
) -> Result<Manifest, ImageError> {
    let bad = |reason: String| ImageError::BadManifest {
        what: "manifest",
        reference: reference.to_owned(),
        source: reason.into(),
    };
    if DOCKER_SCHEMA1.contains(&content_type) {
        return Err(ImageError::Schema1 {
            reference: reference.to_owned(),
        });
    }
    let raw: RawManifest =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("not a valid manifest: {e}")))?;
    if raw.schema_version == Some(1) {
        return Err(ImageError::Schema1 {
            reference: reference.to_owned(),
        });
    }
    if raw.schema_version != Some(2) {
        return Err(bad(format!(
            "schemaVersion is {:?}, expected 2",
            raw.schema_version
        )));
    }
    let known = [OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];
    if let Some(declared) = &raw.media_type {
        if known.contains(&content_type) && declared != content_type {
            return Err(bad(format!(
                "its mediaType `{declared}` differs from the Content-Type `{content_type}` it was served with"
            )));
        }
    }
    let media_type = raw.media_type.as_deref().unwrap_or(content_type);
    let is_index = raw.manifests.is_some();
    if is_index && (raw.config.is_some() || raw.layers.is_some()) {
        return Err(bad(
            "ambiguous manifest: it has both `manifests` and `config`/`layers`".into(),
        ));
    }
    if is_index {
        if ![OCI_INDEX, DOCKER_LIST, ""].contains(&media_type) {
            return Err(ImageError::UnsupportedMediaType {
                media_type: media_type.to_owned(),
                what: format!("the index of {reference}"),
            });
        }
        return Ok(Manifest::Index(raw.manifests.unwrap_or_default()));
    }
    if ![OCI_MANIFEST, DOCKER_MANIFEST, ""].contains(&media_type) {
        return Err(ImageError::UnsupportedMediaType {
            media_type: media_type.to_owned(),
            what: format!("the manifest of {reference}"),
        });
    }
    let (Some(config), Some(layers)) = (raw.config, raw.layers) else {
        return Err(bad("an image manifest needs `config` and `layers`".into()));
    };
    Ok(Manifest::Image(ImageManifest { config, layers }))
}

/// The parts of an image config we use now; the runtime reads the rest later from the blob.
#[derive(Clone, Debug, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    /// What the image asks containers to start with; only `Env` is used.
    #[serde(default)]
    pub config: Option<ContainerConfig>,
    #[serde(default)]
    pub os: String,
    pub rootfs: RootFs,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ContainerConfig {
    #[serde(rename = "Env", default)]
    pub env: Option<Vec<String>>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
}

/// Parses an image config and checks it describes as many layers as the manifest has.
pub fn parse_config(
    bytes: &[u8],
    layers: usize,
    reference: &str,
) -> Result<ImageConfig, ImageError> {
    let bad = |reason: String| ImageError::BadManifest {
        what: "image config",
        reference: reference.to_owned(),
        source: reason.into(),
    };
    let config: ImageConfig = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if config.rootfs.kind != "layers" {
        return Err(bad(format!(
            "rootfs.type is `{}`, expected `layers`",
            config.rootfs.kind
        )));
    }
    if config.rootfs.diff_ids.len() != layers {
        return Err(bad(format!(
            "it lists {} diff_ids for {layers} layers",
            config.rootfs.diff_ids.len()
        )));
    }
    Ok(config)
}

/// Picks the entry for `wanted`; the error lists what the index offers.
pub fn select_platform<'a>(
    entries: &'a [Descriptor],
    wanted: &Platform,
    reference: &str,
) -> Result<&'a Descriptor, ImageError> {
    entries
        .iter()
        .find(|d| d.platform.as_ref().is_some_and(|p| wanted.accepts(p)))
        .ok_or_else(|| {
            let offered: Vec<String> = entries
                .iter()
                .filter_map(|d| d.platform.as_ref().map(ToString::to_string))
                .collect();
            ImageError::NoMatchingPlatform {
                reference: reference.to_owned(),
                wanted: wanted.to_string(),
                offered: if offered.is_empty() {
                    "nothing".into()
                } else {
                    offered.join(", ")
                },
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn refuses_ambiguous_and_mislabelled_documents() {
        let both = format!(
            r#"{{"schemaVersion":2,"manifests":[],"config":{{"digest":"{D}","size":1}},"layers":[]}}"#
        );
        assert!(parse_manifest(both.as_bytes(), OCI_INDEX, "r").is_err());
        let mislabelled = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","config":{{"digest":"{D}","size":1}},"layers":[]}}"#
        );
        assert!(parse_manifest(mislabelled.as_bytes(), OCI_MANIFEST, "r").is_err());
    }

    #[test]
    fn refuses_schema1_by_name() {
        let err = parse_manifest(br#"{"schemaVersion":1}"#, "application/json", "r").unwrap_err();
        assert!(matches!(err, ImageError::Schema1 { .. }));
    }

    #[test]
    fn reads_an_image_manifest() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"x","digest":"{D}","size":1}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{D}","size":3,"urls":["http://evil"]}}]}}"#
        );
        let Manifest::Image(image) = parse_manifest(m.as_bytes(), DOCKER_MANIFEST, "r").unwrap()
        else {
            panic!("not an image")
        };
        assert_eq!(image.layers.len(), 1);
        assert_eq!(
            layer_compression(&image.layers[0].media_type),
            Some(Compression::Gzip)
        );
    }
}
