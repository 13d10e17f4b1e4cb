//! A registry that lies, on 127.0.0.1, run in the test process: each test decides per request
//! what to answer (wrong bytes, truncated bodies, errors, redirects, auth challenges) and can
//! read back every request it got, headers included.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::oci::{BuiltImage, INDEX_TYPE, MANIFEST_TYPE};

#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
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
    let request = Request {
        method,
        path,
        headers,
    };
    log.lock().expect("log").push(request.clone());
    let reply = handler(&request);
    let mut out = stream;
    let mut stall = None;
    let (status, headers, body, send) = match reply {
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

pub const INDEX: &str = INDEX_TYPE;

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
