//! A Java and a PHP developer each clone a project with sandbox.toml and build: the toolchain
//! images are a Debian rootfs made by debootstrap (served by a loopback registry that the user
//! config names as docker.io's mirror), and the JDK and PHP come from Debian's package mirror in
//! setup steps, through the sandbox's own network. Needs root (debootstrap) and that mirror:
//! `SANDBOX_TEST_SKIP_DEBIAN_MIRROR=1 scripts/test.sh` leaves this one test out, reported as
//! skipped (see the README).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    clippy::print_stderr
)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::oci;
use support::tls::{ca_and_server, https_server};
use support::{Registry, TestEnv};

const MIRROR: &str = "http://deb.debian.org/debian";
/// A full PATH: the test image's config names only /bin:/usr/bin, and dpkg needs the sbin dirs.
const ENV: &str =
    "[env]\nPATH = \"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"\n";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A minimal Debian 12 rootfs, made once per machine (debootstrap, as root) and kept.
fn debian_rootfs() -> PathBuf {
    let done = PathBuf::from("/tmp/sandbox-it-debian-bookworm");
    if done.join("etc/debian_version").exists() {
        return done;
    }
    assert!(
        support::env::is_root(),
        "this test runs debootstrap, which needs root (or `SANDBOX_TEST_SKIP_DEBIAN_MIRROR=1 scripts/test.sh` reports it as skipped)"
    );
    assert!(
        Path::new("/usr/sbin/debootstrap").exists(),
        "debootstrap is missing: install Debian's `debootstrap` package (.ci/run does)"
    );
    let work = PathBuf::from(format!("/tmp/sandbox-it-debian-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let status = Command::new("/usr/sbin/debootstrap")
        .args(["--variant=minbase", "bookworm"])
        .arg(&work)
        .arg(MIRROR)
        .status()
        .expect("run debootstrap");
    assert!(
        status.success(),
        "debootstrap failed: is Debian's mirror ({MIRROR}) reachable?"
    );
    // sandbox makes its own /dev; the image needs none of the host's device nodes.
    for entry in std::fs::read_dir(work.join("dev")).unwrap().flatten() {
        let _ = std::fs::remove_file(entry.path());
        let _ = std::fs::remove_dir_all(entry.path());
    }
    let _ = std::fs::remove_dir_all(&done);
    std::fs::rename(&work, &done).unwrap();
    done
}

/// The rootfs as one image layer, owners and modes as they are on disk.
fn rootfs_image(rootfs: &Path) -> oci::BuiltImage {
    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Complete);
    builder.follow_symlinks(false);
    builder.append_dir_all(".", rootfs).expect("tar the rootfs");
    let tar = builder.into_inner().expect("finish tar");
    let (blob, media_type) = oci::compress(&tar, oci::Compression::Gzip);
    let layer = oci::BuiltLayer {
        digest: oci::digest(&blob),
        diff_id: oci::digest(&tar),
        blob,
        tar,
        media_type,
    };
    oci::assemble(vec![layer], oci::host_arch())
}

fn project(env: &TestEnv, name: &str, toml: &str) -> PathBuf {
    env.write(&format!("{name}/sandbox.toml"), toml);
    env.path().join(name)
}

#[test]
fn java_and_php_projects_build_with_packages_from_the_debian_mirror() {
    let env = TestEnv::new();
    let image = rootfs_image(&debian_rootfs());
    let registry = Registry::start();
    oci::push(&registry.url(), "library/eclipse-temurin", "17-jdk", &image);
    oci::push(&registry.url(), "library/php", "8.2-cli", &image);
    // The "host" trusts a CA of its own (a company's, say) through the user config.
    let (host_ca, host_cert, host_key) =
        ca_and_server("sandbox test host CA", "host.containers.internal");
    let host_ca_file = env.write("host-ca.crt", &host_ca);
    env.write(
        "config/sandbox/config.toml",
        &format!(
            "[[registry]]\nprefix = \"docker.io\"\n[[registry.mirror]]\nlocation = \"{}\"\n[tls]\nhost_cas = false\nca_files = [\"{}\"]\n",
            registry.host(),
            host_ca_file.display()
        ),
    );

    // Java: the JDK (and curl, python) from setup steps, and a CA of the project's own that a
    // copy step puts in the image's bundle; then javac and java on the project's own source.
    let (image_ca, image_cert, image_key) =
        ca_and_server("sandbox test image CA", "host.containers.internal");
    let java = project(
        &env,
        "java-app",
        &format!("setup = [\"apt-get update\", \"apt-get install -y --no-install-recommends openjdk-17-jdk-headless curl python3\", {{ copy = \"image-ca.crt\", to = \"/usr/local/share/ca-certificates/\" }}, \"update-ca-certificates\"]\n[toolchain]\nname = \"java\"\nversion = \"17\"\n{ENV}"),
    );
    env.write("java-app/image-ca.crt", &image_ca);
    env.write(
        "java-app/Hello.java",
        "public class Hello { public static void main(String[] a) { System.out.println(\"Hello from \" + System.getProperty(\"java.version\")); } }\n",
    );
    let out = env
        .command(&["run", "--", "sh", "-c", "javac Hello.java && java Hello"])
        .current_dir(&java)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "java: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).starts_with("Hello from 17"),
        "{}",
        text(&out.stdout)
    );
    let class = std::fs::metadata(java.join("Hello.class")).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&class),
        env.uid(),
        "Hello.class is the user's"
    );
    // The lock pins it; a second run reuses the setup layer.
    env.command(&["lock"]).current_dir(&java).output().unwrap();
    let out = env
        .command(&["run", "--locked", "--", "java", "-version"])
        .current_dir(&java)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stderr).contains("setup: running"),
        "{}",
        text(&out.stderr)
    );

    // The host's CA and the image's own both verify, in curl, Python and Java, without -k.
    let (mut host_server, host_port) = https_server(
        &env.path().join("host-server"),
        &host_cert,
        &host_key,
        "host CA ok\n",
    );
    let (mut image_server, image_port) = https_server(
        &env.path().join("image-server"),
        &image_cert,
        &image_key,
        "image CA ok\n",
    );
    env.write(
        "java-app/Fetch.java",
        "public class Fetch { public static void main(String[] a) throws Exception { try (var in = new java.net.URL(a[0]).openStream()) { System.out.print(new String(in.readAllBytes())); } } }\n",
    );
    let mut fetch = String::from("set -e; javac Fetch.java");
    for port in [host_port, image_port] {
        let url = format!("https://host.containers.internal:{port}/");
        fetch.push_str(&format!(
            "; curl -sS {url}; python3 -c \"import urllib.request; print(urllib.request.urlopen('{url}').read().decode(), end='')\"; java Fetch {url}"
        ));
    }
    let out = env
        .command(&["run", "--host-loopback", "--", "sh", "-c", &fetch])
        .current_dir(&java)
        .output()
        .unwrap();
    let _ = host_server.kill();
    let _ = image_server.kill();
    let _ = host_server.wait();
    let _ = image_server.wait();
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(
        text(&out.stdout),
        "host CA ok\n".repeat(3) + &"image CA ok\n".repeat(3),
        "{}",
        text(&out.stderr)
    );
    // The host's CA is in no setup layer: it is mounted at run time only.
    let body: String = host_ca
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .take(1)
        .collect();
    let found = Command::new("grep")
        .args(["-r", "-l", "-F", &body])
        .arg(env.store().join("setup"))
        .output()
        .unwrap();
    assert!(
        found.stdout.is_empty(),
        "the host CA is in a layer: {}",
        text(&found.stdout)
    );

    // PHP: php-cli from a setup step.
    let php = project(
        &env,
        "php-app",
        &format!("setup = [\"apt-get update\", \"apt-get install -y --no-install-recommends php-cli\"]\n[toolchain]\nname = \"php\"\nversion = \"8.2\"\n{ENV}"),
    );
    let out = env
        .command(&[
            "run",
            "--",
            "php",
            "-r",
            "echo 'php ', PHP_MAJOR_VERSION, '.', PHP_MINOR_VERSION, PHP_EOL;",
        ])
        .current_dir(&php)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "php: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), "php 8.2\n");
}
