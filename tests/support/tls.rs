//! HTTPS on the host's loopback for tests: a CA and a server certificate (rcgen), and Python's
//! HTTPS server answering a fixed body.

use std::path::Path;

/// A CA, and a certificate it signed for `name`: (CA PEM, certificate PEM, key PEM).
pub fn ca_and_server(ca_name: &str, name: &str) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// An HTTPS server on the host's 127.0.0.1 (Python's), answering `body`; its port.
pub fn https_server(dir: &Path, cert: &str, key: &str, body: &str) -> (std::process::Child, u16) {
    https_server_on(dir, cert, key, body, 0)
}

/// The same on `port` (0: any free one).
pub fn https_server_on(
    dir: &Path,
    cert: &str,
    key: &str,
    body: &str,
    port: u16,
) -> (std::process::Child, u16) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("cert.pem"), cert).unwrap();
    std::fs::write(dir.join("key.pem"), key).unwrap();
    std::fs::write(dir.join("index.html"), body).unwrap();
    let script = "import http.server, ssl, sys, functools\n\
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])\n\
        server = http.server.HTTPServer(('127.0.0.1', int(sys.argv[2])), handler)\n\
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
        context.load_cert_chain(sys.argv[1] + '/cert.pem', sys.argv[1] + '/key.pem')\n\
        server.socket = context.wrap_socket(server.socket, server_side=True)\n\
        print(server.server_address[1], flush=True)\n\
        server.serve_forever()\n";
    let port = port.to_string();
    super::python_server(script, &[dir.as_os_str(), port.as_ref()])
}
