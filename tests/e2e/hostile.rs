//! A registry that lies: each case must end in a clear error (exit 125), nothing written outside
//! the store, and no half object left in it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::support::hostile::{image_routes, ranged, serve_routes, HostileServer, Reply, Request};
use crate::support::oci::{self, Compression, Entry, ImageSpec, LayerSpec};
use crate::support::TestEnv;

fn small_image() -> oci::BuiltImage {
    oci::build(&ImageSpec {
        layers: vec![LayerSpec {
            entries: vec![
                Entry::dir("etc"),
                Entry::file("etc/data", &vec![7u8; 200_000]),
            ],
            compression: Compression::Gzip,
        }],
        architecture: oci::host_arch().into(),
    })
}

fn image_with(entries: Vec<Entry>) -> oci::BuiltImage {
    oci::build(&ImageSpec {
        layers: vec![LayerSpec {
            entries,
            compression: Compression::None,
        }],
        architecture: oci::host_arch().into(),
    })
}

/// Serves `image` as `evil/app:latest`, letting `tweak` answer first.
fn serve(
    image: &oci::BuiltImage,
    tweak: impl Fn(&Request, &HashMap<String, (String, Vec<u8>)>) -> Option<Reply>
        + Send
        + Sync
        + 'static,
) -> HostileServer {
    let routes = image_routes("evil/app", "latest", image);
    HostileServer::start(move |req| {
        tweak(req, &routes).unwrap_or_else(|| serve_routes(req, &routes))
    })
}

fn reference(server: &HostileServer) -> String {
    format!("{}/evil/app:latest", server.host())
}

/// What every failure must leave: no image, no layer, nothing in tmp/.
fn assert_nothing_kept(env: &TestEnv) {
    env.assert_store_consistent();
    assert!(
        env.store_entries("layers").is_empty(),
        "layers: {:?}",
        env.store_entries("layers")
    );
    assert!(env.images().is_empty());
}

#[test]
fn a_blob_with_the_wrong_digest_is_refused_and_not_kept() {
    let env = TestEnv::new();
    let image = small_image();
    let layer = image.layers[0].digest.clone();
    let server = serve(&image, move |req, _| {
        // Same length, other bytes: only the hash can tell.
        req.path
            .ends_with(&layer)
            .then(|| Reply::body(200, "application/octet-stream", vec![0x1f; image_len()]))
    });
    fn image_len() -> usize {
        small_image().layers[0].blob.len()
    }
    let err = env.fails(&["pull", &reference(&server)]);
    assert!(
        err.contains(&format!("layer {}", image.layers[0].digest)),
        "{err}"
    );
    assert!(
        err.contains("does not match its digest") || err.contains("is corrupt"),
        "{err}"
    );
    assert_nothing_kept(&env);
}

#[test]
fn a_truncated_blob_is_resumed_with_range_or_reported_with_byte_counts() {
    let image = small_image();
    let layer = image.layers[0].digest.clone();
    let total = image.layers[0].blob.len();

    // Cut once, then honour Range: the pull completes.
    let env = TestEnv::new();
    let cuts = Arc::new(AtomicUsize::new(0));
    let (c, l) = (cuts.clone(), layer.clone());
    let server = serve(&image, move |req, routes| {
        if req.path.ends_with(&l)
            && req.header("range").is_none()
            && c.fetch_add(1, Ordering::SeqCst) == 0
        {
            let body = routes[&req.path].1.clone();
            return Some(Reply::Truncated {
                headers: vec![],
                send: body.len() / 2,
                body,
            });
        }
        None
    });
    env.ok(&["pull", &reference(&server)]);
    let ranges: Vec<_> = server
        .requests()
        .into_iter()
        .filter_map(|r| r.header("range").map(str::to_owned))
        .collect();
    assert_eq!(
        ranges,
        vec![format!("bytes={}-", total / 2)],
        "resumed where it broke"
    );
    env.assert_store_consistent();

    // Always cut, Range ignored: a clear error with the byte counts.
    let env = TestEnv::new();
    let server = serve(&image, move |req, routes| {
        req.path.ends_with(&layer).then(|| {
            let body = routes[&req.path].1.clone();
            Reply::Truncated {
                headers: vec![],
                send: body.len() / 3,
                body,
            }
        })
    });
    let err = env.fails(&["pull", &reference(&server)]);
    assert!(
        err.contains(&format!(
            "the connection broke after {} of {total} bytes",
            total / 3
        )),
        "{err}"
    );
    assert_nothing_kept(&env);
}

#[test]
fn a_registry_that_stalls_mid_blob_is_resumed_or_named_never_waited_on_forever() {
    let image = small_image();
    let layer = image.layers[0].digest.clone();
    let total = image.layers[0].blob.len();
    // Half of what is asked for (from the Range's start), then silence.
    let stalled = |req: &crate::support::hostile::Request, body: Vec<u8>| {
        let from = req
            .header("range")
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.trim_end_matches('-').parse::<usize>().ok());
        let (status, headers, rest) = match from {
            Some(from) => (
                206,
                vec![(
                    "Content-Range".to_owned(),
                    format!("bytes {from}-{}/{}", body.len() - 1, body.len()),
                )],
                body[from..].to_vec(),
            ),
            None => (200, Vec::new(), body),
        };
        Reply::Stalled {
            status,
            headers,
            send: rest.len() / 2,
            body: rest,
            stall: std::time::Duration::from_secs(30),
        }
    };
    // Stalls once: the idle read gives up and resumes with Range.
    let env = TestEnv::new();
    let stalls = Arc::new(AtomicUsize::new(0));
    let (s, l) = (stalls.clone(), layer.clone());
    let server = serve(&image, move |req, routes| {
        (req.path.ends_with(&l)
            && req.header("range").is_none()
            && s.fetch_add(1, Ordering::SeqCst) == 0)
            .then(|| stalled(req, routes[&req.path].1.clone()))
    });
    let out = env
        .command(&["pull", &reference(&server)])
        .env("SANDBOX_PULL_IDLE_TIMEOUT", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.assert_store_consistent();

    // Stalls every time: a clear error naming the registry, the blob and the stall.
    let env = TestEnv::new();
    let server = serve(&image, move |req, routes| {
        req.path
            .ends_with(&layer)
            .then(|| stalled(req, routes[&req.path].1.clone()))
    });
    let started = std::time::Instant::now();
    let out = env
        .command(&["pull", &reference(&server)])
        .env("SANDBOX_PULL_IDLE_TIMEOUT", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(
        err.contains(&format!("from {}", server.host()))
            && err.contains("the registry stalled, sending nothing for 1 s after"),
        "{err}"
    );
    assert!(err.contains(&format!("of {total} bytes")), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(25),
        "the pull waited on the stall"
    );
    assert_nothing_kept(&env);
}

#[test]
fn a_server_error_is_retried() {
    let env = TestEnv::new();
    let image = small_image();
    let failures = Arc::new(AtomicUsize::new(0));
    let f = failures.clone();
    let server = serve(&image, move |req, _| {
        (req.path.contains("/manifests/") && f.fetch_add(1, Ordering::SeqCst) == 0)
            .then(|| Reply::status(500))
    });
    env.ok(&["pull", &reference(&server)]);
    assert_eq!(failures.load(Ordering::SeqCst), 2, "one 500, then success");
}

#[test]
fn a_redirect_to_another_host_never_carries_the_credentials() {
    let env = TestEnv::new();
    let image = small_image();
    let layer = image.layers[0].digest.clone();
    let blob = image.layers[0].blob.clone();
    // The "CDN" on another loopback address serves the blob.
    let cdn = HostileServer::start_on("127.0.0.2", move |req| {
        ranged(req, "application/octet-stream", &blob)
    });
    let cdn_host = format!("127.0.0.2:{}", cdn.port);
    let server = serve(&image, move |req, _| {
        // Basic auth is required for everything on the registry itself.
        if req.header("authorization") != Some("Basic dXNlcjpzM2NyZXQ=") {
            return Some(
                Reply::status(401).with_header("WWW-Authenticate", r#"Basic realm="test""#),
            );
        }
        req.path
            .ends_with(&layer)
            .then(|| Reply::status(307).with_header("Location", &format!("http://{cdn_host}/blob")))
    });
    // Credentials from containers' auth.json under $XDG_RUNTIME_DIR, as podman leaves them.
    env.write(
        "run/containers/auth.json",
        &format!(
            r#"{{"auths":{{"{}":{{"auth":"dXNlcjpzM2NyZXQ="}}}}}}"#,
            server.host()
        ),
    );
    env.ok(&["pull", &reference(&server)]);
    let cdn_requests = cdn.requests();
    assert_eq!(cdn_requests.len(), 1);
    assert_eq!(
        cdn_requests[0].header("authorization"),
        None,
        "credentials leaked to the redirect target"
    );
    assert!(server
        .requests()
        .iter()
        .any(|r| r.header("authorization").is_some()));
}

/// A registry using Docker Hub's token flow; `private` repos need user/pass at the token service.
fn token_registry(image: &oci::BuiltImage, private: bool) -> HostileServer {
    let routes = image_routes("evil/app", "latest", image);
    let port_cell = Arc::new(std::sync::OnceLock::<u16>::new());
    let port = port_cell.clone();
    let server = HostileServer::start(move |req| {
        let me = port.get().copied().unwrap_or(0);
        if req.path.starts_with("/token") {
            if !req.path.contains("scope=repository%3Aevil%2Fapp%3Apull")
                && req.path.contains("scope=")
            {
                return Reply::status(400);
            }
            if private && req.header("authorization") != Some("Basic YWxpY2U6d29uZGVybGFuZA==") {
                // As Docker Hub's token service words it.
                return Reply::body(
                    401,
                    "application/json",
                    br#"{"details":"incorrect username or password"}"#.to_vec(),
                );
            }
            return Reply::body(200, "application/json", br#"{"token":"t0ken"}"#.to_vec());
        }
        if req.header("authorization") != Some("Bearer t0ken") {
            return Reply::status(401).with_header(
                "WWW-Authenticate",
                &format!(r#"Bearer realm="http://127.0.0.1:{me}/token",service="test",scope="repository:evil/app:pull""#),
            );
        }
        serve_routes(req, &routes)
    });
    port_cell.set(server.port).unwrap();
    server
}

#[test]
fn the_bearer_token_flow_works_anonymously_and_with_credentials() {
    let image = small_image();

    let env = TestEnv::new();
    let public = token_registry(&image, false);
    env.ok(&["pull", &reference(&public)]);

    let env = TestEnv::new();
    let private = token_registry(&image, true);
    let err = env.fails(&["pull", &reference(&private)]);
    assert!(
        err.contains(&format!("registry {} denied access", private.host())),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "hint: log in first: `sandbox login {}`",
            private.host()
        )),
        "{err}"
    );
    assert_nothing_kept(&env);

    // A wrong password is refused by login itself and nothing is stored.
    let mut login = env.command(&["login", &private.host(), "-u", "alice", "--password-stdin"]);
    let out = feed(&mut login, b"wrong\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    // The registry named, and the server's own reason kept.
    assert!(
        stderr.contains(&format!(
            "registry {} refused the credentials: the token service refused: 401 Unauthorized: incorrect username or password",
            private.host()
        )) && stderr.contains("hint: check the user name and password"),
        "{stderr}"
    );
    assert!(!env.config_dir().join("sandbox/auth.json").exists());

    let mut login = env.command(&["login", &private.host(), "-u", "alice", "--password-stdin"]);
    let out = feed(&mut login, b"wonderland\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(env.config_dir().join("sandbox/auth.json"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    env.ok(&["pull", &reference(&private)]);
    // The token endpoint got the password; the registry only ever saw the token.
    assert!(private
        .requests()
        .iter()
        .filter(|r| !r.path.starts_with("/token"))
        .all(|r| r
            .header("authorization")
            .is_none_or(|a| a.starts_with("Bearer"))));

    env.ok(&["logout", &private.host()]);
    env.ok(&["rmi", &reference(&private)]);
    let err = env.fails(&["pull", &reference(&private)]);
    assert!(err.contains("denied access"), "{err}");
}

fn feed(cmd: &mut std::process::Command, input: &[u8]) -> std::process::Output {
    use std::io::Write as _;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn manifests_over_4_mib_unknown_tags_and_schema1_are_refused_by_name() {
    let env = TestEnv::new();
    let image = small_image();
    let server = serve(&image, |req, _| {
        if req.path.ends_with("/manifests/huge") {
            let mut body = br#"{"schemaVersion":2,"layers":[],"x":""#.to_vec();
            body.resize(5 * 1024 * 1024, b'a');
            return Some(Reply::body(200, oci::MANIFEST_TYPE, body));
        }
        if req.path.ends_with("/manifests/old") {
            return Some(Reply::body(
                200,
                "application/vnd.docker.distribution.manifest.v1+prettyjws",
                br#"{"schemaVersion":1}"#.to_vec(),
            ));
        }
        if req.path.ends_with("/manifests/missing") {
            return Some(Reply::body(
                404,
                "application/json",
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#
                    .to_vec(),
            ));
        }
        None
    });
    let host = server.host();
    let err = env.fails(&["pull", &format!("{host}/evil/app:huge")]);
    assert!(err.contains("larger than the 4194304-byte limit"), "{err}");
    let err = env.fails(&["pull", &format!("{host}/evil/app:old")]);
    assert!(err.contains("schema 1 manifest"), "{err}");
    let err = env.fails(&["pull", &format!("{host}/evil/app:missing")]);
    assert!(err.contains(&format!("image {host}/evil/app:missing not found on registry {host}: MANIFEST_UNKNOWN: manifest unknown")), "{err}");
    assert_nothing_kept(&env);
}

#[test]
fn unsupported_layer_types_and_unreachable_hosts_are_named() {
    let env = TestEnv::new();
    let mut image = small_image();
    let manifest = String::from_utf8(image.manifest.clone())
        .unwrap()
        .replace("tar+gzip", "tar+lz4");
    image.manifest = manifest.into_bytes();
    image.manifest_digest = oci::digest(&image.manifest);
    let server = serve(&image, |_, _| None);
    let err = env.fails(&["pull", &reference(&server)]);
    assert!(
        err.contains("unsupported media type `application/vnd.oci.image.layer.v1.tar+lz4`"),
        "{err}"
    );

    let closed = crate::support::registry::free_port();
    let err = env.fails(&["pull", &format!("127.0.0.1:{closed}/x/y")]);
    assert!(
        err.contains(&format!(
            "cannot reach registry 127.0.0.1:{closed}: connection failed"
        )),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    assert_nothing_kept(&env);
}

/// A directory outside the store that hostile layers aim at; it must stay empty.
fn victim(env: &TestEnv) -> std::path::PathBuf {
    let dir = env.path().join("victim");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("keep"), "original").unwrap();
    env.give_to_user(&dir);
    dir
}

fn assert_victim_untouched(dir: &std::path::Path) {
    let names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("keep")],
        "something was written outside the store"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("keep")).unwrap(),
        "original"
    );
}

#[test]
fn layers_that_try_to_leave_their_root_are_refused() {
    let env = TestEnv::new();
    let target = victim(&env);
    let t = target.to_str().unwrap().to_owned();
    let up = "../".repeat(12) + t.trim_start_matches('/');
    let cases: Vec<(&str, Vec<Entry>, String)> = vec![
        (
            "dotdot",
            vec![Entry::raw_file(format!("{up}/pwned").as_bytes(), b"x")],
            "`..` would leave the layer root".into(),
        ),
        (
            "absolute",
            vec![Entry::raw_file(format!("{t}/pwned").as_bytes(), b"x")],
            "absolute paths are not allowed".into(),
        ),
        (
            "through-symlink",
            vec![
                Entry::symlink("escape", &t),
                Entry::raw_file(b"escape/pwned", b"x"),
            ],
            "its parent `escape` is a symlink".into(),
        ),
        (
            "hardlink-out",
            vec![Entry::raw_link(
                b"h",
                tar::EntryType::Link,
                format!("{up}/keep").as_bytes(),
            )],
            "hard link target outside the layer".into(),
        ),
        (
            "hardlink-absolute",
            vec![Entry::raw_link(b"h", tar::EntryType::Link, b"/etc/passwd")],
            "hard link target outside the layer".into(),
        ),
        (
            "root-symlink",
            vec![Entry::raw_link(b".", tar::EntryType::Symlink, t.as_bytes())],
            "refusing to change the type of the layer root".into(),
        ),
        (
            "bad-whiteout",
            vec![Entry::dir("etc"), Entry::raw_file(b"etc/.wh..", b"")],
            "invalid whiteout name".into(),
        ),
    ];
    for (name, entries, expected) in cases {
        let image = image_with(entries);
        let server = serve(&image, |_, _| None);
        let err = env.fails(&["pull", &reference(&server)]);
        assert!(
            err.contains(&format!("layer {}", image.layers[0].digest)),
            "{name}: {err}"
        );
        assert!(
            err.contains(&expected),
            "{name}: expected `{expected}` in: {err}"
        );
        assert_victim_untouched(&target);
        assert_nothing_kept(&env);
    }
}

#[test]
fn a_directory_entry_replaces_a_symlink_instead_of_following_it() {
    // CVE-2026-33056: `foo -> /outside` then directory `foo/.` must not chmod the outside dir.
    let env = TestEnv::new();
    let target = victim(&env);
    std::fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let image = image_with(vec![
        Entry::symlink("escape", target.to_str().unwrap()),
        Entry::Dir {
            path: "escape/.".into(),
            mode: 0o777,
            uid: 0,
            gid: 0,
        },
        Entry::raw_file(b"escape/x", b"x"),
    ]);
    let server = serve(&image, |_, _| None);
    env.ok(&["pull", &reference(&server)]);
    assert_victim_untouched(&target);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&target).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700, "the outside directory's mode changed");
    let layer = env
        .store()
        .join("layers")
        .join(image.layers[0].diff_id.trim_start_matches("sha256:"))
        .join("root");
    assert!(std::fs::symlink_metadata(layer.join("escape"))
        .unwrap()
        .is_dir());
    assert_eq!(
        std::fs::read_to_string(layer.join("escape/x")).unwrap(),
        "x"
    );
}

#[test]
fn a_pinned_digest_answered_with_other_bytes_is_refused() {
    let env = TestEnv::new();
    let image = small_image();
    let pinned = format!("sha256:{}", "a".repeat(64));
    let p = pinned.clone();
    let server = serve(&image, move |req, routes| {
        req.path.ends_with(&p).then(|| {
            Reply::body(
                200,
                oci::MANIFEST_TYPE,
                routes["/v2/evil/app/manifests/latest"].1.clone(),
            )
        })
    });
    let err = env.fails(&["pull", &format!("{}/evil/app@{pinned}", server.host())]);
    assert!(
        err.contains(&format!(
            "manifest {pinned} from {} does not match its digest (got {})",
            server.host(),
            image.manifest_digest
        )),
        "{err}"
    );
    assert_nothing_kept(&env);
}

#[test]
fn hostile_config_fields_steer_nothing_on_the_host() {
    let env = TestEnv::new();
    let image = oci::build(&ImageSpec {
        layers: vec![LayerSpec {
            entries: oci::busybox_entries(),
            compression: Compression::Gzip,
        }],
        architecture: oci::host_arch().into(),
    });
    let victim = env.home().join(".ssh");
    std::fs::create_dir_all(&victim).unwrap();
    let hostile = oci::rewrite(
        &image,
        |config| {
            let c = &mut config["config"];
            c["User"] = "4294967296".into();
            c["WorkingDir"] = "/../../../../".into();
            c["Volumes"] = serde_json::json!({ format!("/../../../..{}", victim.display()): {} });
            c["Labels"] = serde_json::json!({ "big": "x".repeat(200_000), "org.sandbox.cmd": "touch /tmp/pwned" });
        },
        |_| {},
    );
    let server = serve(&hostile, |_, _| None);
    let reference = reference(&server);
    let out = env.run(&[
        "run",
        "--network",
        "none",
        "--image",
        &reference,
        "--",
        "sh",
        "-c",
        "id -u; pwd",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The user is yourself (never uid 0 through an overflow), in the project dir.
    assert_eq!(stdout.lines().next(), Some(env.uid().to_string().as_str()));
    assert_eq!(
        stdout.lines().nth(1),
        Some(env.path().join("project").display().to_string().as_str())
    );
    assert_eq!(
        std::fs::read_dir(&victim).unwrap().count(),
        0,
        "a volume reached the host"
    );
    assert!(!std::path::Path::new("/tmp/pwned").exists());
}

#[test]
fn descriptor_urls_are_never_fetched() {
    let env = TestEnv::new();
    let image = small_image();
    let logger = HostileServer::start(|_| Reply::status(404));
    let url = format!("http://{}/steal", logger.host());
    let hostile = oci::rewrite(
        &image,
        |_| {},
        |manifest| {
            manifest["layers"][0]["urls"] = serde_json::json!([url]);
        },
    );
    let server = serve(&hostile, |_, _| None);
    env.ok(&["pull", &reference(&server)]);
    assert!(
        logger.requests().is_empty(),
        "a descriptor's urls were fetched: {:?}",
        logger.requests().len()
    );
}

#[test]
fn a_zstd_layer_asking_for_a_huge_window_fails_at_once() {
    let env = TestEnv::new();
    // A zstd frame whose header asks for a 2 GiB window (window log 31), then an empty last
    // raw block: a decoder that believed it would allocate that much.
    let bomb = vec![0x28, 0xB5, 0x2F, 0xFD, 0x00, 0xA8, 0x01, 0x00, 0x00];
    let image = oci::build(&ImageSpec {
        layers: vec![LayerSpec {
            entries: vec![Entry::file("f", b"x")],
            compression: Compression::Zstd,
        }],
        architecture: oci::host_arch().into(),
    });
    let bomb_digest = oci::digest(&bomb);
    let hostile = oci::rewrite(
        &image,
        |_| {},
        |manifest| {
            manifest["layers"][0]["digest"] = bomb_digest.clone().into();
            manifest["layers"][0]["size"] = bomb.len().into();
        },
    );
    let path = format!("/v2/evil/app/blobs/{bomb_digest}");
    let body = bomb.clone();
    let server = serve(&hostile, move |req, _| {
        (req.path == path).then(|| Reply::body(200, "application/octet-stream", body.clone()))
    });
    let started = std::time::Instant::now();
    let err = env.fails(&["pull", &reference(&server)]);
    assert!(
        err.contains(&bomb_digest),
        "the error names the layer: {err}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert_nothing_kept(&env);
}

/// A 30 KB layer cannot fill the disk. A GNU sparse file of 3 GiB that is all hole keeps its
/// hole (it was written as 3 GiB of real blocks); a zstd layer of 100 MiB of zeros (a few
/// KB) is stopped at the layer's limit, named, with nothing kept, and unpacks when the user
/// raises the limit.
#[test]
fn a_small_layer_cannot_fill_the_disk() {
    let env = TestEnv::new();
    let size = 3u64 << 30;
    let sparse = oci::build(&ImageSpec {
        layers: vec![LayerSpec {
            entries: vec![
                Entry::dir("var"),
                Entry::Sparse {
                    path: "var/lastlog".into(),
                    size,
                    data: b"end\n".to_vec(),
                },
            ],
            compression: Compression::Gzip,
        }],
        architecture: oci::host_arch().into(),
    });
    assert!(sparse.layers[0].blob.len() < 30_000);
    let server = serve(&sparse, |_, _| None);
    let started = std::time::Instant::now();
    env.ok(&["pull", &reference(&server)]);
    let layer = env.store_entries("layers").pop().expect("a layer");
    let file = env
        .store()
        .join("layers")
        .join(layer)
        .join("root/var/lastlog");
    let meta = std::fs::metadata(&file).unwrap();
    use std::os::unix::fs::MetadataExt as _;
    assert_eq!(meta.len(), size, "the file keeps its size");
    assert!(
        meta.blocks() * 512 < 1 << 20,
        "the hole was written: {} bytes of blocks (in {:?})",
        meta.blocks() * 512,
        started.elapsed()
    );
    let mut tail = [0u8; 4];
    std::os::unix::fs::FileExt::read_exact_at(
        &std::fs::File::open(&file).unwrap(),
        &mut tail,
        size - 4,
    )
    .unwrap();
    assert_eq!(&tail, b"end\n");

    let bomb = oci::build(&ImageSpec {
        layers: vec![LayerSpec {
            entries: vec![Entry::file("zeros", &vec![0u8; 100 << 20])],
            compression: Compression::Zstd,
        }],
        architecture: oci::host_arch().into(),
    });
    let other = TestEnv::new();
    let server = serve(&bomb, |_, _| None);
    let err = other.fails(&["pull", &reference(&server)]);
    assert!(
        err.contains("unpacks to more than 64 MiB of file data, far more than its size suggests"),
        "{err}"
    );
    assert!(err.contains("SANDBOX_UNPACK_RATIO"), "{err}");
    assert_nothing_kept(&other);
    let out = other
        .command(&["pull", &reference(&server)])
        .env("SANDBOX_UNPACK_RATIO", "1000000")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
