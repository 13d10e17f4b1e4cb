//! Pushing to a registry (the OCI distribution spec): `HEAD` to skip blobs the registry has, a
//! cross-repository mount when it has them elsewhere, one `PUT` for a small blob and `PATCH`
//! chunks for a large one (a broken chunk resumes from what the registry says it has), then
//! the manifest. The manifest goes last: a registry never names an image whose blobs it lacks.

use std::io::{Read as _, Seek as _};
use std::path::Path;

use reqwest::blocking::{Body, Response};
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode, Url};

use super::client::{net_error, same_origin, RegistryClient};
use crate::image::digest::Digest;
use crate::image::error::{ImageError, NetStage};

/// Blobs up to this size go in one request; larger ones in chunks of it.
pub const CHUNK: u64 = 64 << 20;

/// The chunk size: `SANDBOX_PUSH_CHUNK_MB` (for a registry or proxy that limits request sizes),
/// else `CHUNK`.
pub fn chunk_size() -> u64 {
    std::env::var("SANDBOX_PUSH_CHUNK_MB")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|mb| *mb > 0)
        .map_or(CHUNK, |mb| mb << 20)
}
/// How many failed chunks are resumed before giving up.
const ATTEMPTS: u32 = 5;

/// What a request carries: nothing, bytes, or a part of a file.
#[derive(Clone, Copy)]
enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
    File { path: &'a Path, from: u64, len: u64 },
}

impl Payload<'_> {
    fn body(&self) -> std::io::Result<(Body, u64)> {
        Ok(match *self {
            Payload::Empty => (Body::from(Vec::new()), 0),
            Payload::Bytes(bytes) => (Body::from(bytes.to_vec()), bytes.len() as u64),
            Payload::File { path, from, len } => {
                let mut file = fs_err::File::open(path)?.into_parts().0;
                file.seek(std::io::SeekFrom::Start(from))?;
                (Body::sized(file.take(len), len), len)
            }
        })
    }
}

impl RegistryClient {
    /// One request with auth (a 401 fetches a push-scoped token once) and retries of
    /// passing troubles (`with_retries`); redirects are not followed (upload answers use
    /// Location). The body is made anew for each attempt.
    fn send(
        &self,
        method: Method,
        url: &Url,
        content_type: Option<&str>,
        extra: Option<(reqwest::header::HeaderName, String)>,
        payload: Payload<'_>,
    ) -> Result<Response, ImageError> {
        let host = self.host();
        self.with_retries(|| {
            let (body, len) = payload.body().map_err(ImageError::Io)?;
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .header(CONTENT_LENGTH, len)
                .body(body);
            if let Some(t) = content_type {
                request = request.header(CONTENT_TYPE, t);
            }
            if let Some((name, value)) = &extra {
                request = request.header(name.clone(), value.clone());
            }
            if same_origin(url, &self.base) {
                if let Some(auth) = self.authorization() {
                    request = request.header(AUTHORIZATION, auth);
                }
            }
            request.send().map_err(|e| net_error(&host, e))
        })
    }

    fn repo_url(&self, rest: &str) -> Result<Url, ImageError> {
        self.url(&format!("v2/{}/{rest}", self.repository))
    }

    /// Where an upload goes next, from an answer's Location (relative or absolute).
    fn location(&self, response: &Response, at: &Url) -> Result<Url, ImageError> {
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ImageError::Protocol {
                host: self.host(),
                url: at.to_string(),
                reason: format!("{} without a Location for the upload", response.status()),
            })?;
        at.join(location).map_err(|e| ImageError::Protocol {
            host: self.host(),
            url: at.to_string(),
            reason: format!("bad upload location `{location}`: {e}"),
        })
    }

    /// Whether the registry has `digest` in this repository.
    pub fn blob_exists(&self, digest: &Digest) -> Result<bool, ImageError> {
        let url = self.repo_url(&format!("blobs/{digest}"))?;
        let response = self.send(Method::HEAD, &url, None, None, Payload::Empty)?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => self
                .check_status(response, &digest.to_string())
                .map(|_| false),
        }
    }

    /// Asks the registry to mount `digest` from its repository `from`; `true` when it did.
    pub fn mount_blob(&self, digest: &Digest, from: &str) -> Result<bool, ImageError> {
        let mut url = self.repo_url("blobs/uploads/")?;
        url.query_pairs_mut()
            .append_pair("mount", &digest.to_string())
            .append_pair("from", from);
        let response = self.send(Method::POST, &url, None, None, Payload::Empty)?;
        match response.status() {
            StatusCode::CREATED => Ok(true),
            // It started an ordinary upload instead; that session is left to expire.
            s if s.is_success() => Ok(false),
            _ => self
                .check_status(response, &digest.to_string())
                .map(|_| false),
        }
    }

    /// How much of the upload at `url` the registry has (its `Range: 0-N`).
    fn upload_offset(&self, url: &Url) -> Result<(u64, Url), ImageError> {
        let response = self.send(Method::GET, url, None, None, Payload::Empty)?;
        let response = self.check_status(response, url.as_str())?;
        let next = self
            .location(&response, url)
            .unwrap_or_else(|_| url.clone());
        let have = response
            .headers()
            .get("range")
            .and_then(|v| v.to_str().ok())
            .and_then(|r| r.rsplit('-').next())
            .and_then(|end| end.trim().parse::<u64>().ok())
            .map_or(0, |end| end + 1);
        Ok((have, next))
    }

    /// Uploads the blob in `path` (`size` bytes, digest `digest`): in one PUT when small, else
    /// in chunks, resuming from what the registry has when a chunk fails.
    pub fn upload_blob(
        &self,
        digest: &Digest,
        size: u64,
        path: &Path,
        progress: &dyn Fn(u64),
    ) -> Result<(), ImageError> {
        let start = self.repo_url("blobs/uploads/")?;
        let response = self.send(Method::POST, &start, None, None, Payload::Empty)?;
        let response = self.check_status(response, &digest.to_string())?;
        let mut url = self.location(&response, &start)?;
        let chunk = chunk_size();
        if size <= chunk {
            let mut put = url.clone();
            put.query_pairs_mut()
                .append_pair("digest", &digest.to_string());
            let response = self.send(
                Method::PUT,
                &put,
                Some("application/octet-stream"),
                None,
                Payload::File {
                    path,
                    from: 0,
                    len: size,
                },
            )?;
            self.check_status(response, &digest.to_string())?;
            progress(size);
            return Ok(());
        }
        let mut sent = 0;
        let mut failures = 0;
        while sent < size {
            let len = chunk.min(size - sent);
            let range = format!("{sent}-{}", sent + len - 1);
            let response = self.send(
                Method::PATCH,
                &url,
                Some("application/octet-stream"),
                Some((CONTENT_RANGE, range)),
                Payload::File {
                    path,
                    from: sent,
                    len,
                },
            );
            match response {
                Ok(r) if r.status() == StatusCode::ACCEPTED => {
                    url = self.location(&r, &url)?;
                    sent += len;
                    progress(len);
                }
                // A chunk the registry refused (416: not where it is) or that broke: ask how
                // much it has, and go on from there.
                other => {
                    failures += 1;
                    let refused = match other {
                        Ok(r) => self.check_status(r, &digest.to_string()).err(),
                        Err(e) => Some(e),
                    };
                    if failures > ATTEMPTS {
                        return Err(refused.unwrap_or_else(|| ImageError::Unreachable {
                            host: self.host(),
                            stage: NetStage::Transfer,
                            source: Box::new(std::io::Error::other("the upload kept failing")),
                        }));
                    }
                    let (have, next) = self.upload_offset(&url)?;
                    url = next;
                    sent = have.min(size);
                }
            }
        }
        let mut put = url.clone();
        put.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let response = self.send(Method::PUT, &put, None, None, Payload::Empty)?;
        self.check_status(response, &digest.to_string())?;
        Ok(())
    }

    /// Puts a manifest under `tag`; the registry's digest for it.
    pub fn put_manifest(
        &self,
        tag: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, ImageError> {
        let url = self.repo_url(&format!("manifests/{tag}"))?;
        let response = self.send(
            Method::PUT,
            &url,
            Some(media_type),
            None,
            Payload::Bytes(bytes),
        )?;
        self.check_status(response, tag)?;
        Ok(Digest::of_bytes(bytes))
    }
}
