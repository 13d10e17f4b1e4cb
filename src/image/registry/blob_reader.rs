//! A blob body that survives a broken connection: on a read error or an early EOF it asks again
//! with `Range: bytes=<offset>-` and carries on, so the caller's streaming decompressor and tar
//! reader never notice. A server that ignores Range (200 instead of 206) or answers with another
//! offset cannot be resumed, and the read fails with the byte counts.

use std::io::{self, Read};

use reqwest::blocking::Response;
use reqwest::header::CONTENT_RANGE;
use reqwest::StatusCode;

use crate::image::digest::Digest;
use crate::image::error::ImageError;
use crate::image::registry::client::RegistryClient;

const RESUMES: u32 = 5;

/// Streams one blob of known size from a registry.
pub struct BlobReader<'a> {
    client: &'a RegistryClient,
    digest: Digest,
    shown: String,
    expected: u64,
    offset: u64,
    body: Option<Response>,
    resumes_left: u32,
}

impl<'a> BlobReader<'a> {
    /// Opens the blob; errors about the first answer (404, denied...) come out here.
    pub fn open(
        client: &'a RegistryClient,
        digest: &Digest,
        expected: u64,
        shown: &str,
    ) -> Result<Self, ImageError> {
        let body = client.open_blob(digest, None, shown)?;
        Ok(Self {
            client,
            digest: digest.clone(),
            shown: shown.to_owned(),
            expected,
            offset: 0,
            body: Some(body),
            resumes_left: RESUMES,
        })
    }

    fn stalled(&self) -> io::Error {
        io::Error::other(ImageError::Stalled {
            digest: self.digest.clone(),
            host: self.client.host_name(),
            received: self.offset,
            expected: self.expected,
            idle_secs: crate::image::registry::client::idle_timeout().as_secs(),
        })
    }

    fn truncated(&self, source: Option<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
        io::Error::other(ImageError::Truncated {
            digest: self.digest.clone(),
            host: self.client.host_name(),
            received: self.offset,
            expected: self.expected,
            source,
        })
    }

    fn reopen(&mut self) -> io::Result<()> {
        let response = self
            .client
            .open_blob(&self.digest, Some(self.offset), &self.shown)
            .map_err(io::Error::other)?;
        let resumed_at = response
            .headers()
            .get(CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("bytes "))
            .and_then(|v| v.split('-').next())
            .and_then(|v| v.parse::<u64>().ok());
        let usable = match response.status() {
            StatusCode::PARTIAL_CONTENT => resumed_at == Some(self.offset),
            StatusCode::OK => self.offset == 0,
            _ => false,
        };
        if !usable {
            return Err(self.truncated(Some(
                format!(
                    "the registry cannot resume at byte {} (answered {})",
                    self.offset,
                    response.status()
                )
                .into(),
            )));
        }
        self.body = Some(response);
        Ok(())
    }
}

impl Read for BlobReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.body.is_none() {
                self.reopen()?;
            }
            let Some(body) = self.body.as_mut() else {
                continue;
            };
            let mut stalled = false;
            let failure = match body.read(buf) {
                Ok(0) if self.offset >= self.expected => return Ok(0),
                Ok(0) => None,
                Ok(n) => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    stalled = is_idle_timeout(&e);
                    Some(Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
                }
            };
            self.body = None;
            if self.resumes_left == 0 {
                return Err(if stalled {
                    self.stalled()
                } else {
                    self.truncated(failure)
                });
            }
            self.resumes_left -= 1;
            std::thread::sleep(std::time::Duration::from_millis(
                50 << (RESUMES - self.resumes_left),
            ));
        }
    }
}

/// Whether a body read failed because no byte came for the idle timeout.
fn is_idle_timeout(error: &io::Error) -> bool {
    if error.kind() == io::ErrorKind::TimedOut {
        return true;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = error.get_ref().map(|e| e as _);
    while let Some(e) = source {
        if e.downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_timeout)
            || e.downcast_ref::<io::Error>()
                .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = e.source();
    }
    false
}
