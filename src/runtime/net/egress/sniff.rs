//! Which name a connection is for, from its first bytes: the server name (SNI) of a TLS
//! ClientHello, the Host of an HTTP request, or the target of a proxy's CONNECT. The bytes
//! come from inside the sandbox: every length is checked against what is there.

/// The most a connection's opening may take before it is judged on what came.
pub const OPENING_MAX: usize = 16 * 1024;

/// What the opening bytes say.
#[derive(Debug, PartialEq, Eq)]
pub enum Opening {
    /// Not enough bytes yet to tell.
    NeedMore,
    /// A TLS ClientHello, with its server name when it has one.
    Tls(Option<String>),
    /// An HTTP request: for `host` (on `port` when it names one); `connect` for a proxy's
    /// CONNECT, whose head (`head_len` bytes) is answered by the forwarder, not sent on.
    Http {
        host: String,
        port: Option<u16>,
        connect: bool,
        head_len: usize,
    },
    /// Neither, or malformed.
    Other,
}

/// The longest method an HTTP request line is taken to have (`UPDATEREDIRECTREF` has 17).
const METHOD_MAX: usize = 20;

/// Reads what a tunnel's first bytes are, after a CONNECT: only a TLS ClientHello matters
/// (its server name must be the CONNECT's target), so anything else is decided at its first
/// byte and goes on at once.
pub fn tunnel_opening(bytes: &[u8]) -> Opening {
    match bytes.first() {
        None => Opening::NeedMore,
        Some(0x16) => tls(bytes),
        Some(_) => Opening::Other,
    }
}

/// Reads what `bytes` (the connection's first bytes, as many as came) are.
pub fn opening(bytes: &[u8]) -> Opening {
    match bytes.first() {
        None => Opening::NeedMore,
        Some(0x16) => tls(bytes),
        Some(b) if b.is_ascii_uppercase() => http(bytes),
        Some(_) => Opening::Other,
    }
}

fn tls(bytes: &[u8]) -> Opening {
    // The handshake may span records: gather their payloads.
    let mut handshake = Vec::new();
    let mut at = 0;
    loop {
        let Some(header) = bytes.get(at..at + 5) else {
            return more_or_other(bytes);
        };
        if header[0] != 0x16 || header[1] != 3 {
            return Opening::Other;
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        let Some(payload) = bytes.get(at + 5..at + 5 + len) else {
            return more_or_other(bytes);
        };
        handshake.extend_from_slice(payload);
        at += 5 + len;
        if handshake.len() >= 4 {
            if handshake[0] != 1 {
                return Opening::Other;
            }
            let body = (usize::from(handshake[1]) << 16)
                | (usize::from(handshake[2]) << 8)
                | usize::from(handshake[3]);
            if handshake.len() >= 4 + body {
                return match client_hello_sni(&handshake[4..4 + body]) {
                    Some(sni) => Opening::Tls(sni),
                    None => Opening::Other,
                };
            }
        }
    }
}

/// Whether `bytes` can still become an HTTP/1 request line (`METHOD target HTTP/1.x` and its
/// line end; the headers after it are not judged). A protocol that merely starts with a
/// capital, such as SSH's banner or a client's own `Q...` message, is told apart at its first
/// byte that cannot be one, instead of being held for a head that never comes.
fn may_be_request(bytes: &[u8]) -> bool {
    const VERSION: &[u8] = b"HTTP/1.";
    enum Part {
        Method(usize),
        Target(usize),
        Version(usize),
        LineEnd,
    }
    let mut part = Part::Method(0);
    for &b in bytes {
        part = match part {
            Part::Method(n) if b.is_ascii_uppercase() && n < METHOD_MAX => Part::Method(n + 1),
            Part::Method(n) if b == b' ' && n > 0 => Part::Target(0),
            Part::Target(n) if b == b' ' && n > 0 => Part::Version(0),
            Part::Target(n) if b.is_ascii_graphic() => Part::Target(n + 1),
            Part::Version(n) if n < VERSION.len() && b == VERSION[n] => Part::Version(n + 1),
            Part::Version(n) if n == VERSION.len() && b.is_ascii_digit() => Part::Version(n + 1),
            Part::Version(n) if n > VERSION.len() && b == b'\r' => Part::LineEnd,
            Part::LineEnd if b == b'\n' => return true,
            _ => return false,
        };
    }
    true
}

fn more_or_other(bytes: &[u8]) -> Opening {
    if bytes.len() >= OPENING_MAX {
        Opening::Other
    } else {
        Opening::NeedMore
    }
}

/// A reader over a byte slice that fails (None) past its end.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(out)
    }
    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| usize::from(b[0]))
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
}

/// The server name of a ClientHello's body: `Some(None)` when it names none, `None` when
/// the body is malformed.
fn client_hello_sni(body: &[u8]) -> Option<Option<String>> {
    let mut c = Cursor { bytes: body, at: 0 };
    c.take(2 + 32)?; // version, random
    let session = c.u8()?;
    c.take(session)?;
    let suites = c.u16()?;
    c.take(suites)?;
    let methods = c.u8()?;
    c.take(methods)?;
    if c.at == body.len() {
        return Some(None);
    }
    let total = c.u16()?;
    let mut extensions = Cursor {
        bytes: c.take(total)?,
        at: 0,
    };
    while extensions.at < extensions.bytes.len() {
        let kind = extensions.u16()?;
        let len = extensions.u16()?;
        let data = extensions.take(len)?;
        if kind != 0 {
            continue;
        }
        let mut list = Cursor { bytes: data, at: 0 };
        let list_len = list.u16()?;
        let mut names = Cursor {
            bytes: list.take(list_len)?,
            at: 0,
        };
        while names.at < names.bytes.len() {
            let name_type = names.u8()?;
            let name_len = names.u16()?;
            let name = names.take(name_len)?;
            if name_type == 0 {
                let name = std::str::from_utf8(name).ok()?;
                return Some(Some(crate::settings::allow_list::normalize(name)));
            }
        }
        return Some(None);
    }
    Some(None)
}

fn http(bytes: &[u8]) -> Opening {
    if !may_be_request(bytes) {
        return Opening::Other;
    }
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return more_or_other(bytes);
    };
    let Ok(head) = std::str::from_utf8(&bytes[..end]) else {
        return Opening::Other;
    };
    let mut lines = head.split("\r\n");
    let mut request = lines.next().unwrap_or_default().split(' ');
    let (Some(method), Some(target), Some(version)) =
        (request.next(), request.next(), request.next())
    else {
        return Opening::Other;
    };
    if !method.bytes().all(|b| b.is_ascii_uppercase()) || !version.starts_with("HTTP/1.") {
        return Opening::Other;
    }
    let head_len = end + 4;
    if method == "CONNECT" {
        return match split_host_port(target) {
            Some((host, Some(port))) => Opening::Http {
                host,
                port: Some(port),
                connect: true,
                head_len,
            },
            _ => Opening::Other,
        };
    }
    // A proxy's request names the URL; an origin's names the path and a Host header.
    let authority = match target.strip_prefix("http://") {
        Some(rest) => Some(rest.split(['/', '?', '#']).next().unwrap_or_default()),
        None => lines.find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("host")
                .then_some(value.trim())
        }),
    };
    match authority.and_then(split_host_port) {
        Some((host, port)) => Opening::Http {
            host,
            port,
            connect: false,
            head_len,
        },
        None => Opening::Other,
    }
}

/// A proxy client's request (`GET http://host/path HTTP/1.1`) as its origin server takes it
/// (`GET /path HTTP/1.1`), with `Connection: close`: the client's next request then comes on a
/// new connection, whose host is checked again. `bytes` holds the head (`head_len`) and what
/// followed it.
pub fn origin_form(bytes: &[u8], head_len: usize) -> Option<Vec<u8>> {
    let head = std::str::from_utf8(bytes.get(..head_len)?).ok()?;
    let mut lines = head.trim_end_matches("\r\n").split("\r\n");
    let mut request = lines.next()?.splitn(3, ' ');
    let (method, target, version) = (request.next()?, request.next()?, request.next()?);
    let path = match target.strip_prefix("http://") {
        Some(rest) => match rest.find(['/', '?']) {
            Some(at) if rest.as_bytes()[at] == b'/' => &rest[at..],
            Some(at) => {
                return Some(rebuild(
                    method,
                    &format!("/{}", &rest[at..]),
                    version,
                    lines,
                    bytes,
                    head_len,
                ))
            }
            None => "/",
        },
        None => target,
    };
    Some(rebuild(method, path, version, lines, bytes, head_len))
}

fn rebuild<'a>(
    method: &str,
    path: &str,
    version: &str,
    headers: impl Iterator<Item = &'a str>,
    bytes: &[u8],
    head_len: usize,
) -> Vec<u8> {
    let mut out = format!("{method} {path} {version}\r\n");
    for line in headers {
        let name = line.split(':').next().unwrap_or_default().trim();
        let hop = [
            "connection",
            "proxy-connection",
            "keep-alive",
            "proxy-authorization",
        ]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h));
        if !hop {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(bytes.get(head_len..).unwrap_or_default());
    out
}

/// `host[:port]` (a bracketed IPv6 address too); `None` when malformed or with user info.
/// A port as written in an authority: ASCII digits only (no sign), at most 65535.
fn port_number(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(port_number(p)?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((host.to_ascii_lowercase(), port));
    }
    match authority.rsplit_once(':') {
        // The name as written: `names::checked` judges it (one trailing dot, case).
        Some((host, port)) => Some((host.to_owned(), Some(port_number(port)?))),
        None => Some((authority.to_owned(), None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello naming `sni` (or none), in one record or cut into records of `split`.
    pub fn client_hello(sni: Option<&str>, split: usize) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend([7u8; 32]);
        body.push(0); // no session id
        body.extend([0, 2, 0x13, 0x01]); // one suite
        body.extend([1, 0]); // no compression
        let mut extensions = Vec::new();
        extensions.extend([0, 0x2b, 0, 3, 2, 3, 4]); // supported_versions
        if let Some(name) = sni {
            let n = name.len() as u16;
            extensions.extend([0, 0]);
            extensions.extend((n + 5).to_be_bytes());
            extensions.extend((n + 3).to_be_bytes());
            extensions.push(0);
            extensions.extend(n.to_be_bytes());
            extensions.extend(name.as_bytes());
        }
        body.extend((extensions.len() as u16).to_be_bytes());
        body.extend(extensions);
        let mut handshake = vec![1, 0];
        handshake.extend((body.len() as u16).to_be_bytes());
        handshake.extend(body);
        let mut out = Vec::new();
        for piece in handshake.chunks(split) {
            out.extend([0x16, 3, 1]);
            out.extend((piece.len() as u16).to_be_bytes());
            out.extend(piece);
        }
        out
    }

    #[test]
    fn the_server_name_of_a_client_hello_is_read_across_records() {
        let hello = client_hello(Some("PyPI.org"), 4096);
        assert_eq!(opening(&hello), Opening::Tls(Some("pypi.org".into())));
        assert_eq!(
            opening(&client_hello(Some("a.example"), 7)),
            Opening::Tls(Some("a.example".into()))
        );
        assert_eq!(opening(&client_hello(None, 4096)), Opening::Tls(None));
        assert_eq!(opening(&hello[..hello.len() - 1]), Opening::NeedMore);
    }

    #[test]
    fn malformed_hellos_are_other_never_a_panic() {
        let hello = client_hello(Some("pypi.org"), 4096);
        for cut in 0..hello.len() {
            let mut broken = hello.clone();
            broken[cut] = 0xff;
            let _ = opening(&broken);
        }
        let mut lying = hello.clone();
        // The SNI entry claims more bytes than its list holds.
        let at = lying.len() - "pypi.org".len() - 2;
        lying[at] = 0x7f;
        assert!(matches!(
            opening(&lying),
            Opening::Other | Opening::NeedMore
        ));
        assert_eq!(opening(&[0x16, 3, 1, 0xff, 0xff]), Opening::NeedMore);
        assert_eq!(opening(&vec![0x16; OPENING_MAX]), Opening::Other);
    }

    #[test]
    fn a_proxy_request_goes_on_in_origin_form_and_closes() {
        let request = b"GET http://deb.debian.org/debian/dists?x=1 HTTP/1.1\r\nHost: deb.debian.org\r\nProxy-Connection: keep-alive\r\nConnection: keep-alive\r\n\r\nBODY";
        let head_len = request.len() - 4;
        let out = String::from_utf8(origin_form(request, head_len).unwrap()).unwrap();
        assert_eq!(
            out,
            "GET /debian/dists?x=1 HTTP/1.1\r\nHost: deb.debian.org\r\nConnection: close\r\n\r\nBODY"
        );
        let bare = b"GET http://example.org HTTP/1.1\r\nHost: example.org\r\n\r\n";
        let out = String::from_utf8(origin_form(bare, bare.len()).unwrap()).unwrap();
        assert!(out.starts_with("GET / HTTP/1.1\r\n"), "{out}");
        let query = b"GET http://example.org?q HTTP/1.1\r\n\r\n";
        let out = String::from_utf8(origin_form(query, query.len()).unwrap()).unwrap();
        assert!(out.starts_with("GET /?q HTTP/1.1\r\n"), "{out}");
        assert!(origin_form(b"\xff\xfe", 2).is_none());
    }

    #[test]
    fn http_requests_name_their_host_connect_its_target() {
        // The name as written: the forwarder checks and lowercases it.
        let get = b"GET /simple/ HTTP/1.1\r\nHost: PyPI.org\r\nAccept: */*\r\n\r\n";
        assert_eq!(
            opening(get),
            Opening::Http {
                host: "PyPI.org".into(),
                port: None,
                connect: false,
                head_len: get.len()
            }
        );
        let connect = b"CONNECT pypi.org:443 HTTP/1.1\r\nHost: pypi.org:443\r\n\r\n\x16\x03";
        assert_eq!(
            opening(connect),
            Opening::Http {
                host: "pypi.org".into(),
                port: Some(443),
                connect: true,
                head_len: connect.len() - 2
            }
        );
        let proxied = b"GET http://deb.debian.org:8080/debian HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(
            matches!(opening(proxied), Opening::Http { host, port: Some(8080), .. } if host == "deb.debian.org")
        );
        assert_eq!(opening(b"GET / HTTP/1.1\r\nHost: a"), Opening::NeedMore);
        assert_eq!(opening(b"GET / HTTP/1.1\r\n\r\n"), Opening::Other);
        assert_eq!(
            opening(b"CONNECT pypi.org HTTP/1.1\r\n\r\n"),
            Opening::Other
        );
        assert_eq!(
            opening(b"CONNECT user@pypi.org:443 HTTP/1.1\r\n\r\n"),
            Opening::Other
        );
        assert_eq!(opening(b"\x00\x01"), Opening::Other);
    }

    #[test]
    fn what_cannot_be_an_http_request_is_decided_at_once() {
        use Opening::{NeedMore, Other};
        for (bytes, expected) in [
            // Openings that only start with a capital: an SSH banner, a client's own message,
            // Redis's inline command, request lines that are not HTTP/1.
            (&b"SSH-2.0-OpenSSH_9.2\r\n"[..], Other),
            (b"SSH-", Other),
            (b"Q000", Other),
            (b"Q000000\0", Other),
            (b"PING\r\n", Other),
            (b"GET /a b", Other),
            (b"GET / HTTP/2", Other),
            (b"GET / HTTP/1.1x", Other),
            (b"GET  / HTTP/1.1", Other),
            (b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", Other),
            // What may still become a request waits for more.
            (b"G", NeedMore),
            (b"SSH", NeedMore),
            (b"GET", NeedMore),
            (b"GET ", NeedMore),
            (b"GET /simple/", NeedMore),
            (b"GET /simple/ HTTP/1.", NeedMore),
            (b"GET /simple/ HTTP/1.1\r", NeedMore),
            (b"GET /simple/ HTTP/1.1\r\n", NeedMore),
            (b"PROPFIND /x HTTP/1.0\r\nHost: a", NeedMore),
        ] {
            assert_eq!(
                opening(bytes),
                expected,
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn a_tunnel_waits_only_for_a_client_hello() {
        assert_eq!(tunnel_opening(b""), Opening::NeedMore);
        assert_eq!(tunnel_opening(b"\x16\x03\x01"), Opening::NeedMore);
        assert_eq!(tunnel_opening(b"G"), Opening::Other);
        assert_eq!(tunnel_opening(b"SSH-2.0-"), Opening::Other);
        assert_eq!(opening(b"\x00\x01"), Opening::Other);
    }

    #[test]
    fn a_port_is_digits_only() {
        assert_eq!(
            split_host_port("a.example:443"),
            Some(("a.example".into(), Some(443)))
        );
        for bad in [
            "a.example:+443",
            "a.example:65536",
            "a.example:",
            "a.example:4 43",
        ] {
            assert_eq!(split_host_port(bad), None, "{bad}");
        }
    }
}
