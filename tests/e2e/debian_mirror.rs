//! A Java and a PHP developer each clone a project with sandbox.toml and build: the toolchain
//! images are a Debian rootfs made by debootstrap (served by a loopback registry that the user
//! config names as docker.io's mirror), and the JDK, Maven, PHP and composer come from Debian's
//! package mirror in setup steps, through the sandbox's own network. Needs root (debootstrap)
//! and that mirror: `SANDBOX_TEST_SKIP_DEBIAN_MIRROR=1 scripts/test.sh` leaves these tests
//! out, reported as skipped (see CONTRIBUTING.md). The JVM's limits need cgroup v1 delegation too
//! (as `tests/e2e/limits.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::oci;
use crate::support::text;
use crate::support::tls::{ca_and_server, https_server};
use crate::support::{Registry, TestEnv};

const MIRROR: &str = "http://deb.debian.org/debian";
/// A full PATH: the test image's config names only /bin:/usr/bin, and dpkg needs the sbin dirs.
const ENV: &str =
    "[env]\nPATH = \"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"\n";

/// A minimal Debian 12 rootfs, made once per machine (debootstrap, as root) and kept.
fn debian_rootfs() -> PathBuf {
    let done = PathBuf::from("/tmp/sandbox-it-debian-bookworm");
    if done.join("etc/debian_version").exists() {
        return done;
    }
    assert!(
        crate::support::env::is_root(),
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
        media_type,
    };
    oci::assemble(vec![layer], oci::host_arch())
}

fn project(env: &TestEnv, name: &str, toml: &str) -> PathBuf {
    env.write(&format!("{name}/sandbox.toml"), toml);
    env.path().join(name)
}

/// A test user whose config names a loopback registry as docker.io's mirror, which serves
/// the Debian rootfs as the java and php images.
/// `extra_config` gives more of the user config, for this env.
fn mirrored_env(extra_config: impl FnOnce(&TestEnv) -> String) -> (TestEnv, Registry) {
    let env = TestEnv::new();
    let extra_config = extra_config(&env);
    let image = rootfs_image(&debian_rootfs());
    let registry = Registry::start();
    oci::push(&registry.url(), "library/eclipse-temurin", "17-jdk", &image);
    oci::push(&registry.url(), "library/php", "8.2-cli", &image);
    env.write(
        "config/sandbox/config.toml",
        &format!(
            "[[registry]]\nprefix = \"docker.io\"\n[[registry.mirror]]\nlocation = \"{}\"\n{extra_config}",
            registry.host(),
        ),
    );
    (env, registry)
}

/// The heap a JVM gives itself, from `java -XX:+PrintFlagsFinal -version` run in `project`
/// (the first command or one joining it).
fn max_heap_size(env: &TestEnv, project: &Path) -> String {
    let out = env
        .command(&["run", "--", "java", "-XX:+PrintFlagsFinal", "-version"])
        .current_dir(project)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("MaxHeapSize"))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap_or_else(|| panic!("no MaxHeapSize: {}", text(&out.stdout)))
        .to_owned()
}

/// A JVM sizes its default heap by the memory it finds (a quarter of it): under a limit, by
/// the limit, which it reads from the cgroups it sees, in the first command and in one that
/// joins it. Without that view it takes a quarter of the host's memory and is killed by the
/// limit instead of throwing OutOfMemoryError.
#[test]
fn a_jvm_sizes_its_heap_by_the_sandboxs_memory_limit() {
    let mut delegation = None;
    let (env, _registry) = mirrored_env(|env| {
        let made = crate::support::cgroups::Delegation::unwritten(env, "sandbox-it-jvm");
        let config = made.config();
        delegation = Some(made);
        config
    });
    let java = project(
        &env,
        "jvm-app",
        &format!("setup = [\"apt-get update\", \"apt-get install -y --no-install-recommends openjdk-17-jdk-headless\"]\n[toolchain]\nname = \"java\"\nversion = \"17\"\n[limits]\nmemory = \"512m\"\n{ENV}"),
    );
    assert_eq!(
        max_heap_size(&env, &java),
        "134217728",
        "a quarter of 512 MiB"
    );
    let mut running = env
        .command(&["run", "--", "sh", "-c", "touch up; sleep 60"])
        .current_dir(&java)
        .spawn()
        .unwrap();
    crate::support::wait_until_started(&java.join("up"), 30);
    let joined = max_heap_size(&env, &java);
    crate::support::signal(running.id() as i32, libc::SIGTERM);
    let _ = running.wait();
    assert_eq!(joined, "134217728", "in a command joining the sandbox");
    if let Some(delegation) = delegation {
        delegation.wait_until_empty();
    }
}

#[test]
fn java_and_php_projects_build_with_packages_from_the_debian_mirror() {
    // The "host" trusts a CA of its own (a company's, say) through the user config.
    let (host_ca, host_cert, host_key) =
        ca_and_server("sandbox test host CA", "host.containers.internal");
    let (env, _registry) = mirrored_env(|env| {
        let file = env.write("host-ca.crt", &host_ca);
        format!(
            "[tls]\nhost_cas = false\nca_files = [\"{}\"]\n",
            file.display()
        )
    });

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

/// The Maven wrapper's job, as its script-only flavour does it: fetch `distributionUrl` once
/// into `~/.m2/wrapper/dists` and run that Maven (curl and unzip come from a setup step).
const MVNW: &str = r#"#!/bin/sh
set -eu
base=$(cd "$(dirname "$0")" && pwd)
url=$(sed -n 's/^distributionUrl=//p' "$base/.mvn/wrapper/maven-wrapper.properties")
zip=${url##*/}
name=${zip%-bin.zip}
dists=${MAVEN_USER_HOME:-$HOME/.m2}/wrapper/dists/$name
if [ ! -x "$dists/$name/bin/mvn" ]; then
    tmp=$(mktemp -d)
    curl -fsSL -o "$tmp/$zip" "$url"
    unzip -q "$tmp/$zip" -d "$tmp"
    mkdir -p "$dists"
    mv "$tmp/$name" "$dists/"
    rm -rf "$tmp"
fi
exec "$dists/$name/bin/mvn" "$@"
"#;

/// A plain HTTP server on the host's 127.0.0.1 serving `dir`: (process, port).
fn http_server(dir: &Path) -> (std::process::Child, u16) {
    let script = "import http.server, sys, functools\n\
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])\n\
        server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)\n\
        print(server.server_address[1], flush=True)\n\
        server.serve_forever()\n";
    crate::support::python_server(script, &[dir.as_os_str()])
}

fn assert_ran(what: &str, out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{what}: exit {:?}\n{}\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// A Java and a PHP developer with projects in `~/src` build as they always do, with no Maven
/// Central or Packagist: `./mvnw -o package`, the wrapper fetching Maven from a loopback
/// server (Debian's Maven, zipped as Apache ships it) and the plugins from Debian's
/// maven-repo; and Debian's `composer install` from a path repository.
#[test]
fn mvnw_and_composer_build_offline_with_packages_from_the_debian_mirror() {
    let (env, _registry) = mirrored_env(|_| String::new());
    assert!(env.project().starts_with(env.passwd_home()));

    // Java. The last step lays the JDK out as the eclipse-temurin image does (the template's
    // JAVA_HOME).
    env.write(
        "project/sandbox.toml",
        &format!(
            "setup = [\"apt-get update\", \"apt-get install -y --no-install-recommends openjdk-17-jdk-headless maven libmaven-compiler-plugin-java libmaven-jar-plugin-java libmaven-resources-plugin-java libsurefire-java libmaven-install-plugin-java curl unzip zip\", \"mkdir -p /opt/java && ln -s /usr/lib/jvm/java-17-openjdk-* /opt/java/openjdk\"]\n[toolchain]\nname = \"java\"\nversion = \"17\"\n{ENV}"
        ),
    );
    // The distribution server's content: Debian's Maven as apache-maven-3.8.7-bin.zip.
    let dist = env.path().join("dist");
    std::fs::create_dir_all(&dist).unwrap();
    env.give_to_user(&dist);
    let volume = format!("{}:/dist", dist.display());
    let out = env.run(&[
        "run",
        "-v",
        &volume,
        "--",
        "sh",
        "-c",
        "cp -rL /usr/share/maven /tmp/apache-maven-3.8.7 && cd /tmp && zip -qr /dist/apache-maven-3.8.7-bin.zip apache-maven-3.8.7",
    ]);
    assert_ran("zip Debian's maven", &out);
    let (mut server, port) = http_server(&dist);
    env.write(
        "project/.mvn/wrapper/maven-wrapper.properties",
        &format!(
            "distributionUrl=http://host.containers.internal:{port}/apache-maven-3.8.7-bin.zip\n"
        ),
    );
    env.write(
        "project/.mvn/maven.config",
        "-Dmaven.repo.local=/usr/share/maven-repo\n",
    );
    env.write("project/pom.xml", crate::support::POM);
    env.write(
        "project/src/main/java/demo/Hello.java",
        "package demo;\npublic class Hello { public static void main(String[] a) { System.out.println(\"built by maven on \" + System.getProperty(\"java.version\")); } }\n",
    );
    let mvnw = env.write("project/mvnw", MVNW);
    std::fs::set_permissions(&mvnw, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = env.run(&[
        "run",
        "--host-loopback",
        "--",
        "./mvnw",
        "-o",
        "-q",
        "package",
    ]);
    let _ = server.kill();
    let _ = server.wait();
    assert_ran("./mvnw -o package", &out);
    let jar = env.project().join("target/app-1.0.jar");
    let meta = std::fs::metadata(&jar).expect("target/app-1.0.jar was built");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), env.uid());
    let out = env.run(&[
        "run",
        "--",
        "java",
        "-cp",
        "target/app-1.0.jar",
        "demo.Hello",
    ]);
    assert_ran("java -cp target/app-1.0.jar", &out);
    assert!(
        text(&out.stdout).starts_with("built by maven on 17"),
        "{}",
        text(&out.stdout)
    );
    // The wrapper's Maven stays in the ~/.m2 cache: with the server gone, it builds again.
    std::fs::remove_dir_all(env.project().join("target")).unwrap();
    let out = env.run(&["run", "--", "./mvnw", "-o", "-q", "package"]);
    assert_ran("./mvnw -o package, Maven from the cache", &out);
    assert!(jar.exists());

    // PHP: composer install from a path repository, Packagist switched off, no network.
    let php = project(
        &env,
        "php-app",
        &format!("setup = [\"apt-get update\", \"apt-get install -y --no-install-recommends php-cli composer\"]\n[toolchain]\nname = \"php\"\nversion = \"8.2\"\n{ENV}"),
    );
    env.write(
        "php-app/composer.json",
        r#"{
    "name": "demo/app",
    "repositories": [
        {"type": "path", "url": "packages/greeter"},
        {"packagist.org": false}
    ],
    "require": {"demo/greeter": "^1.0"}
}
"#,
    );
    env.write(
        "php-app/packages/greeter/composer.json",
        r#"{"name": "demo/greeter", "version": "1.0.0", "autoload": {"psr-4": {"Demo\\Greeter\\": "src/"}}}
"#,
    );
    env.write(
        "php-app/packages/greeter/src/Hello.php",
        "<?php\nnamespace Demo\\Greeter;\nclass Hello { public static function greet(): string { return \"hello from a path repository\\n\"; } }\n",
    );
    env.write(
        "php-app/app.php",
        "<?php\nrequire __DIR__ . '/vendor/autoload.php';\necho Demo\\Greeter\\Hello::greet();\n",
    );
    // The setup steps need the mirror; `composer install` needs nothing from the network.
    let out = env
        .command(&["run", "--", "true"])
        .current_dir(&php)
        .output()
        .unwrap();
    assert_ran("php setup", &out);
    let out = env
        .command(&[
            "run",
            "--network",
            "none",
            "--",
            "composer",
            "install",
            "--no-interaction",
        ])
        .current_dir(&php)
        .output()
        .unwrap();
    assert_ran("composer install", &out);
    let lock = std::fs::metadata(php.join("composer.lock")).expect("composer.lock was written");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&lock), env.uid());
    let out = env
        .command(&["run", "--network", "none", "--", "php", "app.php"])
        .current_dir(&php)
        .output()
        .unwrap();
    assert_ran("php app.php", &out);
    assert_eq!(text(&out.stdout), "hello from a path repository\n");
}
