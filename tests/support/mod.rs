//! Shared test harness: an environment that runs the real binary as the unprivileged test user,
//! a real registry on loopback, an OCI image builder, and a hostile registry.

pub mod cgroups;
pub mod env;
pub mod hostile;
pub mod oci;
pub mod registry;
pub mod tls;
pub mod token_registry;

pub use env::TestEnv;

pub use registry::Registry;

/// A registry on loopback serving `repo:1`, a one-layer image of busybox with every applet plus
/// `extra` entries, already pulled into `env`'s store. Returns the registry (keep it alive) and
/// the reference.
pub fn pulled_busybox(env: &TestEnv, repo: &str, extra: Vec<oci::Entry>) -> (Registry, String) {
    let registry = Registry::start();
    let mut entries = oci::busybox_full_entries();
    entries.extend(extra);
    let image = oci::build(&oci::ImageSpec {
        layers: vec![oci::LayerSpec {
            entries,
            compression: oci::Compression::Gzip,
        }],
        architecture: oci::host_arch().into(),
    });
    oci::push(&registry.url(), repo, "1", &image);
    let reference = format!("{}/{repo}:1", registry.host());
    env.ok(&["pull", &reference]);
    (registry, reference)
}

/// A static helper compiled from C, as an executable entry at `path` in an image.
pub fn helper_entry(path: &str, name: &str, source: &str) -> oci::Entry {
    oci::Entry::File {
        path: path.into(),
        mode: 0o755,
        uid: 0,
        gid: 0,
        data: oci::static_helper(name, source),
    }
}

/// A server written in Python (`script`, run with `args`) on the host's 127.0.0.1, which prints
/// its port on its first line: (process, port). The caller ends it.
pub fn python_server(script: &str, args: &[&std::ffi::OsStr]) -> (std::process::Child, u16) {
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 on the host runs the test's server");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("the server's first line");
    (child, line.trim().parse().expect("the server's port"))
}

/// The pom.xml of a one-class Java 17 project that `mvn -o package` builds from Debian's
/// maven-repo (artifact demo:app:1.0).
pub const POM: &str = r#"<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>demo</groupId>
  <artifactId>app</artifactId>
  <version>1.0</version>
  <properties>
    <maven.compiler.source>17</maven.compiler.source>
    <maven.compiler.target>17</maven.compiler.target>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
  </properties>
</project>
"#;

/// Waits (up to `secs` seconds) until a sandbox started in the background made `marker`
/// (`touch up` as its command's first act); fails the test if it never does.
pub fn wait_until_started(marker: &std::path::Path, secs: u64) {
    let started = std::time::Instant::now();
    while !marker.exists() {
        assert!(
            started.elapsed().as_secs() < secs,
            "the sandbox did not start within {secs} s (no {})",
            marker.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A command's output as text, as a terminal would show it (invalid UTF-8 replaced).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Sends `signal` (its number, as libc names it) to `pid`, a process the test started.
pub fn signal(pid: i32, signal: i32) {
    if let Ok(signal) = nix::sys::signal::Signal::try_from(signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
    }
}
