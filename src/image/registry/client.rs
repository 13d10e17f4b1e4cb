//! A client for one repository on one registry host: ping, authentication, manifests and blobs.
//!
//! Redirects are followed by hand (at most 10 hops) so that the Authorization header is only ever
//! sent to the registry's own origin, and an https -> http hop is refused. Transient failures
//! (5xx, 429, broken connections) are retried with a short exponential backoff.

use std::io::Read as _;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, LOCATION, RANGE, WWW_AUTHENTICATE};
use reqwest::{StatusCode, Url};

use crate::image::digest::Digest;
use crate::image::error::{ImageError, NetStage};
use crate::image::registry::challenge::{self, Challenge};
use crate::image::registry::credentials::{Credential, Secret};
use crate::image::registry::hosts::is_loopback;
use crate::image::registry::tls;

/// Manifests (and indexes) may not exceed this, as containers/image and the spec's floor.
pub const MANIFEST_LIMIT: u64 = 4 * 1024 * 1024;
/// Token answers and error bodies are capped lower.
const TOKEN_LIMIT: u64 = 1024 * 1024;
const ATTEMPTS: u32 = 5;
const MAX_REDIRECTS: usize = 10;

/// The manifest media types we can read, for the Accept header.
const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// How to reach one registry host.
#[derive(Clone, Debug)]
pub struct Connection {
    /// The registry as written in references (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    pub repository: String,
    /// Configured insecure: plain HTTP allowed, TLS unverified.
    pub insecure: bool,
    pub credential: Option<Credential>,
    /// Tokens are asked for with push scope too.
    pub push: bool,
}

#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    token: Option<Secret>,
}

/// A connected client; cheap to share between the threads pulling layers.
pub struct RegistryClient {
    pub(super) registry: String,
    pub(super) repository: String,
    pub(super) base: Url,
    pub(super) http: Client,
    pub(super) credential: Option<Credential>,
    auth: Mutex<AuthState>,
    push: bool,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("base", &self.base.as_str())
            .field("repository", &self.repository)
            .finish_non_exhaustive()
    }
}

/// The host name the HTTP API lives on: Docker Hub's differs from its reference name.
pub fn api_host(registry: &str) -> &str {
    if registry == "docker.io" {
        "registry-1.docker.io"
    } else {
        registry
    }
}

impl RegistryClient {
    /// Pings `/v2/` over HTTPS, falling back to plain HTTP only for loopback or insecure hosts.
    pub fn connect(connection: &Connection) -> Result<Self, ImageError> {
        let host = api_host(&connection.registry).to_owned();
        let http = build_http(&host, connection.insecure)?;
        let plain_allowed = connection.insecure || is_loopback(&host);
        let mut client = Self {
            registry: connection.registry.clone(),
            repository: connection.repository.clone(),
            base: parse_url(&format!("https://{host}/"), &host)?,
            http,
            credential: connection.credential.clone(),
            auth: Mutex::new(AuthState::default()),
            push: connection.push,
        };
        match client.ping() {
            Ok(()) => Ok(client),
            // Fall back when nothing speaks TLS there; an untrusted certificate stays an error,
            // so a real TLS registry is never silently downgraded.
            Err(ImageError::Unreachable { stage, source, .. })
                if plain_allowed
                    && (stage == NetStage::Connect
                        || (stage == NetStage::Tls && !mentions_certificate(&*source))) =>
            {
                client.base = parse_url(&format!("http://{host}/"), &host)?;
                client.ping()?;
                Ok(client)
            }
            Err(e) => Err(e),
        }
    }

    pub(super) fn host(&self) -> String {
        api_host(&self.registry).to_owned()
    }

    fn ping(&self) -> Result<(), ImageError> {
        let url = self.url("v2/")?;
        let response = self
            .http
            .get(url.clone())
            .send()
            .map_err(|e| net_error(&self.host(), e))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            self.remember_challenge(response.headers());
            return Ok(());
        }
        if status.is_success() || status.is_server_error() {
            // A 5xx here is retried by the real request that follows.
            return Ok(());
        }
        Err(ImageError::Protocol {
            host: self.host(),
            url: url.to_string(),
            source: format!("`/v2/` answered {status}; this does not look like an OCI registry")
                .into(),
        })
    }

    pub(super) fn url(&self, path: &str) -> Result<Url, ImageError> {
        self.base
            .join(path)
            .map_err(|e| ImageError::Internal(e.to_string()))
    }

    pub(super) fn remember_challenge(&self, headers: &HeaderMap) {
        let parsed = headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(challenge::parse)
            .next();
        if let (Some(parsed), Ok(mut state)) = (parsed, self.auth.lock()) {
            state.challenge = Some(parsed);
            state.token = None;
        }
    }

    /// The Authorization value to send to the registry's own origin, if any.
    pub(super) fn authorization(&self) -> Option<String> {
        let state = self.auth.lock().ok()?;
        match (&state.challenge, &state.token, &self.credential) {
            (_, Some(token), _) => Some(format!("Bearer {}", token.expose())),
            (Some(Challenge::Basic), None, Some(c)) => Some(basic_header(c)),
            _ => None,
        }
    }

    /// Fetches a bearer token for our repository after a 401; `false` when there is no way to.
    pub(super) fn authenticate(&self) -> Result<bool, ImageError> {
        let challenge = self.auth.lock().ok().and_then(|s| s.challenge.clone());
        let Some(Challenge::Bearer { realm, service, .. }) = challenge else {
            return Ok(matches!(challenge, Some(Challenge::Basic)) && self.credential.is_some());
        };
        let host = self.host();
        let mut url =
            challenge::check_realm(&realm, &self.base).map_err(|reason| ImageError::Protocol {
                host: host.clone(),
                url: realm.clone(),
                source: format!("refusing the token service: {reason}").into(),
            })?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = &service {
                query.append_pair("service", service);
            }
            // An empty repository is `sandbox login`: a token for no scope proves the password.
            if !self.repository.is_empty() {
                let actions = if self.push { "pull,push" } else { "pull" };
                query.append_pair(
                    "scope",
                    &format!("repository:{}:{actions}", self.repository),
                );
            }
        }
        let mut request = self.http.get(url.clone());
        if let Some(c) = &self.credential {
            request = request.header(AUTHORIZATION, basic_header(c));
        }
        let response = request.send().map_err(|e| net_error(&host, e))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let answer = error_text(response);
            return Err(ImageError::Denied {
                reference: self.repository.clone(),
                registry: self.registry.clone(),
                answer: format!("the token service refused: {answer}"),
                had_credentials: self.credential.is_some(),
            });
        }
        if !status.is_success() {
            return Err(ImageError::HttpStatus {
                host,
                status: status.as_u16(),
                url: url.to_string(),
                answer: error_text(response),
            });
        }
        let body = read_capped(response, TOKEN_LIMIT, "token answer", &host)?;
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
        }
        let answer: TokenAnswer =
            serde_json::from_slice(&body).map_err(|e| ImageError::Protocol {
                host: host.clone(),
                url: url.to_string(),
                source: format!("token answer is not JSON: {e}").into(),
            })?;
        let token = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ImageError::Protocol {
                host: host.clone(),
                url: url.to_string(),
                source: "token answer has no `token`".into(),
            })?;
        if let Ok(mut state) = self.auth.lock() {
            state.token = Some(Secret::new(token));
        }
        Ok(true)
    }

    /// GET with auth, redirects and retries; the answer may be any status.
    pub fn get(
        &self,
        path: &str,
        accept: Option<&str>,
        range_from: Option<u64>,
    ) -> Result<Response, ImageError> {
        let url = self.url(path)?;
        self.with_retries(|| self.get_following_redirects(&url, accept, range_from))
    }

    /// Makes one attempt with `send` (which applies the current Authorization) until the answer
    /// is not a passing trouble: a 401 fetches a token once; a 5xx, a 429 or a broken transfer is
    /// tried again after a growing pause (Retry-After honoured, up to 10 s).
    pub(super) fn with_retries(
        &self,
        mut send: impl FnMut() -> Result<Response, ImageError>,
    ) -> Result<Response, ImageError> {
        let mut authenticated = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let retry_after = match send() {
                Err(ImageError::Unreachable {
                    stage: NetStage::Transfer | NetStage::Timeout,
                    ..
                }) if attempt < ATTEMPTS => None,
                Err(e) => return Err(e),
                Ok(r) if r.status() == StatusCode::UNAUTHORIZED && !authenticated => {
                    self.remember_challenge(r.headers());
                    authenticated = true;
                    if self.authenticate()? {
                        attempt -= 1;
                        continue;
                    }
                    return Ok(r);
                }
                Ok(r)
                    if (r.status().is_server_error()
                        || r.status() == StatusCode::TOO_MANY_REQUESTS)
                        && attempt < ATTEMPTS =>
                {
                    r.headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                }
                Ok(r) => return Ok(r),
            };
            let backoff = Duration::from_millis(100 << attempt.min(6));
            let wait = retry_after.map_or(backoff, |s| Duration::from_secs(s.min(10)));
            std::thread::sleep(wait);
        }
    }

    fn get_following_redirects(
        &self,
        start: &Url,
        accept: Option<&str>,
        range_from: Option<u64>,
    ) -> Result<Response, ImageError> {
        let mut url = start.clone();
        for _ in 0..=MAX_REDIRECTS {
            let mut request: RequestBuilder = self.http.get(url.clone());
            if let Some(accept) = accept {
                request = request.header(ACCEPT, accept);
            }
            if let Some(from) = range_from {
                request = request.header(RANGE, format!("bytes={from}-"));
            }
            if same_origin(&url, &self.base) {
                if let Some(auth) = self.authorization() {
                    request = request.header(AUTHORIZATION, auth);
                }
            }
            let host = url.host_str().unwrap_or("").to_owned();
            let response = request.send().map_err(|e| net_error(&host, e))?;
            if !response.status().is_redirection() {
                return Ok(response);
            }
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| ImageError::Protocol {
                    host: host.clone(),
                    url: url.to_string(),
                    source: format!("{} without a Location", response.status()).into(),
                })?;
            let next = url.join(location).map_err(|e| ImageError::Protocol {
                host: host.clone(),
                url: url.to_string(),
                source: format!("bad redirect `{location}`: {e}").into(),
            })?;
            if url.scheme() == "https" && next.scheme() != "https" {
                return Err(ImageError::Protocol {
                    host,
                    url: url.to_string(),
                    source: format!("refusing a redirect from https to `{next}`").into(),
                });
            }
            if !next.username().is_empty() || next.password().is_some() {
                return Err(ImageError::Protocol {
                    host,
                    url: url.to_string(),
                    source: "refusing a redirect that carries user information".into(),
                });
            }
            url = next;
        }
        Err(ImageError::Protocol {
            host: self.host(),
            url: start.to_string(),
            source: format!("more than {MAX_REDIRECTS} redirects").into(),
        })
    }

    /// Fetches a manifest (by tag or digest); returns its bytes and Content-Type.
    pub fn fetch_manifest(
        &self,
        selector: &str,
        shown: &str,
    ) -> Result<(Vec<u8>, String), ImageError> {
        let path = format!("v2/{}/manifests/{selector}", self.repository);
        let response = self.get(&path, Some(ACCEPT_MANIFESTS), None)?;
        let response = self.check_status(response, shown)?;
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned())
            .unwrap_or_default();
        let bytes = read_capped(
            response,
            MANIFEST_LIMIT,
            &format!("manifest of {shown}"),
            &self.host(),
        )?;
        Ok((bytes, content_type))
    }

    /// Fetches a small blob (a config) whole, verifying its digest.
    pub fn fetch_small_blob(
        &self,
        digest: &Digest,
        what: &'static str,
        shown: &str,
    ) -> Result<Vec<u8>, ImageError> {
        let response = self.open_blob(digest, None, shown)?;
        let bytes = read_capped(
            response,
            MANIFEST_LIMIT,
            &format!("{what} {digest}"),
            &self.host(),
        )?;
        let actual = Digest::of_bytes(&bytes);
        if &actual != digest {
            return Err(ImageError::DigestMismatch {
                what,
                expected: digest.clone(),
                actual,
                host: self.host(),
            });
        }
        Ok(bytes)
    }

    /// Opens a blob, from `range_from` when resuming; checks the status is usable.
    pub fn open_blob(
        &self,
        digest: &Digest,
        range_from: Option<u64>,
        shown: &str,
    ) -> Result<Response, ImageError> {
        let path = format!("v2/{}/blobs/{digest}", self.repository);
        let response = self.get(&path, None, range_from)?;
        self.check_status(response, shown)
    }

    /// Maps error statuses to the errors a user can act on.
    pub(super) fn check_status(
        &self,
        response: Response,
        shown: &str,
    ) -> Result<Response, ImageError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let url = response.url().to_string();
        let answer = error_text(response);
        Err(match status {
            StatusCode::NOT_FOUND => ImageError::NotFound {
                reference: shown.to_owned(),
                registry: self.registry.clone(),
                answer,
            },
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ImageError::Denied {
                reference: shown.to_owned(),
                registry: self.registry.clone(),
                answer,
                had_credentials: self.credential.is_some(),
            },
            _ => ImageError::HttpStatus {
                host: self.host(),
                status: status.as_u16(),
                url,
                answer,
            },
        })
    }

    /// Checks the credential against `/v2/`, for `sandbox login`.
    pub fn check_login(&self) -> Result<(), ImageError> {
        let response = self.get("v2/", None, None)?;
        self.check_status(response, &self.registry).map(|_| ())
    }

    /// The host name used in errors about this client.
    pub fn host_name(&self) -> String {
        self.host()
    }
}

fn parse_url(text: &str, host: &str) -> Result<Url, ImageError> {
    Url::parse(text).map_err(|e| ImageError::Protocol {
        host: host.to_owned(),
        url: text.to_owned(),
        source: e.into(),
    })
}

pub(super) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

fn basic_header(credential: &Credential) -> String {
    use base64::Engine as _;
    let raw = format!("{}:{}", credential.username, credential.password.expose());
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// How long a response may send nothing before the read fails (and a blob read resumes with
/// Range): 30 s, or `SANDBOX_PULL_IDLE_TIMEOUT` seconds. A registry that stalls mid-blob must
/// not hang `pull` forever.
pub fn idle_timeout() -> Duration {
    std::env::var("SANDBOX_PULL_IDLE_TIMEOUT")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map_or(Duration::from_secs(30), Duration::from_secs)
}

fn build_http(host: &str, insecure: bool) -> Result<Client, ImageError> {
    // The blocking client's timeout bounds the wait for the answer's head and then each read
    // of the body on its own: an idle timeout, not a total one (a large layer may take long; it
    // must only keep coming).
    let mut builder = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(20))
        .timeout(idle_timeout())
        .user_agent(concat!("sandbox/", env!("CARGO_PKG_VERSION")));
    for cert in tls::extra_roots(host)? {
        builder = builder.add_root_certificate(cert);
    }
    if insecure {
        builder = builder.danger_accept_invalid_certs(true);
    }
    builder.build().map_err(|e| ImageError::Client {
        host: host.to_owned(),
        source: Box::new(e),
    })
}

/// Reads a body, refusing it once it passes `limit` (never trusting Content-Length).
pub fn read_capped(
    response: Response,
    limit: u64,
    what: &str,
    host: &str,
) -> Result<Vec<u8>, ImageError> {
    let mut bytes = Vec::new();
    response
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ImageError::Unreachable {
            host: host.to_owned(),
            stage: NetStage::Transfer,
            source: Box::new(e),
        })?;
    if bytes.len() as u64 > limit {
        return Err(ImageError::TooLarge {
            what: what.to_owned(),
            host: host.to_owned(),
            limit,
        });
    }
    Ok(bytes)
}

/// A short text for an error answer: the registry's `errors[].code: message`, else the status.
fn error_text(response: Response) -> String {
    let status = response.status();
    let mut body = Vec::new();
    let _ = response.take(64 * 1024).read_to_end(&mut body);
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<OneError>,
    }
    #[derive(serde::Deserialize)]
    struct OneError {
        code: Option<String>,
        message: Option<String>,
    }
    // Token services answer in their own words: {"details": ...} (Docker Hub),
    // {"error": ..., "error_description": ...} (OAuth), or plain text.
    #[derive(serde::Deserialize)]
    struct TokenRefusal {
        details: Option<String>,
        error_description: Option<String>,
        error: Option<String>,
        message: Option<String>,
    }
    if let Ok(refusal) = serde_json::from_slice::<TokenRefusal>(&body) {
        if let Some(reason) = [
            refusal.details,
            refusal.error_description,
            refusal.message,
            refusal.error,
        ]
        .into_iter()
        .flatten()
        .map(|r| printable(&r))
        .find(|r| !r.is_empty())
        {
            return format!("{status}: {reason}");
        }
    }
    if let Ok(parsed) = serde_json::from_slice::<Errors>(&body) {
        let parts: Vec<String> = parsed
            .errors
            .iter()
            .map(|e| match (&e.code, &e.message) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.clone(),
                (None, Some(m)) => m.clone(),
                (None, None) => String::new(),
            })
            .filter(|s| !s.is_empty())
            .collect();
        if !parts.is_empty() {
            return parts.join("; ");
        }
    }
    let text = printable(&String::from_utf8_lossy(&body));
    if text.is_empty() || text.starts_with('<') {
        status.to_string()
    } else {
        format!("{status}: {text}")
    }
}

/// A server's words as one short line of printable text (a hostile server's bytes never
/// reach the terminal as control sequences).
fn printable(text: &str) -> String {
    let line: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    line
}

/// The first cause in `error`'s chain that is a `T`, looking inside io::Errors as well: TLS
/// failures reach us as io::Errors wrapping io::Errors that wrap rustls's own error, and an
/// io::Error's `source` skips what it wraps.
fn cause<'a, T: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(wrapped) => Some(wrapped),
            None => e.source(),
        };
    }
    None
}

/// Whether the TLS handshake failed on the server's certificate (not trusted, not for this
/// name, expired), as opposed to there being no TLS at all.
fn mentions_certificate(error: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    matches!(
        cause::<rustls::Error>(error),
        Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)
    )
}

/// Names which step of reaching `host` failed, by the types in the error's chain. A failed
/// name lookup is the exception: hyper's resolver error is not a public type, so it is known
/// by its words.
pub fn net_error(host: &str, error: reqwest::Error) -> ImageError {
    use std::io::ErrorKind;
    let io_kind = cause::<std::io::Error>(&error).map(std::io::Error::kind);
    let lookup_failed = {
        let mut next: Option<&dyn std::error::Error> = Some(&error);
        let mut found = false;
        while let Some(e) = next {
            let text = e.to_string();
            found |= text.contains("dns error") || text.contains("failed to lookup address");
            next = e.source();
        }
        found
    };
    let stage = if error.is_timeout() || io_kind == Some(ErrorKind::TimedOut) {
        NetStage::Timeout
    } else if cause::<rustls::Error>(&error).is_some() {
        NetStage::Tls
    } else if lookup_failed {
        NetStage::Dns
    } else if error.is_connect()
        || matches!(
            io_kind,
            Some(
                ErrorKind::ConnectionRefused
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkUnreachable
                    | ErrorKind::AddrNotAvailable
            )
        )
    {
        NetStage::Connect
    } else {
        NetStage::Transfer
    };
    ImageError::Unreachable {
        host: host.to_owned(),
        stage,
        source: Box::new(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_failure_is_told_from_no_tls_by_type_even_inside_an_io_error() {
        // As tokio-rustls and hyper wrap it: an io::Error in an io::Error.
        let wrapped = |e: rustls::Error| -> Box<dyn std::error::Error + Send + Sync> {
            let tls = std::io::Error::new(std::io::ErrorKind::InvalidData, e);
            Box::new(std::io::Error::other(tls))
        };
        let untrusted = wrapped(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        assert!(mentions_certificate(&*untrusted));
        // A plain HTTP server's answer to a ClientHello: no TLS there, not a bad certificate.
        let plain = wrapped(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        ));
        assert!(!mentions_certificate(&*plain));
        assert!(cause::<rustls::Error>(&*plain).is_some());
        // Words that look like a certificate's are not one.
        let words: Box<dyn std::error::Error + Send + Sync> =
            "certificate of deposit".to_owned().into();
        assert!(!mentions_certificate(&*words));
    }

    #[test]
    fn a_servers_words_reach_the_terminal_as_one_short_plain_line() {
        assert_eq!(
            printable("incorrect\n username \x1b[31mor\x07 password"),
            "incorrect username [31mor password"
        );
        assert_eq!(printable(&"x".repeat(500)).len(), 200);
    }
}
