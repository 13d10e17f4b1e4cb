//! A registry that lies, on 127.0.0.1, run in the test process: each test decides per request
//! what to answer (wrong bytes, truncated bodies, errors, redirects, auth challenges) and can
//! read back every request it got, headers included.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::oci::{BuiltImage, MANIFEST_TYPE};

#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    /// The body (what Content-Length announced).
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

pub enum Reply {
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Declares the whole body's length but sends only `send` bytes, then closes.
    Truncated {
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        send: usize,
    },
    /// Closes the connection without answering.
    Dropped,
    /// Sends `send` bytes of the body, then nothing for `stall`, keeping the connection open.
    Stalled {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        send: usize,
        stall: std::time::Duration,
    },
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Reply::Full {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }
    pub fn body(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        Reply::Full {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
        }
    }
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        match &mut self {
            Reply::Full { headers, .. }
            | Reply::Truncated { headers, .. }
            | Reply::Stalled { headers, .. } => headers.push((name.into(), value.into())),
            Reply::Dropped => {}
        }
        self
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

pub struct HostileServer {
    pub port: u16,
    pub log: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl HostileServer {
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_on("127.0.0.1", handler)
    }

    pub fn start_on(
        address: &str,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind((address, 0)).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (log2, stop2) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (handler, log) = (handler.clone(), log2.clone());
                std::thread::spawn(move || serve(stream, &*handler, &log));
            }
        });
        Self { port, log, stop }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().expect("log").clone()
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(stream: TcpStream, handler: &Handler, log: &Mutex<Vec<Request>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let length = headers
        .get("content-length")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    if std::io::Read::read_exact(&mut reader, &mut body).is_err() {
        body.clear();
    }
    let request = Request {
        method,
        path,
        headers,
        body,
    };
    log.lock().expect("log").push(request.clone());
    let reply = handler(&request);
    let mut out = stream;
    let mut stall = None;
    let (status, headers, body, send) = match reply {
        Reply::Dropped => {
            let _ = out.shutdown(std::net::Shutdown::Both);
            return;
        }
        Reply::Stalled {
            status,
            headers,
            body,
            send,
            stall: pause,
        } => {
            stall = Some(pause);
            (status, headers, body, send)
        }
        Reply::Full {
            status,
            headers,
            body,
        } => {
            let n = body.len();
            (status, headers, body, n)
        }
        Reply::Truncated {
            headers,
            body,
            send,
        } => (200, headers, body, send),
    };
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = out.write_all(head.as_bytes());
    if request.method != "HEAD" {
        let _ = out.write_all(&body[..send.min(body.len())]);
    }
    let _ = out.flush();
    if let Some(pause) = stall {
        std::thread::sleep(pause);
    }
    let _ = out.shutdown(std::net::Shutdown::Both);
}

/// The paths a well-behaved registry would serve for `image` at `repo:tag`.
pub fn image_routes(
    repo: &str,
    tag: &str,
    image: &BuiltImage,
) -> HashMap<String, (String, Vec<u8>)> {
    let mut routes = HashMap::new();
    routes.insert(
        format!("/v2/{repo}/manifests/{tag}"),
        (MANIFEST_TYPE.to_owned(), image.manifest.clone()),
    );
    routes.insert(
        format!("/v2/{repo}/manifests/{}", image.manifest_digest),
        (MANIFEST_TYPE.to_owned(), image.manifest.clone()),
    );
    routes.insert(
        format!("/v2/{repo}/blobs/{}", image.config_digest),
        ("application/octet-stream".to_owned(), image.config.clone()),
    );
    for l in &image.layers {
        routes.insert(
            format!("/v2/{repo}/blobs/{}", l.digest),
            ("application/octet-stream".to_owned(), l.blob.clone()),
        );
    }
    routes
}

/// Answers `/v2/` and the given routes; 404 for the rest.
pub fn serve_routes(request: &Request, routes: &HashMap<String, (String, Vec<u8>)>) -> Reply {
    if request.path == "/v2/" {
        return Reply::status(200);
    }
    match routes.get(&request.path) {
        Some((ct, body)) => ranged(request, ct, body),
        None => Reply::body(
            404,
            "application/json",
            br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"unknown"}]}"#.to_vec(),
        ),
    }
}

/// Honours `Range: bytes=N-` with a 206, as registries do for blobs.
pub fn ranged(request: &Request, content_type: &str, body: &[u8]) -> Reply {
    let from = request
        .header("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.trim_end_matches('-').parse::<usize>().ok());
    match from {
        Some(from) if from < body.len() => Reply::body(206, content_type, body[from..].to_vec())
            .with_header(
                "Content-Range",
                &format!("bytes {from}-{}/{}", body.len() - 1, body.len()),
            ),
        _ => Reply::body(200, content_type, body.to_vec()),
    }
}

/// A registry that takes pushes, in memory, checking what a real one checks (each blob's
/// digest, chunks in order, a manifest's blobs present), with `fault` choosing, per request,
/// a failure to answer instead (`None`: behave).
pub struct UploadRegistry {
    pub server: HostileServer,
    pub manifests: Arc<Mutex<HashMap<String, Vec<u8>>>>,
}

impl UploadRegistry {
    pub fn start(fault: impl Fn(&Request, usize) -> Option<Reply> + Send + Sync + 'static) -> Self {
        let blobs: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let manifests: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let uploads: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let m = manifests.clone();
        let server = HostileServer::start(move |request| {
            let n = count.fetch_add(1, Ordering::SeqCst);
            if let Some(reply) = fault(request, n) {
                return reply;
            }
            upload_route(request, &blobs, &m, &uploads)
        });
        Self { server, manifests }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

fn upload_route(
    request: &Request,
    blobs: &Mutex<HashMap<String, Vec<u8>>>,
    manifests: &Mutex<HashMap<String, Vec<u8>>>,
    uploads: &Mutex<HashMap<String, Vec<u8>>>,
) -> Reply {
    let (path, query) = request
        .path
        .split_once('?')
        .unwrap_or((request.path.as_str(), ""));
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .map(|v| v.replace("%3A", ":"))
    };
    let method = request.method.as_str();
    if path == "/v2/" {
        return Reply::status(200);
    }
    if let Some(digest) = path
        .split("/blobs/")
        .nth(1)
        .filter(|d| d.starts_with("sha256:"))
    {
        let have = blobs.lock().expect("blobs").get(digest).cloned();
        return match (method, have) {
            ("HEAD" | "GET", Some(bytes)) => Reply::body(200, "application/octet-stream", bytes),
            _ => Reply::status(404),
        };
    }
    if path.ends_with("/blobs/uploads/") && method == "POST" {
        let id = format!("u{}", uploads.lock().expect("uploads").len());
        uploads
            .lock()
            .expect("uploads")
            .insert(id.clone(), Vec::new());
        return Reply::status(202).with_header("Location", &format!("/upload/{id}"));
    }
    if let Some(id) = path.strip_prefix("/upload/") {
        let mut all = uploads.lock().expect("uploads");
        let Some(data) = all.get_mut(id) else {
            return Reply::status(404);
        };
        let range = |len: usize| format!("0-{}", len.saturating_sub(1));
        match method {
            "GET" => {
                return Reply::status(204)
                    .with_header("Location", &format!("/upload/{id}"))
                    .with_header("Range", &range(data.len()))
            }
            "PATCH" => {
                let start = request
                    .header("content-range")
                    .and_then(|r| r.split('-').next())
                    .and_then(|s| s.parse::<usize>().ok())
                    .unwrap_or(0);
                if start != data.len() {
                    return Reply::status(416)
                        .with_header("Location", &format!("/upload/{id}"))
                        .with_header("Range", &range(data.len()));
                }
                data.extend_from_slice(&request.body);
                return Reply::status(202)
                    .with_header("Location", &format!("/upload/{id}"))
                    .with_header("Range", &range(data.len()));
            }
            "PUT" => {
                data.extend_from_slice(&request.body);
                let digest = param("digest").unwrap_or_default();
                if format!("sha256:{}", sha256_hex(data)) != digest {
                    return Reply::body(
                        400,
                        "application/json",
                        br#"{"errors":[{"code":"DIGEST_INVALID"}]}"#.to_vec(),
                    );
                }
                blobs.lock().expect("blobs").insert(digest, data.clone());
                return Reply::status(201);
            }
            _ => return Reply::status(405),
        }
    }
    if let Some(tag) = path.split("/manifests/").nth(1) {
        if method == "PUT" {
            let manifest: serde_json::Value =
                serde_json::from_slice(&request.body).unwrap_or_default();
            let mut needed = vec![manifest["config"]["digest"]
                .as_str()
                .unwrap_or("")
                .to_owned()];
            for layer in manifest["layers"].as_array().into_iter().flatten() {
                needed.push(layer["digest"].as_str().unwrap_or("").to_owned());
            }
            let have = blobs.lock().expect("blobs");
            if needed.iter().any(|d| !have.contains_key(d)) {
                return Reply::body(
                    400,
                    "application/json",
                    br#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN"}]}"#.to_vec(),
                );
            }
            manifests
                .lock()
                .expect("manifests")
                .insert(tag.to_owned(), request.body.clone());
            return Reply::status(201);
        }
    }
    Reply::status(404)
}
