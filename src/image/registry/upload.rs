//! Pushing to a registry (the OCI distribution spec): `HEAD` to skip blobs the registry has, a
//! cross-repository mount when it has them elsewhere, one `PUT` for a small blob and `PATCH`
//! chunks for a large one (a broken chunk resumes from what the registry says it has), then
//! the manifest. The manifest goes last: a registry never names an image whose blobs it lacks.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::Path;

use reqwest::blocking::{Body, Response};
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode, Url};

use crate::image::blob_stream::Blob;
use crate::image::blob_stream::{BlobStream, Taken};
use crate::image::digest::Digest;
use crate::image::error::{ImageError, NetStage};
use crate::image::registry::client::{net_error, same_origin, RegistryClient};

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
/// The chunk size for a blob still being made: smaller than a made blob's, so the upload
/// follows the maker closely.
const STREAM_CHUNK: u64 = 32 << 20;

/// The chunk size for a blob still being made (`SANDBOX_PUSH_CHUNK_MB` when smaller).
pub fn stream_chunk_size() -> usize {
    usize::try_from(chunk_size().min(STREAM_CHUNK)).unwrap_or(1 << 20)
}

/// How a PATCH went.
enum Patched {
    /// The registry has the chunk; the upload goes on at this URL.
    Accepted(Url),
    /// It failed; the registry has `have` bytes; the upload goes on at `url`.
    Resume { have: u64, url: Url },
}
/// How many failed chunks are resumed before giving up.
const ATTEMPTS: u32 = 5;

/// What a request carries: nothing, bytes, or a part of a file.
#[derive(Clone, Copy)]
enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// Bytes shared with the request, not copied.
    Shared(&'a bytes::Bytes),
    File {
        path: &'a Path,
        from: u64,
        len: u64,
    },
}

/// `len` bytes of `file` from `from` on, without moving its offset.
fn read_range(file: &File, from: u64, len: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = vec![0; usize::try_from(len).map_err(std::io::Error::other)?];
    file.read_exact_at(&mut bytes, from)?;
    Ok(bytes)
}

impl Payload<'_> {
    fn body(&self) -> std::io::Result<(Body, u64)> {
        Ok(match *self {
            Payload::Empty => (Body::from(Vec::new()), 0),
            Payload::Bytes(bytes) => (Body::from(bytes.to_vec()), bytes.len() as u64),
            Payload::Shared(bytes) => (Body::from(bytes.clone()), bytes.len() as u64),
            // Read into memory (a chunk at most): reqwest streams a reader 8 KiB at a time,
            // which costs more system time than the upload itself.
            Payload::File { path, from, len } => {
                let file = fs_err::File::open(path)?.into_parts().0;
                (Body::from(read_range(&file, from, len)?), len)
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
                source: format!("{} without a Location for the upload", response.status()).into(),
            })?;
        at.join(location).map_err(|e| ImageError::Protocol {
            host: self.host(),
            url: at.to_string(),
            source: format!("bad upload location `{location}`: {e}").into(),
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
        let what = digest.to_string();
        while sent < size {
            let len = chunk.min(size - sent);
            let payload = Payload::File {
                path,
                from: sent,
                len,
            };
            match self.patch_chunk(&url, sent, len, payload, &what, &mut failures)? {
                Patched::Accepted(next) => {
                    url = next;
                    sent += len;
                    progress(len);
                }
                Patched::Resume { have, url: next } => {
                    url = next;
                    sent = have.min(sent + len);
                }
            }
        }
        self.finish_upload(&url, digest)
    }

    /// Uploads a blob as it is made (`stream`), in chunks as they come; the blob as made.
    pub fn upload_stream(
        &self,
        stream: &BlobStream,
        progress: &dyn Fn(u64),
    ) -> Result<Blob, ImageError> {
        let what = "a setup layer";
        let start = self.repo_url("blobs/uploads/")?;
        let response = self.send(Method::POST, &start, None, None, Payload::Empty)?;
        let response = self.check_status(response, what)?;
        let mut url = self.location(&response, &start)?;
        let mut sent: u64 = 0;
        let mut failures = 0;
        let made = loop {
            let bytes = match stream.take() {
                Taken::Bytes(bytes) => bytes::Bytes::from(bytes),
                Taken::End(blob) => break blob,
                Taken::Failed(reason) => {
                    return Err(ImageError::Internal(format!("making the layer: {reason}")))
                }
            };
            // The chunk stays here until the registry has it: a failed PATCH resends its rest.
            let end = sent + bytes.len() as u64;
            let mut at = sent;
            while at < end {
                let rest = bytes.slice(usize::try_from(at - sent).unwrap_or(0)..);
                let len = end - at;
                match self.patch_chunk(&url, at, len, Payload::Shared(&rest), what, &mut failures)? {
                    Patched::Accepted(next) => {
                        url = next;
                        progress(len);
                        at = end;
                    }
                    Patched::Resume { have, url: next } if (sent..=end).contains(&have) => {
                        url = next;
                        at = have;
                    }
                    Patched::Resume { have, .. } => {
                        return Err(ImageError::Protocol {
                            host: self.host(),
                            url: url.to_string(),
                            source: format!(
                                "the upload stands at byte {have}, outside the chunk {sent}-{end} being sent: the registry lost what it had accepted"
                            ).into(),
                        })
                    }
                }
            }
            sent = end;
        };
        if made.size != sent {
            return Err(ImageError::Internal(format!(
                "the layer is {} bytes but {sent} were sent",
                made.size
            )));
        }
        self.finish_upload(&url, &made.digest)?;
        Ok(made)
    }

    /// PATCHes `len` bytes at `from` to the upload at `url`. When the registry refuses or the
    /// connection breaks, asks how much the registry has (after at most `ATTEMPTS` failures
    /// in all, the error).
    fn patch_chunk(
        &self,
        url: &Url,
        from: u64,
        len: u64,
        payload: Payload<'_>,
        what: &str,
        failures: &mut u32,
    ) -> Result<Patched, ImageError> {
        let range = format!("{from}-{}", from + len - 1);
        let response = self.send(
            Method::PATCH,
            url,
            Some("application/octet-stream"),
            Some((CONTENT_RANGE, range)),
            payload,
        );
        match response {
            Ok(r) if r.status() == StatusCode::ACCEPTED => {
                Ok(Patched::Accepted(self.location(&r, url)?))
            }
            // A chunk the registry refused (416: not where it is) or that broke: ask how much
            // it has, and go on from there.
            other => {
                *failures += 1;
                let refused = match other {
                    Ok(r) => self.check_status(r, what).err(),
                    Err(e) => Some(e),
                };
                if *failures > ATTEMPTS {
                    return Err(refused.unwrap_or_else(|| ImageError::Unreachable {
                        host: self.host(),
                        stage: NetStage::Transfer,
                        source: Box::new(std::io::Error::other("the upload kept failing")),
                    }));
                }
                let (have, url) = self.upload_offset(url)?;
                Ok(Patched::Resume { have, url })
            }
        }
    }

    /// Completes the upload at `url` as `digest`.
    fn finish_upload(&self, url: &Url, digest: &Digest) -> Result<(), ImageError> {
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
