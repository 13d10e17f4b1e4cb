//! Mobility: the prepared sandbox (image and setup layers) leaves the machine as a standard OCI
//! image that other tools run. podman (with runc, rootless, in the test's own dirs) is the
//! other tool here.

use std::path::Path;
use std::process::Command;

use crate::support::text;
use crate::support::TestEnv;

/// podman's own dir for a test; its pause process (podman keeps one per run dir) is ended
/// with it. Under /tmp: podman refuses a run root of more than 50 characters.
struct PodmanDir(tempfile::TempDir);

impl PodmanDir {
    fn new(env: &TestEnv) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sbx-podman-")
            .tempdir_in("/tmp")
            .unwrap();
        env.give_to_user(dir.path());
        Self(dir)
    }
}

impl std::ops::Deref for PodmanDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for PodmanDir {
    fn drop(&mut self) {
        let file = self.0.path().join("run/libpod/tmp/pause.pid");
        if let Some(pid) = std::fs::read_to_string(file)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
        {
            // A kill of the pause process this test's podman started (it
            // ignores SIGTERM).
            crate::support::signal(pid, libc::SIGKILL);
        }
    }
}

/// podman as the test user, with its store and run dirs under `dir`.
fn podman(env: &TestEnv, dir: &Path, args: &[&str]) -> std::process::Output {
    assert!(
        Path::new("/usr/bin/podman").exists() && Path::new("/usr/sbin/runc").exists(),
        "podman and runc are needed here (Debian: apt-get install podman runc; scripts/host-packages.sh installs them)"
    );
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    env.give_to_user(dir);
    let mut command = match &env.user {
        Some(u) => {
            let mut c = Command::new("/usr/bin/setpriv");
            c.args([
                &format!("--reuid={}", u.uid),
                &format!("--regid={}", u.gid),
                "--init-groups",
                "--",
                "/usr/bin/podman",
            ]);
            c
        }
        None => Command::new("/usr/bin/podman"),
    };
    command
        .args([
            "--root",
            &dir.join("storage").display().to_string(),
            "--runroot",
            &run.join("podman").display().to_string(),
            "--storage-driver",
            "overlay",
            "--runtime",
            "runc",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "none",
        ])
        .args(args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", env.home())
        .env("XDG_RUNTIME_DIR", &run)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .current_dir(dir)
        .output()
        .unwrap()
}

/// podman as above, which must succeed; its stdout.
fn podman_ok(env: &TestEnv, dir: &Path, args: &[&str]) -> String {
    let out = podman(env, dir, args);
    assert!(
        out.status.success(),
        "podman {}: {}",
        args.join(" "),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `sandbox login HOST -u USER --password-stdin`, which must succeed.
fn sandbox_login(env: &TestEnv, host: &str, user: &str, password: &str) {
    let mut login = env
        .command(&["login", host, "-u", user, "--password-stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(login.stdin.as_mut().unwrap(), password.as_bytes()).unwrap();
    drop(login.stdin.take());
    let logged = login.wait_with_output().unwrap();
    assert!(logged.status.success(), "{}", text(&logged.stderr));
}

#[test]
fn an_exported_sandbox_loads_and_runs_in_podman_with_what_setup_made() {
    let env = TestEnv::new();
    let (_registry, image) = crate::support::pulled_busybox(&env, "mobility/app", Vec::new());
    env.write(
        "project/sandbox.toml",
        &format!(
            "setup = [\"echo made-by-setup > /made\", \"rm /bin/vi\"]\n[toolchain]\nimage = \"{image}\"\n[env]\nGREETING = \"hello\"\n[network]\nmode = \"none\"\n"
        ),
    );
    // A clone of a repository: its origin is the image's source.
    env.write(
        "project/.git/config",
        "[core]\n\tbare = false\n[remote \"origin\"]\n\turl = https://git.example/team/app.git\n",
    );
    let out = env.ok(&["export", "-o", "app.tar"]);
    assert!(
        out.contains("OCI archive") && out.contains("2 of setup"),
        "{out}"
    );
    let archive = env.path().join("project/app.tar");
    // The same project exported again gives the same image (reproducible layers and config).
    let again = env.ok(&["export", "-o", "again.tar"]);
    let digest = |line: &str| line.rsplit(' ').next().unwrap().trim().to_owned();
    assert_eq!(digest(&out), digest(&again), "{out}\n{again}");

    let podman_dir = PodmanDir::new(&env);
    podman_ok(
        &env,
        &podman_dir,
        &["load", "-i", &archive.display().to_string()],
    );
    let ran = podman(
        &env,
        &podman_dir,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "localhost/project:sandbox",
            "sh",
            "-c",
            "cat /made; echo $GREETING; test -e /bin/vi || echo vi-removed; id -u; pwd",
        ],
    );
    assert!(ran.status.success(), "podman run: {}", text(&ran.stderr));
    assert_eq!(
        text(&ran.stdout),
        "made-by-setup\nhello\nvi-removed\n0\n/workspace\n"
    );
    // The setup steps are the image's history, as a Containerfile's lines.
    let history = podman(
        &env,
        &podman_dir,
        &[
            "history",
            "--no-trunc",
            "--format",
            "{{.CreatedBy}}",
            "localhost/project:sandbox",
        ],
    );
    let history = text(&history.stdout);
    assert!(
        history.contains("echo made-by-setup > /made") && history.contains("rm /bin/vi"),
        "{history}"
    );
    let inspect = podman(
        &env,
        &podman_dir,
        &[
            "image",
            "inspect",
            "--format",
            "{{json .Labels}}",
            "localhost/project:sandbox",
        ],
    );
    let labels = text(&inspect.stdout);
    assert!(
        labels.contains("\"org.opencontainers.image.source\":\"https://git.example/team/app.git\"")
            && labels.contains("dev.sandbox.config.sha256"),
        "{labels}"
    );
    // Setup layers compressed with zstd load and run too.
    env.ok(&[
        "export",
        "-o",
        "zstd.tar",
        "--compression",
        "zstd",
        "--name",
        "localhost/project:zstd",
    ]);
    let zstd = env.path().join("project/zstd.tar");
    podman_ok(
        &env,
        &podman_dir,
        &["load", "-i", &zstd.display().to_string()],
    );
    let ran = podman(
        &env,
        &podman_dir,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "localhost/project:zstd",
            "cat",
            "/made",
        ],
    );
    assert_eq!(
        text(&ran.stdout),
        "made-by-setup\n",
        "{}",
        text(&ran.stderr)
    );
    // An OCI image layout too.
    env.ok(&["export", "-o", "layout/"]);
    assert!(env.path().join("project/layout/index.json").is_file());
    assert!(env.path().join("project/layout/oci-layout").is_file());
}

/// `sandbox load` takes an exported sandbox into another store, without a registry: it runs
/// there with what setup made, and a hostile archive entry is refused.
#[test]
fn an_exported_sandbox_loads_into_another_store() {
    let env = TestEnv::new();
    let (registry, image) = crate::support::pulled_busybox(&env, "mobility/load", Vec::new());
    env.write(
        "project/sandbox.toml",
        &format!(
            "setup = [\"echo made-by-setup > /made\"]\n[toolchain]\nimage = \"{image}\"\n[network]\nmode = \"none\"\n"
        ),
    );
    env.ok(&["export", "-o", "app.tar"]);
    drop(registry);
    let other = TestEnv::new();
    let archive = env.path().join("project/app.tar");
    other.give_to_user(&archive);
    let out = other.ok(&[
        "load",
        &archive.display().to_string(),
        "--name",
        "localhost/team/app:dev",
    ]);
    assert!(
        out.starts_with("loaded localhost/team/app:dev (2 layers)"),
        "{out}"
    );
    let ran = other.ok(&[
        "run",
        "--network",
        "none",
        "--image",
        "localhost/team/app:dev",
        "cat",
        "/made",
    ]);
    assert_eq!(ran, "made-by-setup\n");
    // An archive naming a path outside its layout is refused, and nothing is loaded from it.
    let evil = other.path().join("evil.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&evil).unwrap());
    let mut header = tar::Header::new_old();
    header.set_size(4);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    // Written by hand: the tar crate itself refuses to make such a name.
    let name = b"blobs/../../../evil";
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_cksum();
    builder.append(&header, &b"evil"[..]).unwrap();
    builder.into_inner().unwrap();
    other.give_to_user(&evil);
    let stderr = other.fails(&["load", &evil.display().to_string()]);
    assert!(
        stderr.contains("image archive") || stderr.contains("index.json"),
        "{stderr}"
    );
}

/// `sandbox push` to a plain registry: podman pulls and runs it; a layer larger than one chunk
/// goes up in chunks; a second push uploads nothing.
#[test]
fn a_pushed_sandbox_is_pulled_and_run_by_podman_and_pushing_again_uploads_nothing() {
    let env = TestEnv::new();
    let (registry, image) = crate::support::pulled_busybox(&env, "mobility/base", Vec::new());
    env.write(
        "project/sandbox.toml",
        &format!(
            "setup = [\"echo made-by-setup > /made\", \"head -c 20000000 /dev/urandom > /big\"]\n[toolchain]\nimage = \"{image}\"\n[network]\nmode = \"none\"\n"
        ),
    );
    let target = format!("{}/team/app:dev", registry.host());
    // Chunks of 8 MiB, so the 20 MB layer goes up in three.
    let push = |args: &[&str]| {
        let out = env
            .command(args)
            .env("SANDBOX_PUSH_CHUNK_MB", "8")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let out = push(&["push", &target]);
    assert!(
        out.starts_with(&format!("pushed {target}@sha256:")),
        "{out}"
    );
    // The base layer was on the same registry: mounted, not uploaded again.
    assert!(out.contains("(3 blobs uploaded, 1 already there)"), "{out}");
    let again = push(&["push", &target]);
    assert!(
        again.contains("(0 blobs uploaded, 4 already there)"),
        "{again}"
    );
    let digest = |line: &str| {
        line.split('@')
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(digest(&out), digest(&again), "the same image both times");

    // skopeo reads the config fields the sandbox runs with.
    let inspect = Command::new("/usr/bin/skopeo")
        .args(["inspect", "--config", "--tls-verify=false"])
        .arg(format!("docker://{target}"))
        .output()
        .expect("skopeo (Debian: apt-get install skopeo; scripts/host-packages.sh installs it)");
    let config = text(&inspect.stdout);
    assert!(inspect.status.success(), "{}", text(&inspect.stderr));
    for needle in [
        "\"User\": \"0:0\"",
        "\"WorkingDir\": \"/workspace\"",
        // (skopeo's JSON escapes `>`.)
        "\"created_by\": \"echo made-by-setup \\u003e /made\"",
        "dev.sandbox.config.sha256",
    ] {
        assert!(config.contains(needle), "{needle} in {config}");
    }
    let podman_dir = PodmanDir::new(&env);
    let pulled = podman(&env, &podman_dir, &["pull", "--tls-verify=false", &target]);
    assert!(
        pulled.status.success(),
        "podman pull: {}",
        text(&pulled.stderr)
    );
    let ran = podman(
        &env,
        &podman_dir,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            &target,
            "sh",
            "-c",
            "cat /made; wc -c < /big",
        ],
    );
    assert!(ran.status.success(), "podman run: {}", text(&ran.stderr));
    assert_eq!(text(&ran.stdout), "made-by-setup\n20000000\n");
}

/// `sandbox lock --push` pins the prepared sandbox; another machine (a second store) with the
/// lock runs `--locked` with the same tree, pulled, without running setup.
#[test]
fn a_second_store_with_the_lock_runs_the_prepared_sandbox_without_setup() {
    let env = TestEnv::new();
    let (registry, image) = crate::support::pulled_busybox(&env, "mobility/locked", Vec::new());
    let toml = format!(
        "setup = [\"cat /proc/sys/kernel/random/uuid > /stamp\"]\n[toolchain]\nimage = \"{image}\"\n[network]\nmode = \"none\"\n"
    );
    env.write("project/sandbox.toml", &toml);
    let target = format!("{}/team/app:locked", registry.host());
    let out = env.ok(&["lock", "--push", &target]);
    assert!(out.contains("pins it as the prepared sandbox"), "{out}");
    let lock = std::fs::read_to_string(env.path().join("project/sandbox.lock")).unwrap();
    assert!(
        lock.contains(&format!(
            "prepared = \"{}/team/app@sha256:",
            registry.host()
        )),
        "{lock}"
    );
    let here = env.ok(&["run", "--locked", "cat", "/stamp"]);

    // Elsewhere (a teammate, CI) the lock is someone else's claim: its prepared sandbox runs
    // in place of the reviewed steps only after `sandbox trust`.
    let other = TestEnv::new();
    other.write("project/sandbox.toml", &toml);
    other.write("project/sandbox.lock", &lock);
    let err = other.fails(&["run", "--locked", "cat", "/stamp"]);
    assert!(
        err.contains("pins a prepared sandbox") && err.contains("it was not made here"),
        "{err}"
    );
    assert!(err.contains("`sandbox trust`"), "{err}");
    assert!(
        !other.images().iter().any(|(r, _)| r.contains("team/app")),
        "pulled before trust"
    );
    let trusted = other.ok(&["trust"]);
    assert!(
        trusted.contains("trusted the prepared sandbox"),
        "{trusted}"
    );
    let out = other.run(&["run", "--locked", "cat", "/stamp"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        text(&out.stdout),
        here,
        "the same tree as where it was prepared"
    );
    assert!(stderr.contains("using the prepared sandbox"), "{stderr}");
    assert!(!stderr.contains("setup: running"), "{stderr}");

    // A lock whose pin is swapped after trust (to an image on another base) asks again, and
    // once trusted, is refused for not standing on the pinned base.
    let stranger = crate::support::oci::build(&crate::support::oci::ImageSpec {
        layers: vec![crate::support::oci::LayerSpec {
            entries: vec![crate::support::oci::Entry::file(
                "stamp",
                b"not from the steps\n",
            )],
            compression: crate::support::oci::Compression::Gzip,
        }],
        architecture: crate::support::oci::host_arch().into(),
    });
    crate::support::oci::push(&registry.url(), "team/evil", "1", &stranger);
    let swapped = lock
        .lines()
        .map(|l| {
            if l.starts_with("prepared = ") {
                format!(
                    "prepared = \"{}/team/evil@{}\"",
                    registry.host(),
                    stranger.manifest_digest
                )
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let third = TestEnv::new();
    third.write("project/sandbox.toml", &toml);
    third.write("project/sandbox.lock", &swapped);
    third.ok(&["trust"]);
    third.write("project/sandbox.lock", &lock);
    let err = third.fails(&["run", "--locked", "cat", "/stamp"]);
    assert!(
        err.contains("it was not made here"),
        "the trust of another pin held: {err}"
    );
    third.write("project/sandbox.lock", &swapped);
    let err = third.fails(&["run", "--locked", "cat", "/stamp"]);
    assert!(err.contains("does not stand on the base it pins"), "{err}");
}

/// Checks a YAML document against the Kubernetes OpenAPI schema of its kind, strictly (unknown
/// fields are errors), with `kubernetes-validate` from PyPI (scripts/host-packages.sh installs it).
fn assert_valid_for_kubernetes(env: &TestEnv, name: &str, yaml: &str) {
    let validator = std::env::var("SANDBOX_TEST_KUBERNETES_VALIDATE")
        .unwrap_or_else(|_| "/opt/sandbox-test-tools/bin/kubernetes-validate".into());
    if !Path::new(&validator).exists() {
        panic!("{validator} is missing: scripts/host-packages.sh installs kubernetes-validate from PyPI into /opt/sandbox-test-tools (.ci/run does)");
    }
    let file = env.write(name, yaml);
    let out = std::process::Command::new(&validator)
        .args(["--strict", "--no-warn"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("running {validator}: {e}"));
    assert!(
        out.status.success(),
        "{name} is not a valid Kubernetes object: {}{}\n{yaml}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// `sandbox kube --pod` runs under `podman kube play` with the project mounted, and `--job`
/// is a Job pinned by digest with the limits of sandbox.toml.
#[test]
fn kube_yaml_runs_under_podman_kube_play_and_pins_the_prepared_sandbox() {
    let env = TestEnv::new();
    let (registry, image) = crate::support::pulled_busybox(&env, "mobility/kube", Vec::new());
    let toml = |limits: &str| {
        format!(
            "setup = [\"echo made-by-setup > /made\"]\n[toolchain]\nimage = \"{image}\"\n[network]\nmode = \"none\"\n{limits}[env]\nGREETING = \"hi: there\"\nTRICK = \"end\\\"\\nkind: Pod\\n- [x\"\n"
        )
    };
    env.write(
        "project/sandbox.toml",
        &toml("[limits]\nmemory = \"256m\"\ncpus = 0.5\n"),
    );
    env.write("project/hello.txt", "from the project\n");
    let target = format!("{}/team/kube:locked", registry.host());
    env.ok(&["lock", "--push", &target]);
    let job = env.ok(&["kube", "--job", "--", "sh", "-c", "cat /made"]);
    for needle in [
        "apiVersion: \"batch/v1\"",
        "kind: \"Job\"",
        "backoffLimit: 0",
        "restartPolicy: \"Never\"",
        "memory: \"268435456\"",
        "cpu: \"500m\"",
        "mountPath: \"/workspace\"",
        "value: \"hi: there\"",
    ] {
        assert!(job.contains(needle), "{needle} in {job}");
    }
    assert!(
        job.contains(&format!("image: \"{}/team/kube@sha256:", registry.host())),
        "{job}"
    );
    let claimed = env.ok(&["kube", "--job", "--volume-claim", "src", "--", "true"]);
    assert!(
        claimed.contains("claimName: \"src\"") && !claimed.contains("hostPath"),
        "{claimed}"
    );
    // A hostile value in sandbox.toml stays one string: no second `kind`, no new list.
    assert_eq!(
        job.lines().filter(|l| l.starts_with("kind:")).count(),
        1,
        "{job}"
    );
    assert!(job.contains(r#"value: "end\"\nkind: Pod\n- [x""#), "{job}");
    assert_valid_for_kubernetes(&env, "job.yaml", &job);
    assert_valid_for_kubernetes(&env, "claimed.yaml", &claimed);

    // Rootless podman cannot set limits on this host: the pod is played without them (limits
    // are not among the lock's inputs, so the lock still holds).
    env.write("project/sandbox.toml", &toml(""));
    let pod = env.ok(&[
        "kube",
        "--pod",
        "--",
        "sh",
        "-c",
        "cat /made /workspace/hello.txt; echo $GREETING",
    ]);
    assert_valid_for_kubernetes(&env, "pod-check.yaml", &pod);
    let file = env.write("pod.yaml", &pod);
    let podman_dir = PodmanDir::new(&env);
    let played = podman(
        &env,
        &podman_dir,
        &[
            "kube",
            "play",
            "--tls-verify=false",
            "--network",
            "none",
            &file.display().to_string(),
        ],
    );
    assert!(
        played.status.success(),
        "podman kube play: {}",
        text(&played.stderr)
    );
    let started = std::time::Instant::now();
    let logs = loop {
        let logs = podman(&env, &podman_dir, &["logs", "project-project"]);
        let out = text(&logs.stdout);
        if out.contains("hi: there") || started.elapsed().as_secs() > 20 {
            break out;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let _ = podman(
        &env,
        &podman_dir,
        &["kube", "down", &file.display().to_string()],
    );
    assert_eq!(logs, "made-by-setup\nfrom the project\nhi: there\n");
}

/// A registry that answers 416 to a chunk, or drops the connection during one: the push asks
/// where the upload stands and resumes. One that refuses every chunk: a clear error, and no
/// manifest names a half-pushed image.
#[test]
fn a_push_resumes_after_a_refused_or_dropped_chunk_and_never_names_a_half_pushed_image() {
    use crate::support::hostile::{Reply, UploadRegistry};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let env = TestEnv::new();
    let (_base, image) = crate::support::pulled_busybox(&env, "mobility/hostile", Vec::new());
    env.write(
        "project/sandbox.toml",
        &format!(
            "setup = [\"head -c 40000000 /dev/urandom > /big\"]\n[toolchain]\nimage = \"{image}\"\n[network]\nmode = \"none\"\n"
        ),
    );
    let patches = AtomicUsize::new(0);
    let flaky = UploadRegistry::start(move |request, _| {
        if request.method != "PATCH" {
            return None;
        }
        match patches.fetch_add(1, Ordering::SeqCst) {
            1 => Some(Reply::status(416)),
            2 => Some(Reply::Dropped),
            _ => None,
        }
    });
    let target = format!("{}/team/app:dev", flaky.server.host());
    let chunked = |args: &[&str]| {
        env.command(args)
            .env("SANDBOX_PUSH_CHUNK_MB", "8")
            .output()
            .unwrap()
    };
    let out = chunked(&["push", &target]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = text(&out.stdout);
    assert!(out.contains("pushed"), "{out}");
    assert!(flaky.manifests.lock().unwrap().contains_key("dev"));
    let asked = flaky
        .server
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/upload/"))
        .count();
    assert!(asked >= 1, "the push asked where the upload stood");

    let refusing =
        UploadRegistry::start(|request, _| (request.method == "PATCH").then(|| Reply::status(500)));
    let target = format!("{}/team/app:dev", refusing.server.host());
    let out = chunked(&["push", &target]);
    assert_eq!(out.status.code(), Some(125));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("500"), "{stderr}");
    assert!(
        refusing.manifests.lock().unwrap().is_empty(),
        "a manifest named a half-pushed image"
    );
    assert!(
        !refusing
            .server
            .requests()
            .iter()
            .any(|r| r.path.contains("/manifests/")),
        "the manifest was never sent"
    );
}

/// The last layer (the setup step's) of the image in an OCI archive.
fn setup_layer_digest(archive: &Path) -> String {
    let mut files = std::collections::HashMap::new();
    let mut tar = tar::Archive::new(std::fs::File::open(archive).unwrap());
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        files.insert(name, bytes);
    }
    let json = |name: &str| -> serde_json::Value { serde_json::from_slice(&files[name]).unwrap() };
    let index = json("index.json");
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest = json(&format!(
        "blobs/sha256/{}",
        manifest_digest.trim_start_matches("sha256:")
    ));
    let layers = manifest["layers"].as_array().unwrap();
    let digest = layers.last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    digest
}

/// The last layer of the manifest `reference` names on a plain loopback registry.
fn pushed_setup_layer(host: &str, repository: &str, tag: &str) -> String {
    let out = Command::new("curl")
        .args([
            "-fsS",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
            &format!("http://{host}/v2/{repository}/manifests/{tag}"),
        ])
        .output()
        .expect("curl (Debian's curl package; .ci/run installs it)");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let manifest: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Two users with different subordinate ranges prepare the same setup step: the same setup
/// layer, digest for digest (owners are the ids inside, never the host's; times clamped),
/// whether it is exported first and pushed from the store, or pushed first while compressed.
#[test]
fn two_users_with_other_subordinate_ranges_prepare_the_same_image() {
    let second =
        std::env::var("SANDBOX_TEST_SECOND_USER").unwrap_or_else(|_| "sandbox-test2".into());
    let digests: Vec<String> = [TestEnv::new(), TestEnv::for_user(&second)]
        .iter()
        .enumerate()
        .flat_map(|(i, env)| {
            let (registry, image) = crate::support::pulled_busybox(env, "mobility/same", Vec::new());
            // The same image on both registries: the reference differs only in its port, which is
            // not part of the image.
            env.write(
                "project/sandbox.toml",
                &format!(
                    "setup = [\"mkdir -p /opt/app && echo same > /opt/app/file && chown 1000:1000 /opt/app/file && ln -s file /opt/app/link\"]\n[toolchain]\nimage = \"{image}\"\n[network]\nmode = \"none\"\n"
                ),
            );
            let target = format!("{}/team/same:1", registry.host());
            let export = || {
                env.ok(&["export", "-o", "app.tar", "--name", "localhost/same:1"]);
                setup_layer_digest(&env.path().join("project/app.tar"))
            };
            let push = || {
                env.ok(&["push", &target]);
                pushed_setup_layer(&registry.host(), "team/same", "1")
            };
            if i == 0 {
                let exported = export();
                [exported, push()]
            } else {
                let pushed = push();
                [export(), pushed]
            }
        })
        .collect();
    assert!(digests.iter().all(|d| d == &digests[0]), "{digests:?}");
}

/// A push to a docker-registry that wants tokens: refused without credentials (and said so),
/// then, logged in, the token flow with push scope; podman, logged in too, pulls and runs it.
#[test]
fn a_push_to_a_token_auth_registry_asks_for_push_scope_with_the_users_credentials() {
    use crate::support::token_registry::{TokenRegistry, PASSWORD, USER};
    let env = TestEnv::new();
    let (_base, image) = crate::support::pulled_busybox(&env, "mobility/token", Vec::new());
    env.write(
        "project/sandbox.toml",
        &format!(
            "setup = [\"echo made-by-setup > /made\"]\n[toolchain]\nimage = \"{image}\"\n[network]\nmode = \"none\"\n"
        ),
    );
    let tokens = TokenRegistry::start();
    let host = tokens.registry.host();
    let target = format!("{host}/team/app:dev");
    let stderr = env.fails(&["push", &target]);
    assert!(stderr.contains("sandbox login"), "{stderr}");
    sandbox_login(&env, &host, USER, PASSWORD);
    let out = env.ok(&["push", &target]);
    assert!(
        out.starts_with(&format!("pushed {target}@sha256:")),
        "{out}"
    );
    let scopes: Vec<String> = tokens
        .issuer
        .requests()
        .iter()
        .map(|r| r.path.clone())
        .filter(|p| p.contains("scope="))
        .collect();
    assert!(
        scopes
            .iter()
            .any(|p| p.contains("pull%2Cpush") || p.contains("pull,push")),
        "{scopes:?}"
    );

    let podman_dir = PodmanDir::new(&env);
    let logged = podman(
        &env,
        &podman_dir,
        &[
            "login",
            "--tls-verify=false",
            "-u",
            USER,
            "-p",
            PASSWORD,
            &host,
        ],
    );
    assert!(
        logged.status.success(),
        "podman login: {}",
        text(&logged.stderr)
    );
    let pulled = podman(&env, &podman_dir, &["pull", "--tls-verify=false", &target]);
    assert!(
        pulled.status.success(),
        "podman pull: {}",
        text(&pulled.stderr)
    );
    let ran = podman(
        &env,
        &podman_dir,
        &["run", "--rm", "--network", "none", &target, "cat", "/made"],
    );
    assert_eq!(
        text(&ran.stdout),
        "made-by-setup\n",
        "{}",
        text(&ran.stderr)
    );
}

/// A push to a docker-registry with basic (htpasswd) auth: refused without login, then sent
/// with the user's credentials.
#[test]
fn a_push_to_a_basic_auth_registry_uses_the_users_credentials() {
    let env = TestEnv::new();
    let (_base, image) = crate::support::pulled_busybox(&env, "mobility/basic", Vec::new());
    env.write(
        "project/sandbox.toml",
        &format!(
            "setup = [\"echo made-by-setup > /made\"]\n[toolchain]\nimage = \"{image}\"\n[network]\nmode = \"none\"\n"
        ),
    );
    let registry = crate::support::Registry::start_with(|dir| {
        let made = Command::new("htpasswd")
            .args(["-Bbn", "basic-user", "basic-pass"])
            .output()
            .expect("htpasswd (Debian: apt-get install apache2-utils; scripts/host-packages.sh installs it)");
        std::fs::write(dir.join("htpasswd"), made.stdout).unwrap();
        format!(
            "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
            dir.join("htpasswd").display()
        )
    });
    let host = registry.host();
    let target = format!("{host}/team/app:basic");
    let stderr = env.fails(&["push", &target]);
    assert!(stderr.contains("sandbox login"), "{stderr}");
    sandbox_login(&env, &host, "basic-user", "basic-pass");
    let out = env.ok(&["push", &target]);
    assert!(
        out.starts_with(&format!("pushed {target}@sha256:")),
        "{out}"
    );
    assert!(out.contains("(3 blobs uploaded, 0 already there)"), "{out}");
}

/// A project on a busybox image pulled from a registry of its own (kept while the result
/// lives), with no network: (registry, image).
fn busybox_project(
    env: &TestEnv,
    repo: &str,
    extra: Vec<crate::support::oci::Entry>,
) -> (crate::support::Registry, String) {
    let (registry, image) = crate::support::pulled_busybox(env, repo, extra);
    env.write(
        "project/sandbox.toml",
        &format!("[toolchain]\nimage = \"{image}\"\n[network]\nmode = \"none\"\n"),
    );
    (registry, image)
}

/// A layout dir to load whose blob is a FIFO, a socket or a link (to a FIFO, or to a file
/// outside): each is refused by name at once, with nothing loaded, and the store's lock free.
/// (A FIFO blob hung `sandbox load DIR` forever while it held the store's lock.)
#[test]
fn a_layouts_blob_that_is_a_fifo_or_a_link_is_refused_at_once() {
    let env = TestEnv::new();
    let (registry, _) = busybox_project(&env, "mobility/fifo", Vec::new());
    env.ok(&["export", "-o", "layout/"]);
    drop(registry);
    let layout = env.project().join("layout");
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(layout.join("index.json")).unwrap()).unwrap();
    let manifest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned();
    let blob = layout.join("blobs/sha256").join(&manifest);
    let saved = std::fs::read(&blob).unwrap();
    let outside = env.write("outside-manifest", &String::from_utf8_lossy(&saved));
    let cases: [(&str, &dyn Fn()); 3] = [
        ("a FIFO", &|| {
            nix::unistd::mkfifo(&blob, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        }),
        ("a link (or under one)", &|| {
            std::os::unix::fs::symlink(&outside, &blob).unwrap();
        }),
        ("a socket", &|| {
            // Bound at a short path (a socket's path is capped), then moved into place.
            let short = std::path::PathBuf::from(format!("/tmp/sbx-sock-{}", std::process::id()));
            let _ = std::fs::remove_file(&short);
            std::os::unix::net::UnixListener::bind(&short)
                .map(drop)
                .unwrap();
            std::fs::rename(&short, &blob).unwrap();
        }),
    ];
    for (what, plant) in cases {
        std::fs::remove_file(&blob).unwrap();
        plant();
        env.give_to_user(&layout);
        let mut child = env
            .command(&[
                "load",
                &layout.display().to_string(),
                "--name",
                "localhost/x:1",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`sandbox load` hung on a blob that is {what}");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{what}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "blobs/sha256/{manifest} is {what}, not a regular file"
            )),
            "{what}: {stderr}"
        );
        assert!(
            !env.ok(&["images"]).contains("localhost/x"),
            "{what}: loaded"
        );
    }
    // The real blob back: it loads.
    std::fs::remove_file(&blob).unwrap();
    std::fs::write(&blob, &saved).unwrap();
    env.give_to_user(&layout);
    env.ok(&[
        "load",
        &layout.display().to_string(),
        "--name",
        "localhost/x:1",
    ]);
}

/// `load` of an archive naming a stored reference says what it replaced; a reference a current
/// project's sandbox.lock pins is refused (125, naming the project) unless `--force`. (It
/// silently replaced it, and the next unlocked run of that project ran the loaded content.)
#[test]
fn load_says_what_it_replaces_and_keeps_a_pinned_reference_unless_forced() {
    let env = TestEnv::new();
    let (_registry, image) = busybox_project(&env, "mobility/pinned", Vec::new());
    env.ok(&["lock"]);
    env.ok(&["run", "--", "true"]);
    // The layers the pinned reference names now.
    let layers_of_pinned = || {
        env.images()
            .into_iter()
            .find(|(r, _)| *r == image)
            .expect("the pinned image")
            .1
    };
    let old = layers_of_pinned();
    // Another image, exported under the pinned name.
    let other = TestEnv::new();
    let _other_registry = busybox_project(
        &other,
        "mobility/other",
        vec![crate::support::oci::Entry::file("other", b"other\n")],
    );
    other.ok(&["export", "-o", "other.tar", "--name", &image]);
    let archive = other.project().join("other.tar");
    env.give_to_user(&archive);
    let archive = archive.display().to_string();
    let err = env.fails(&["load", &archive]);
    assert!(
        err.contains(&format!("loading would replace {image} (now sha256:")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "which the sandbox.lock of {} pins",
            env.project().display()
        )),
        "{err}"
    );
    assert!(err.contains("sandbox load --force"), "{err}");
    let now = layers_of_pinned();
    assert_eq!(now, old, "the pinned reference changed");
    let out = env.ok(&["load", "--force", &archive]);
    assert!(
        out.contains(&format!("replaced {image}, which was sha256:")),
        "{out}"
    );
    let now = layers_of_pinned();
    assert_ne!(now, old);
    // An unpinned name is replaced, and said so.
    let out = env.ok(&["load", "--name", "localhost/free:1", &archive]);
    assert!(!out.contains("replaced"), "{out}");
    env.ok(&["export", "-o", "own.tar"]);
    let own = env.project().join("own.tar").display().to_string();
    let out = env.ok(&["load", "--name", "localhost/free:1", &own]);
    assert!(
        out.contains("replaced localhost/free:1, which was sha256:"),
        "{out}"
    );
}
