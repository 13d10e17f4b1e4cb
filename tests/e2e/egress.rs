//! The egress allow-list: `[network] allow` reaches the names it lists and nothing else, each
//! blocked attempt failing at once and named on stderr. Every server here is on the host's
//! loopback (reached with --host-loopback), and every blocked attempt stays inside the
//! sandbox's own network namespace.

use std::time::{Duration, Instant};

use crate::support::text;
use crate::support::tls::{ca_and_server, https_server};
use crate::support::TestEnv;

/// A project on a busybox image with `network` as its [network] table; an HTTPS server on
/// the host's loopback for `localhost` answering `body` (stopped when dropped) and its port.
struct Fixture {
    env: TestEnv,
    image: String,
    server: std::process::Child,
    port: u16,
    _registry: crate::support::Registry,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

impl Fixture {
    fn new(body: &str) -> Self {
        Self::with_entries(body, Vec::new())
    }

    /// With more entries in the image.
    fn with_entries(body: &str, extra: Vec<crate::support::oci::Entry>) -> Self {
        let env = TestEnv::new();
        // The host's /usr is mounted over the image's (-v), so its curl runs inside.
        let (registry, image) = crate::support::pulled_busybox(
            &env,
            "egress/busybox",
            [
                crate::support::oci::Entry::symlink("lib", "usr/lib"),
                crate::support::oci::Entry::symlink("lib64", "usr/lib64"),
            ]
            .into_iter()
            .chain(extra)
            .collect(),
        );
        let (_, cert, key) = ca_and_server("Test CA", "localhost");
        let (server, port) = https_server(&env.path().join("www"), &cert, &key, body);
        Fixture {
            env,
            image,
            server,
            port,
            _registry: registry,
        }
    }

    fn project(&self, network: &str) {
        self.env.write(
            "project/sandbox.toml",
            &format!(
                "[toolchain]\nimage = \"{}\"\n[network]\n{network}\n",
                self.image
            ),
        );
    }

    /// Runs `script` with --host-loopback: (status, stdout, stderr, how long it took).
    fn run(&self, extra: &[&str], script: &str) -> (Option<i32>, String, String, Duration) {
        let mut args = vec!["--host-loopback"];
        args.extend(extra);
        self.run_with(&args, script)
    }

    fn run_with(&self, extra: &[&str], script: &str) -> (Option<i32>, String, String, Duration) {
        let mut args = vec!["run", "-v", "/usr:/usr:ro"];
        args.extend(extra);
        args.extend(["--", "sh", "-c", script]);
        let started = Instant::now();
        let out = self.env.run(&args);
        (
            out.status.code(),
            text(&out.stdout),
            text(&out.stderr),
            started.elapsed(),
        )
    }
}

/// What a fetch of `url` inside prints (the host's curl; the test CA is not trusted inside).
fn fetch(url: &str) -> String {
    format!("/usr/bin/curl -sSk --max-time 20 {url} && echo FETCHED || echo FAILED")
}

#[test]
fn a_listed_name_is_reached_directly_and_through_the_proxy() {
    let f = Fixture::new("hello from the host\n");
    f.project(&format!("allow = [\"localhost:{}\"]", f.port));
    let url = format!("https://localhost:{}/", f.port);
    // Straight (the TLS server name says which name it is for), then through the proxy
    // variables sandbox sets (a CONNECT naming it).
    let (code, out, err, _) = f.run(
        &[],
        &format!(
            "env -u https_proxy -u HTTPS_PROXY {}; {}",
            fetch(&url),
            fetch(&url)
        ),
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out, "hello from the host\nFETCHED\nhello from the host\nFETCHED\n",
        "{err}"
    );
    assert!(!err.contains("blocked"), "{err}");
}

#[test]
fn unlisted_names_addresses_and_lookups_fail_at_once_and_are_named() {
    let f = Fixture::new("secret\n");
    // The server's port is listed, for another name: the connection is made and judged by
    // the name it is for.
    f.project(&format!("allow = [\"allowed.example:{}\"]", f.port));
    let port = f.port;
    let log = f.env.path().join("project/net.jsonl");
    let (code, out, err, took) = f.run(
        &["--network-log", "net.jsonl"],
        &format!(
            "{}; {}; env -u https_proxy -u HTTPS_PROXY {}; nslookup evil.example >/dev/null 2>&1 && echo RESOLVED || echo NXDOMAIN",
            fetch(&format!("https://localhost:{port}/")),
            fetch(&format!("https://127.0.0.1:{port}/")),
            fetch(&format!("https://localhost:{port}/")),
        ),
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "FAILED\nFAILED\nFAILED\nNXDOMAIN\n", "{err}");
    assert!(!out.contains("secret"));
    assert!(
        took < Duration::from_secs(15),
        "blocked at once, not timed out: {took:?}"
    );
    for needle in [
        format!("sandbox: blocked egress to localhost:{port} (not in [network].allow in sandbox.toml:4)"),
        format!("sandbox: blocked egress to 127.0.0.1:{port} (an address"),
        "sandbox: blocked egress to evil.example (not in [network].allow".to_owned(),
    ] {
        assert!(err.contains(&needle), "{needle} in {err}");
    }
    assert_eq!(
        err.matches(&format!("blocked egress to localhost:{port}"))
            .count(),
        1,
        "once per name and run: {err}"
    );
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "{log}"
    );
    assert!(
        log.contains("\"target\":\"evil.example\"") && log.contains("\"allowed\":false"),
        "{log}"
    );
}

/// A port no entry allows: the opening is refused at once, before anything is dialed, and
/// named. (Every address is local inside: the try never leaves the sandbox's namespace.)
#[test]
fn a_port_no_entry_allows_is_refused_at_once_and_named() {
    let f = Fixture::new("unused\n");
    f.project(&format!("allow = [\"localhost:{}\"]", f.port));
    let (code, out, err, took) = f.run(
        &["--network-log", "net.jsonl"],
        "nc -w 10 192.0.2.7 4444 </dev/null; echo refused=$?",
    );
    assert_eq!((code, out.as_str()), (Some(0), "refused=1\n"), "{err}");
    assert!(err.contains("Connection refused"), "{err}");
    assert!(
        err.contains(
            "sandbox: blocked egress to 192.0.2.7:4444 (not in [network].allow in sandbox.toml:4)"
        ),
        "{err}"
    );
    assert!(took < Duration::from_secs(8), "at once: {took:?}");
    let log = std::fs::read_to_string(f.env.path().join("project/net.jsonl")).unwrap();
    assert!(
        log.contains("\"target\":\"192.0.2.7:4444\",\"allowed\":false"),
        "{log}"
    );
}

#[test]
fn a_tunnel_whose_tls_name_is_not_its_connect_target_is_cut() {
    let f = Fixture::new("secret\n");
    f.project(&format!("allow = [\"localhost:{}\"]", f.port));
    // CONNECT to the listed name, then a ClientHello for another: the proxy's answer comes,
    // the server's never does.
    let hello = client_hello("evil.example");
    f.env.write_bytes("project/hello.bin", &hello);
    f.env.write(
        "project/connect.txt",
        &format!(
            "CONNECT localhost:{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
            f.port
        ),
    );
    let (code, out, err, took) = f.run(
        &[],
        "cat connect.txt hello.bin | nc 127.0.0.1 3128 | head -c 40",
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("HTTP/1.1 200"), "{out:?}");
    assert!(!out.contains('\u{16}'), "no TLS answer came back: {out:?}");
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert!(
        err.contains(&format!(
            "blocked egress to evil.example:{} (a TLS server name other than the CONNECT target localhost:{})",
            f.port, f.port
        )),
        "{err}"
    );
}

/// A ClientHello sent in two pieces, the first with the CONNECT head, is still read whole and
/// judged: a hello that is never finished is cut too, so neither slips a name past the check.
#[test]
fn a_tunnel_hello_split_from_its_connect_is_still_judged() {
    let f = Fixture::new("secret\n");
    f.project(&format!("allow = [\"localhost:{}\"]", f.port));
    let hello = client_hello("evil.example");
    let connect = format!(
        "CONNECT localhost:{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
        f.port
    );
    // One write: the head and the hello's first bytes; the rest comes later.
    let mut first = connect.into_bytes();
    first.extend(&hello[..9]);
    f.env.write_bytes("project/first.bin", &first);
    f.env.write_bytes("project/rest.bin", &hello[9..]);
    f.env.write_bytes("project/cut.bin", &first);
    let answer = "HTTP/1.1 200 Connection established\r\n\r\n";
    for (script, shown) in [
        (
            "{ cat first.bin; sleep 0.3; cat rest.bin; sleep 2; } | nc 127.0.0.1 3128",
            format!(
                "blocked egress to evil.example:{} (a TLS server name other than the CONNECT target localhost:{})",
                f.port, f.port
            ),
        ),
        (
            "cat cut.bin | nc 127.0.0.1 3128",
            format!(
                "blocked egress to localhost:{} (a TLS hello that never ended)",
                f.port
            ),
        ),
    ] {
        let (code, out, err, _) = f.run(&[], script);
        assert_eq!(code, Some(0), "{script}: {err}");
        assert_eq!(out, answer, "{script}: nothing but the proxy's answer");
        assert!(err.contains(&shown), "{script}: {err}");
    }
}

/// A TLS ClientHello naming `sni`.
fn client_hello(sni: &str) -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend([7u8; 32]);
    body.push(0);
    body.extend([0, 2, 0x13, 0x01]);
    body.extend([1, 0]);
    let n = sni.len() as u16;
    let mut ext = vec![0, 0];
    ext.extend((n + 5).to_be_bytes());
    ext.extend((n + 3).to_be_bytes());
    ext.push(0);
    ext.extend(n.to_be_bytes());
    ext.extend(sni.as_bytes());
    body.extend((ext.len() as u16).to_be_bytes());
    body.extend(ext);
    let mut handshake = vec![1, 0];
    handshake.extend((body.len() as u16).to_be_bytes());
    handshake.extend(body);
    let mut record = vec![0x16, 3, 1];
    record.extend((handshake.len() as u16).to_be_bytes());
    record.extend(handshake);
    record
}

/// pip and npm (the host's, from its /usr) reach PyPI and the npm registry with
/// `allow = ["@toolchain"]`; with PyPI's index alone, pip fails at its file host's lookup,
/// which is named. Needs those registries (these machines reach them through their egress):
/// `SANDBOX_TEST_SKIP_PACKAGE_REGISTRIES=1` leaves it out (see CONTRIBUTING.md).
#[test]
fn pip_and_npm_reach_their_registries_with_toolchain_and_nothing_more() {
    for tool in ["/usr/bin/python3", "/usr/bin/npm"] {
        assert!(
            std::path::Path::new(tool).exists(),
            "{tool} is missing: install Debian's python3-pip and npm (.ci/run does)"
        );
    }
    let env = TestEnv::new();
    let (_registry, image) = crate::support::pulled_busybox(
        &env,
        "egress/registries",
        vec![
            crate::support::oci::Entry::symlink("lib", "usr/lib"),
            crate::support::oci::Entry::symlink("lib64", "usr/lib64"),
        ],
    );
    let project = |toolchain: &str, allow: &str| {
        let version = if toolchain == "python" { "3.12" } else { "22" };
        env.write(
            "project/sandbox.toml",
            &format!(
                "[toolchain]\nname = \"{toolchain}\"\nversion = \"{version}\"\nimage = \"{image}\"\n[network]\nallow = [{allow}]\n"
            ),
        );
    };
    let run = |script: &str| {
        let out = env.run(&["run", "-v", "/usr:/usr:ro", "--", "sh", "-c", script]);
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    let pip =
        "python3 -m pip download --no-deps --no-cache-dir -q -d /tmp/dl six==1.16.0 && ls /tmp/dl";

    project("python", "\"@toolchain\"");
    let (code, out, err) = run(pip);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("six-1.16.0"), "{out}\n{err}");

    project("python", "\"pypi.org\"");
    let started = Instant::now();
    let (code, _, err) = run(&format!("{pip} --retries 0 --timeout 20"));
    assert_ne!(code, Some(0), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    assert!(
        err.contains("sandbox: blocked egress to files.pythonhosted.org"),
        "{err}"
    );

    project("node", "\"@toolchain\"");
    let (code, out, err) = run("npm view is-number@7.0.0 version");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "7.0.0", "{err}");
}

/// The user's own `[network] allow` holds for every project: one without a list gets it, one
/// may narrow it, and one going beyond it is refused at that entry until `sandbox trust`.
#[test]
fn the_users_own_list_is_a_floor_projects_go_beyond_only_when_trusted() {
    let f = Fixture::new("hello\n");
    let port = f.port;
    f.env.write(
        "config/sandbox/config.toml",
        &format!("[network]\nallow = [\"localhost:{port}\", \"*.corp.example\"]\n"),
    );
    let url = format!("https://localhost:{port}/");
    // No list of its own: the floor's.
    f.project("");
    let (code, out, err, _) = f.run(
        &[],
        &format!(
            "{}; nslookup evil.example >/dev/null 2>&1 || echo NXDOMAIN",
            fetch(&url)
        ),
    );
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "hello\nFETCHED\nNXDOMAIN\n"),
        "{err}"
    );
    // Narrower: fine.
    f.project(&format!(
        "allow = [\"localhost:{port}\", \"git.corp.example\"]"
    ));
    let (code, out, err, _) = f.run(&[], &fetch(&url));
    assert_eq!((code, out.as_str()), (Some(0), "hello\nFETCHED\n"), "{err}");
    // Wider: refused where it says so, then trusted.
    f.project(&format!(
        "allow = [\"localhost:{port}\",\n  \"evil.example\"]"
    ));
    let err = f.env.fails(&["run", "--", "true"]);
    assert!(err.contains("sandbox.toml:5:3"), "{err}");
    assert!(
        err.contains("`evil.example` is beyond your own [network].allow"),
        "{err}"
    );
    assert!(err.contains("sandbox trust"), "{err}");
    f.env.ok(&["trust"]);
    f.env.ok(&["run", "--", "true"]);
}

/// A listed name that resolves to the host's loopback is not dialed without --host-loopback:
/// a wildcard of the project's must not reach the host's own services.
#[test]
fn a_listed_name_on_the_hosts_loopback_needs_host_loopback() {
    let f = Fixture::new("host only\n");
    f.project(&format!("allow = [\"localhost:{}\"]", f.port));
    let (code, out, err, _) = f.run_with(&[], &fetch(&format!("https://localhost:{}/", f.port)));
    assert_eq!((code, out.as_str()), (Some(0), "FAILED\n"), "{err}");
    assert!(
        err.contains(&format!(
            "blocked egress to localhost:{} (it is the host itself, which the sandbox reaches only with --host-loopback)",
            f.port
        )),
        "{err}"
    );
}

/// Setup steps run with `setup_allow`: a step looking up another name fails, and says which.
#[test]
fn setup_steps_are_held_by_setup_allow() {
    let f = Fixture::new("x\n");
    f.env.write(
        "project/sandbox.toml",
        &format!(
            "setup = [\"nslookup evil.example\"]\n[toolchain]\nimage = \"{}\"\n[network]\nallow = [\"localhost\"]\nsetup_allow = [\"deb.debian.org\"]\n",
            f.image
        ),
    );
    let err = f.env.fails(&["run", "--", "true"]);
    assert!(err.contains("sandbox: blocked egress to evil.example (not in [network].setup_allow in sandbox.toml:6)"), "{err}");
    // The hint names the list to change, not the step.
    assert!(
        err.contains("hint: the step reached for evil.example, which the setup steps' allow-list does not name: add it to `setup_allow`"),
        "{err}"
    );
    assert!(!err.contains("fix the step"), "{err}");
}

/// Plain HTTP through the proxy variables reaches a server that knows no proxy requests
/// (busybox httpd on the host's loopback): the forwarder sends it the path, not the URL.
#[test]
fn plain_http_through_the_proxy_reaches_a_strict_server() {
    let f = Fixture::new("unused\n");
    let www = f.env.path().join("plain");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("file"), "plain hello\n").unwrap();
    let port = crate::support::registry::free_port();
    let mut httpd = std::process::Command::new("busybox")
        .args(["httpd", "-f", "-p", &format!("127.0.0.1:{port}"), "-h"])
        .arg(&www)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    f.project(&format!("allow = [\"localhost:{port}\"]"));
    let (code, out, err, _) = f.run(&[], &format!("wget -q -O - http://localhost:{port}/file"));
    let _ = httpd.kill();
    let _ = httpd.wait();
    assert_eq!((code, out.as_str()), (Some(0), "plain hello\n"), "{err}");
}

/// When the host itself goes out through a proxy (`https_proxy` where sandbox runs), the
/// forwarder dials through it: a CONNECT for the listed name reaches the host's proxy.
#[test]
fn the_forwarder_dials_through_the_hosts_own_proxy() {
    use std::io::{BufRead, Write};
    let f = Fixture::new("via the host's proxy\n");
    f.project(&format!("allow = [\"localhost:{}\"]", f.port));
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_port = proxy.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for client in proxy.incoming().flatten() {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut reader = std::io::BufReader::new(client.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                log.lock().unwrap().push(line.trim().to_owned());
                let mut header = String::new();
                while reader.read_line(&mut header).unwrap() > 2 {
                    header.clear();
                }
                let target = line.split(' ').nth(1).unwrap().to_owned();
                let upstream = std::net::TcpStream::connect(target).unwrap();
                let mut client = client;
                client.write_all(b"HTTP/1.1 200 OK\r\n\r\n").unwrap();
                let (mut up_read, mut up_write) = (upstream.try_clone().unwrap(), upstream);
                let mut down = client.try_clone().unwrap();
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut up_read, &mut down);
                    let _ = down.shutdown(std::net::Shutdown::Write);
                });
                let _ = std::io::copy(&mut reader, &mut up_write);
            });
        }
    });
    let url = format!("https://localhost:{}/", f.port);
    let out = f
        .env
        .command(&[
            "run",
            "--host-loopback",
            "-v",
            "/usr:/usr:ro",
            "--",
            "sh",
            "-c",
            &fetch(&url),
        ])
        .env("https_proxy", format!("http://127.0.0.1:{proxy_port}"))
        .output()
        .unwrap();
    assert_eq!(
        text(&out.stdout),
        "via the host's proxy\nFETCHED\n",
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [format!("CONNECT localhost:{} HTTP/1.1", f.port)]
    );
}

/// `@debian` reaches the mirrors the image's own apt sources name (here one on the host's
/// loopback); without the preset it does not; a sources file that is a link out of the image
/// is not followed.
#[test]
fn a_distribution_preset_reaches_the_images_own_mirrors() {
    let port = crate::support::registry::free_port();
    let sources = format!("deb https://localhost:{port}/debian bookworm main\n");
    // A host file naming another server, which a link in the image points at.
    let outside = tempfile::NamedTempFile::new().unwrap();
    let mut f = Fixture::with_entries(
        "from the image's mirror\n",
        vec![
            crate::support::oci::Entry::dir("etc/apt"),
            crate::support::oci::Entry::file("etc/apt/sources.list", sources.as_bytes()),
            crate::support::oci::Entry::dir("etc/apt/sources.list.d"),
            crate::support::oci::Entry::symlink(
                "etc/apt/sources.list.d/evil.list",
                &outside.path().display().to_string(),
            ),
        ],
    );
    let (_, other_cert, other_key) = ca_and_server("Test CA", "localhost");
    let (mut other, other_port) = https_server(
        &f.env.path().join("other"),
        &other_cert,
        &other_key,
        "not for the sandbox\n",
    );
    std::fs::write(
        outside.path(),
        format!("deb https://localhost:{other_port}/debian bookworm main\n"),
    )
    .unwrap();
    // Readable by the test user: only the link's refusal keeps it out.
    std::fs::set_permissions(
        outside.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    // The server on the port the image names.
    let _ = f.server.kill();
    let _ = f.server.wait();
    let (_, cert, key) = ca_and_server("Test CA", "localhost");
    let (server, _) = crate::support::tls::https_server_on(
        &f.env.path().join("mirror"),
        &cert,
        &key,
        "from the image's mirror\n",
        port,
    );
    f.server = server;
    let url = format!("https://localhost:{port}/");
    f.project("allow = [\"@debian\"]");
    let (code, out, err, _) = f.run(
        &[],
        &format!(
            "{}; {}",
            fetch(&url),
            fetch(&format!("https://localhost:{other_port}/"))
        ),
    );
    let _ = other.kill();
    let _ = other.wait();
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "from the image's mirror\nFETCHED\nFAILED\n"),
        "{err}"
    );
    f.project("allow = [\"deb.debian.org\"]");
    let (code, out, err, _) = f.run(&[], &fetch(&url));
    assert_eq!((code, out.as_str()), (Some(0), "FAILED\n"), "{err}");
}

/// A flood of connections that never say what they are for costs the sandbox its own
/// connections, not the forwarder: a fetch afterwards still goes through.
#[test]
fn a_flood_of_silent_connections_does_not_take_the_forwarder_down() {
    let f = Fixture::new("still here\n");
    f.project(&format!("allow = [\"localhost:{}\"]", f.port));
    let url = format!("https://localhost:{}/", f.port);
    let (code, out, err, _) = f.run(
        &[],
        &format!(
            "for i in $(seq 700); do (sleep 3 | nc 127.0.0.1 {} >/dev/null 2>&1 &); done; sleep 1; {}",
            f.port,
            fetch(&url)
        ),
    );
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "still here\nFETCHED\n"),
        "{err}"
    );
}

/// A sandbox with an allow-list still publishes ports: the keeper relays them itself.
#[test]
fn a_sandbox_with_an_allow_list_publishes_its_ports() {
    use std::io::{Read, Write};
    let f = Fixture::new("unused\n");
    f.project("allow = [\"pypi.org\"]");
    f.env.write("project/www/index.html", "served inside\n");
    let port = crate::support::registry::free_port();
    let www = f.env.path().join("project/www").display().to_string();
    let mut server = f
        .env
        .command(&[
            "run",
            "-p",
            &format!("{port}:8000"),
            "--",
            "busybox",
            "httpd",
            "-f",
            "-p",
            "8000",
            "-h",
            &www,
        ])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let page = loop {
        let got = std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .and_then(|mut s| {
                s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
                s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").ok()?;
                let mut out = String::new();
                s.read_to_string(&mut out).ok()?;
                out.contains("200 OK").then_some(out)
            });
        if let Some(page) = got {
            break page;
        }
        assert!(
            Instant::now() < deadline,
            "the published port never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    crate::support::signal(server.id() as i32, libc::SIGTERM);
    let _ = server.wait();
    assert!(page.ends_with("served inside\n"), "{page}");
}

/// An /etc/hosts and a resolv.conf naming a closed loopback port, so the keeper's lookups
/// stay on the machine: (hosts, resolv.conf) paths to bind.
fn private_names(f: &Fixture, hosts: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    (
        f.env
            .write("etc-hosts", &format!("127.0.0.1 localhost\n{hosts}")),
        f.env.write("etc-resolv.conf", "nameserver 127.0.0.9\n"),
    )
}

impl Fixture {
    /// `run_with` in a private mount namespace with `hosts` as /etc/hosts, and `env` added
    /// (the host's own variables, e.g. its proxy).
    fn run_private(
        &self,
        hosts: &str,
        env: &[(&str, &str)],
        extra: &[&str],
        script: &str,
    ) -> (Option<i32>, String, String) {
        let (hosts, resolv) = private_names(self, hosts);
        let mut args = vec!["run", "-v", "/usr:/usr:ro"];
        args.extend(extra);
        args.extend(["--", "sh", "-c", script]);
        let mut inner = self.env.command(&args);
        inner.envs(env.iter().copied());
        let out = crate::support::env::in_private_mounts(
            &inner,
            &[(&hosts, "/etc/hosts"), (&resolv, "/etc/resolv.conf")],
        )
        .output()
        .unwrap();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    }
}

/// A listed name whose only address is the host's loopback written as IPv6 (`::ffff:127.0.0.1`,
/// `::ffff:0.0.0.0`) is the host itself: refused straight and through the proxy. (An
/// IPv4-mapped address is not `is_loopback()`: the host's 127.0.0.1 service answered.)
#[test]
fn a_listed_name_on_a_mapped_ipv6_address_of_the_host_is_refused() {
    assert!(
        std::net::TcpListener::bind("[::1]:0").is_ok(),
        "this test needs IPv6 on the host (net.ipv6.conf.all.disable_ipv6=0): the attack dials \
         an IPv4-mapped IPv6 address"
    );
    let f = Fixture::new("the host's own service\n");
    let port = f.port;
    f.project(&format!(
        "allow = [\"mapped.rt.test:{port}\", \"zeros.rt.test:{port}\"]"
    ));
    for name in ["mapped.rt.test", "zeros.rt.test"] {
        let url = format!("https://{name}:{port}/");
        let script = format!(
            "env -u https_proxy -u HTTPS_PROXY /usr/bin/curl -sSk --max-time 20 --resolve {name}:{port}:10.9.9.9 {url} && echo FETCHED || echo FAILED; {}",
            fetch(&url)
        );
        let (code, out, err) = f.run_private(
            "::ffff:127.0.0.1 mapped.rt.test\n::ffff:0.0.0.0 zeros.rt.test\n",
            &[],
            &[],
            &script,
        );
        assert_eq!(
            (code, out.as_str()),
            (Some(0), "FAILED\nFAILED\n"),
            "{name}: {err}"
        );
        assert!(
            err.contains(&format!(
                "blocked egress to {name}:{port} (it is the host itself, which the sandbox reaches only with --host-loopback)"
            )),
            "{name}: {err}"
        );
    }
}

/// A stand-in for a host's proxy (cntlm, px, a lax squid): it logs each request line to
/// `log`, and tunnels every CONNECT to `to` on 127.0.0.1, whatever it names. (process, port)
fn lax_proxy(dir: &std::path::Path, to: u16) -> (std::process::Child, u16) {
    std::fs::create_dir_all(dir).unwrap();
    let script = r#"
import socket, sys, threading
log = open(sys.argv[1], "ab", buffering=0)
to = int(sys.argv[2])
server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen(16)
print(server.getsockname()[1], flush=True)
def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d: break
            b.sendall(d)
    except OSError: pass
    try: b.shutdown(socket.SHUT_WR)
    except OSError: pass
def serve(c):
    head = b""
    while b"\r\n\r\n" not in head:
        d = c.recv(4096)
        if not d: return
        head += d
    log.write(head.split(b"\r\n\r\n")[0] + b"\n--\n")
    u = socket.create_connection(("127.0.0.1", to))
    c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
    rest = head.split(b"\r\n\r\n", 1)[1]
    if rest: u.sendall(rest)
    threading.Thread(target=pipe, args=(u, c), daemon=True).start()
    pipe(c, u)
while True:
    c, _ = server.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;
    let log = dir.join("requests.log");
    let to = to.to_string();
    crate::support::python_server(script, &[log.as_os_str(), to.as_ref()])
}

/// With the host's `https_proxy` set, the host itself is still judged first: a listed name
/// resolving to the host gets no CONNECT at the proxy; a malformed TLS server name is refused
/// before it is matched or written into a CONNECT line; a name the host cannot resolve goes to
/// the proxy (a company's hosts often resolve nothing outside). (The proxy got `CONNECT
/// localhost:PORT`, and the name `localhost:18932 http/1.1\r\nx: a.rt.test` matched
/// `*.rt.test` and went into the CONNECT line verbatim.)
#[test]
fn the_hosts_proxy_never_dials_the_host_or_a_malformed_name() {
    let f = Fixture::new("through the proxy\n");
    let port = f.port;
    let dir = f.env.path().join("proxy");
    let (mut proxy, proxy_port) = lax_proxy(&dir, port);
    f.project(&format!(
        "allow = [\"localhost:{port}\", \"*.rt.test:{port}\"]"
    ));
    let host_proxy = format!("http://127.0.0.1:{proxy_port}");
    let script = format!(
        "{local}; sni=$(printf 'localhost:18932 http/1.1\\r\\nx: a.rt.test'); \
         /usr/bin/openssl s_client -connect 10.9.9.9:{port} -servername \"$sni\" </dev/null >/dev/null 2>&1; \
         env -u https_proxy -u HTTPS_PROXY /usr/bin/curl -sSk --max-time 20 --resolve nowhere.rt.test:{port}:10.9.9.9 https://nowhere.rt.test:{port}/ && echo FETCHED || echo FAILED",
        local = fetch(&format!("https://localhost:{port}/")),
    );
    let (code, out, err) = f.run_private("", &[("https_proxy", host_proxy.as_str())], &[], &script);
    let _ = proxy.kill();
    let _ = proxy.wait();
    let asked = std::fs::read_to_string(dir.join("requests.log")).unwrap_or_default();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "FAILED\nthrough the proxy\nFETCHED\n", "{err}");
    assert!(
        err.contains(&format!(
            "blocked egress to localhost:{port} (it is the host itself"
        )),
        "{err}"
    );
    assert!(
        err.contains(
            "blocked egress to malformed name \"localhost:18932 http/1.1\\r\\nx: a.rt.test\""
        ),
        "{err}"
    );
    assert_eq!(
        asked,
        format!("CONNECT nowhere.rt.test:{port} HTTP/1.1\r\nHost: nowhere.rt.test:{port}\n--\n"),
        "what the host's proxy was asked"
    );
}
