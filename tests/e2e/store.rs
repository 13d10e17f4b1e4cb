//! Store guarantees: kill -9 at any moment leaves it consistent, concurrent pulls share one copy,
//! a full disk is named, and the store cannot be entered by other users.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::support::hostile::{image_routes, serve_routes, HostileServer};
use crate::support::oci::{self, Compression, Entry, ImageSpec, LayerSpec};
use crate::support::{Registry, TestEnv};

/// Incompressible bytes, so layers take a while to move.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn big_image(layers: usize, bytes: usize) -> oci::BuiltImage {
    let mut specs = vec![LayerSpec {
        entries: oci::busybox_entries(),
        compression: Compression::Gzip,
    }];
    for i in 0..layers {
        let compression = [Compression::Gzip, Compression::Zstd, Compression::None][i % 3];
        specs.push(LayerSpec {
            entries: vec![
                Entry::dir(&format!("d{i}")),
                Entry::file(&format!("d{i}/blob"), &noise(bytes, i as u64 + 1)),
            ],
            compression,
        });
    }
    oci::build(&ImageSpec {
        layers: specs,
        architecture: oci::host_arch().into(),
    })
}

/// `images` and the layer dirs agree, and nothing is left half-done.
fn assert_images_and_layers_agree(env: &TestEnv) {
    env.assert_store_consistent();
    let layers = env.store_entries("layers");
    for (reference, image_layers) in env.images() {
        for l in image_layers {
            assert!(
                layers.contains(&l),
                "{reference} lists layer {l}, which is not stored"
            );
        }
    }
}

#[test]
fn kill_9_at_20_random_moments_of_a_pull_never_leaves_a_broken_store() {
    let env = TestEnv::new();
    let registry = Registry::start();
    let image = big_image(3, 6_000_000);
    oci::push(&registry.url(), "crash/app", "1", &image);
    let reference = format!("{}/crash/app:1", registry.host());

    // Time a warm pull (the first one also makes the user namespace the pause process keeps),
    // so the random kill points fall inside the pulls that follow.
    env.ok(&["pull", &reference]);
    env.ok(&["rmi", &reference]);
    let start = Instant::now();
    env.ok(&["pull", &reference]);
    let mut full = start.elapsed();
    env.ok(&["rmi", &reference]);

    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed}, a full pull takes {full:?}");
    // 20 kills that land during a pull, at random moments of it. A pull that ends before its
    // kill (a machine faster now than when timed) recalibrates: the window halves. So the
    // outcome does not depend on how busy the machine is, only the number of tries.
    let mut landed = 0;
    let mut tries = 0;
    while landed < 20 {
        tries += 1;
        assert!(
            tries <= 200,
            "only {landed} of {tries} kills landed during a pull, the window down to {full:?}"
        );
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = full.mul_f64((seed >> 33) as f64 / (1u64 << 31) as f64);
        let mut child = env
            .command(&["pull", &reference])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            landed += 1;
        } else {
            full /= 2;
        }
        let _ = child.kill();
        let _ = child.wait();
        // The next pull recovers whatever the kill left.
        env.ok(&["pull", &reference]);
        assert_images_and_layers_agree(&env);
        assert_eq!(env.images().len(), 1, "try {tries}");
        env.ok(&["rmi", &reference]);
        assert!(
            env.store_entries("layers").is_empty(),
            "try {tries}: rmi left layers"
        );
    }
    eprintln!("{landed} kills landed in {tries} tries");
}

#[test]
fn eight_concurrent_pulls_store_and_download_one_copy() {
    let env = TestEnv::new();
    let image = big_image(2, 2_000_000);
    let routes = image_routes("same/app", "1", &image);
    let blob_gets = Arc::new(AtomicUsize::new(0));
    let gets = blob_gets.clone();
    let layer_paths: Vec<String> = image
        .layers
        .iter()
        .map(|l| format!("/v2/same/app/blobs/{}", l.digest))
        .collect();
    let server = HostileServer::start(move |req| {
        if layer_paths.contains(&req.path) {
            gets.fetch_add(1, Ordering::SeqCst);
        }
        serve_routes(req, &routes)
    });
    let reference = format!("{}/same/app:1", server.host());
    let children: Vec<_> = (0..8)
        .map(|_| {
            env.command(&["pull", &reference])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(env.store_entries("layers").len(), image.layers.len());
    assert_eq!(
        blob_gets.load(Ordering::SeqCst),
        image.layers.len(),
        "each layer downloaded once"
    );
    assert_images_and_layers_agree(&env);
}

#[test]
fn leftovers_of_a_dead_process_are_cleaned_by_the_next_pull() {
    let env = TestEnv::new();
    let registry = Registry::start();
    let image = big_image(1, 1000);
    oci::push(&registry.url(), "left/app", "1", &image);
    env.ok(&["pull", &format!("{}/left/app:1", registry.host())]);
    // Fabricate what a kill leaves: a half-extracted layer and a half blob in tmp/.
    let stale = env
        .store()
        .join("tmp")
        .join(format!("layer-{}-999-0-0", "ab".repeat(32)));
    std::fs::create_dir_all(stale.join("root/usr/lib")).unwrap();
    std::fs::write(
        env.store()
            .join("tmp")
            .join(format!("blob-{}-999-1-0", "cd".repeat(32))),
        "half",
    )
    .unwrap();
    env.give_to_user(&env.store());
    env.ok(&["pull", &format!("{}/left/app:1", registry.host())]);
    assert!(env.store_entries("tmp").is_empty());
}

#[test]
fn the_store_is_private_to_its_user() {
    let env = TestEnv::new();
    let registry = Registry::start();
    oci::push(&registry.url(), "priv/app", "1", &big_image(0, 0));
    env.ok(&["pull", &format!("{}/priv/app:1", registry.host())]);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(env.store()).unwrap().permissions(),
    );
    assert_eq!(
        mode & 0o777,
        0o700,
        "setuid files in layers must not be reachable by other users"
    );
}

#[test]
fn mirrors_from_the_user_config_are_tried_in_order() {
    let env = TestEnv::new();
    let registry = Registry::start();
    oci::push(&registry.url(), "library/tool", "2", &big_image(0, 0));
    let closed = crate::support::registry::free_port();
    env.write(
        "config/sandbox/config.toml",
        &format!(
            "[[registry]]\nprefix = \"docker.io\"\n\n[[registry.mirror]]\nlocation = \"127.0.0.1:{closed}\"\n\n[[registry.mirror]]\nlocation = \"{}\"\n",
            registry.host()
        ),
    );
    let out = env.run(&["pull", "tool:2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("mirror 127.0.0.1:{closed} failed")),
        "{stderr}"
    );
    let images = env.images();
    assert_eq!(
        images[0].0, "docker.io/library/tool:2",
        "recorded under the name the user asked for"
    );

    // An image the mirror does not have, while the registry behind it cannot be reached (here
    // a closed port; on a machine whose only way out is the mirror, its DNS): the error is the
    // mirror's answer, not the unreachable registry's.
    let upstream = crate::support::registry::free_port();
    env.write(
        "config/sandbox/config.toml",
        &format!(
            "[[registry]]\nprefix = \"127.0.0.1:{upstream}\"\ninsecure = true\n\n[[registry.mirror]]\nlocation = \"{}\"\n",
            registry.host()
        ),
    );
    let err = env.fails(&[
        "pull",
        &format!("127.0.0.1:{upstream}/library/nosuchimage:1"),
    ]);
    assert!(
        err.contains("error: image")
            && err.contains("not found on registry")
            && err.contains(&registry.host()),
        "{err}"
    );
    assert!(!err.starts_with("error: cannot reach"), "{err}");

    // A typo in our own config is an error that points at it.
    env.write(
        "config/sandbox/config.toml",
        "[[registry]]\nprefix = \"docker.io\"\nmirors = []\n",
    );
    let err = env.fails(&["pull", "tool:2"]);
    assert!(
        err.contains("config.toml:3:1: unknown field `mirors`")
            && err.contains("did you mean `mirror`?"),
        "{err}"
    );
    // A misspelt table is named as such, and doctor fails on it (every command would).
    env.write("config/sandbox/config.toml", "[foward]\ngitconfig = true\n");
    let err = env.fails(&["pull", "tool:2"]);
    assert!(
        err.contains("config.toml:1:") && err.contains("did you mean `forward`?"),
        "{err}"
    );
    assert!(
        !err.contains("mirror"),
        "no registry keys for a [forward] typo: {err}"
    );
    let doctor = env.run(&["doctor"]);
    let out = String::from_utf8_lossy(&doctor.stdout);
    assert_ne!(doctor.status.code(), Some(0), "{out}");
    assert!(
        out.lines()
            .any(|l| l.to_lowercase().starts_with("fail") && l.contains("user config")),
        "{out}"
    );
}

#[test]
fn a_private_ca_from_certs_d_is_trusted_and_its_absence_is_explained() {
    let env = TestEnv::new();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let registry = Registry::start_with(|dir| {
        std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), leaf_key.serialize_pem()).unwrap();
        format!(
            "  tls:\n    certificate: {0}/cert.pem\n    key: {0}/key.pem\n",
            dir.display()
        )
    });
    // Push over TLS with the CA trusted by the test's own client.
    let image = big_image(0, 0);
    let host = registry.host();
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let base = format!("https://{host}");
    for l in &image.layers {
        oci::push_blob(&client, &base, "tls/app", &l.blob, &l.digest);
    }
    oci::push_blob(
        &client,
        &base,
        "tls/app",
        &image.config,
        &image.config_digest,
    );
    oci::put_manifest(
        &client,
        &base,
        "tls/app",
        "1",
        oci::MANIFEST_TYPE,
        &image.manifest,
    );

    let reference = format!("{host}/tls/app:1");
    let err = env.fails(&["pull", &reference]);
    assert!(
        err.contains(&format!(
            "cannot reach registry {host}: TLS handshake failed"
        )),
        "{err}"
    );
    assert!(err.contains(&format!("certs.d/{host}/ca.crt")), "{err}");

    env.write(
        &format!("config/containers/certs.d/{host}/ca.crt"),
        &ca.pem(),
    );
    env.ok(&["pull", &reference]);
}

#[test]
fn a_full_disk_is_named_and_leaves_nothing_half_written() {
    assert!(
        crate::support::env::is_root(),
        "this test mounts a small tmpfs as the store and needs root for that (CI runs as root); `SANDBOX_TEST_SKIP_ENOSPC=1 scripts/test.sh` reports it as skipped"
    );
    let env = TestEnv::new();
    let registry = Registry::start();
    oci::push(&registry.url(), "full/app", "1", &big_image(1, 4_000_000));
    let mount_point = env.path().join("small");
    std::fs::create_dir_all(&mount_point).unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(&mount_point)
        .status()
        .unwrap();
    assert!(status.success(), "mount tmpfs");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _unmount = Unmount(mount_point.clone());
    env.give_to_user(&mount_point);
    let store = mount_point.join("store");
    let store_arg = store.to_str().unwrap().to_owned();
    let reference = format!("{}/full/app:1", registry.host());
    let err = env.fails(&["--root", &store_arg, "pull", &reference]);
    assert!(
        err.contains(&format!(
            "no space left on device while writing to the store at {store_arg}"
        )),
        "{err}"
    );
    assert!(err.contains("hint: free space"), "{err}");
    let tmp: Vec<_> = std::fs::read_dir(store.join("tmp")).unwrap().collect();
    assert!(tmp.is_empty(), "tmp/ keeps a half object");
    // Free space and the same command succeeds.
    let status = std::process::Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&mount_point)
        .status()
        .unwrap();
    assert!(status.success());
    env.ok(&["--root", &store_arg, "pull", &reference]);
}

/// Every byte a user's sandboxes leave is in `df` and `prune` can free it: the home of a
/// project that is gone, what a `kill -9` of a run left, what `doctor` tried. `df` adds up.
#[test]
fn homes_of_gone_projects_and_killed_runs_are_in_df_and_freed_by_prune() {
    let env = TestEnv::new();
    let registry = Registry::start();
    oci::push(&registry.url(), "disk/app", "1", &big_image(0, 0));
    let image = format!("{}/disk/app:1", registry.host());
    let doomed = env.path().join("doomed");
    std::fs::create_dir_all(&doomed).unwrap();
    env.give_to_user(&doomed);
    let run_in = |dir: &std::path::Path, script: &str| {
        env.command(&[
            "run",
            "--network",
            "none",
            "--image",
            &image,
            "--",
            "sh",
            "-c",
            script,
        ])
        .current_dir(dir)
        .output()
        .unwrap()
    };
    let out = run_in(&doomed, "head -c 300000 /dev/zero > ~/kept-state");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A row's count, and whether the last column (reclaimable) is nothing; sizes read
    // `293.0 kB`, two words.
    let row = |df: &str, kind: &str| -> (String, bool) {
        let line = df
            .lines()
            .find(|l| l.split_whitespace().next() == Some(kind))
            .unwrap_or_else(|| panic!("no {kind} row: {df}"));
        let count = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        (count, line.trim_end().ends_with(" 0 B"))
    };
    let df = env.ok(&["df"]);
    assert_eq!(
        row(&df, "homes"),
        ("1".into(), true),
        "its project is there: {df}"
    );
    std::fs::remove_dir_all(&doomed).unwrap();
    let df = env.ok(&["df"]);
    assert_eq!(
        row(&df, "homes"),
        ("1".into(), false),
        "its project is gone: {df}"
    );

    // A run killed with -9 leaves its container dir, with what it wrote.
    let project = env.project();
    let mut killed = env
        .command(&[
            "run",
            "--network",
            "none",
            "--image",
            &image,
            "--",
            "sh",
            "-c",
            "head -c 2000000 /dev/zero > /big; touch up; sleep 60",
        ])
        .current_dir(&project)
        .spawn()
        .unwrap();
    crate::support::wait_until_started(&project.join("up"), 20);
    killed.kill().unwrap();
    let _ = killed.wait();
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while env.ok(&["ps"]).lines().count() > 1 {
        assert!(Instant::now() < deadline, "the killed sandbox stayed");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let df = env.ok(&["df"]);
    assert_eq!(
        row(&df, "containers"),
        ("0".into(), false),
        "none runs; the killed run's dir is reclaimable: {df}"
    );
    assert!(!row(&df, "total").1, "{df}");
    // Caches count, and df says where they are.
    assert_eq!(row(&df, "caches").0, "0", "{df}");
    assert!(df.contains("caches: "), "{df}");

    // doctor tries overlayfs in the store and leaves nothing there.
    env.run(&["doctor"]);
    assert!(
        !env.store_entries("")
            .iter()
            .any(|e| e.starts_with("sandbox-doctor-")),
        "{:?}",
        env.store_entries("")
    );

    // The gone project's home was used a moment ago: kept for a week, unless --homes.
    let pruned = env.ok(&["prune"]);
    assert!(
        pruned.contains("0 homes of projects that are gone")
            && pruned.contains("1 containers that were killed"),
        "{pruned}"
    );
    let pruned = env.ok(&["prune", "--homes"]);
    assert!(
        pruned.contains("1 homes of projects that are gone"),
        "{pruned}"
    );
    let df = env.ok(&["df"]);
    // The live project's own home stays (the killed run's); nothing is left to reclaim.
    assert_eq!(row(&df, "homes"), ("1".into(), true), "{df}");
    assert_eq!(row(&df, "containers"), ("0".into(), true), "{df}");
}
