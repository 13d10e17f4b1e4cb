//! Real hosts: Debian 12 (kernel 6.1, systemd 252) and Debian 13 (kernel 6.12, systemd 257,
//! systemd-resolved) booted under qemu, cgroup v2 only, each with a user whose systemd user
//! manager runs. In each, `tests/vm/journey.sh` walks a new user's first hour as that user and
//! prints a line per check; every check must say `ok`.
//!
//! The guests reach nothing but the registry this test starts on 127.0.0.1 (qemu's user
//! network, restricted, with one guestfwd to it). Their disks are built once per machine from
//! Debian's mirror (`tests/vm/build-guest.sh`, as root) and kept in /var/tmp/sandbox-vm-cache;
//! each boot writes to a throwaway overlay of its own. KVM guests never run on this machine's
//! CPUs, so qemu emulates (TCG). `SANDBOX_TEST_SKIP_VMS=1 scripts/test.sh` reports both as
//! skipped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::oci::{self, Compression, Entry, LayerSpec};
use crate::support::Registry;

const CACHE: &str = "/var/tmp/sandbox-vm-cache";
/// Where the guest finds the registry (qemu forwards it to the test's).
const REGISTRY_IP: &str = "10.0.2.100";
/// The longest a guest may take from boot to power-off.
const JOURNEY: Duration = Duration::from_secs(12 * 60);
/// Every check journey.sh makes, in its order.
const CHECKS: &[&str] = &[
    "doctor",
    "doctor-cgroups",
    "doctor-relay",
    "pull-through-mirror",
    "run-in-project",
    "mvnw",
    "java-runs-the-jar",
    "enter-in-a-pty",
    "kernel-overlay",
    "kernel-overlay-80-layers",
    "cgroup-namespace",
    "jvm-heap-under-512m",
    "jvm-heap-when-joined",
    "memory-kill",
    "memory-kill-rc",
    "export",
    "push",
    "pull-pushed",
];

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn run_root_script(what: &str, command: &mut Command) {
    let started = Instant::now();
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{what}: {:.0} s", started.elapsed().as_secs_f64());
}

/// The guest's disk, kernel and initrd: built once per version of the build script.
fn guest(release: &str) -> PathBuf {
    let script = repo_file("tests/vm/build-guest.sh");
    let version = oci::digest(&std::fs::read(&script).unwrap());
    let dir = Path::new(CACHE).join(format!("{release}-{}", &version[7..19]));
    if dir.join("disk.img").exists() {
        return dir;
    }
    assert!(
        crate::support::env::is_root(),
        "building the {release} guest needs root (debootstrap); or SANDBOX_TEST_SKIP_VMS=1"
    );
    std::fs::create_dir_all(CACHE).unwrap();
    // One builder at a time per guest: the other test waits for it.
    let lock = std::fs::File::create(Path::new(CACHE).join(format!("{release}.lock"))).unwrap();
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap();
    if !dir.join("disk.img").exists() {
        run_root_script(
            &format!("building the {release} guest"),
            Command::new(&script).arg(release).arg(&dir),
        );
    }
    dir
}

/// Debian 12's JDK with Maven and the plugins a `package` build takes from Debian's
/// maven-repo, as a root file system tar (the guests reach no package mirror).
fn jdk_maven_tar() -> PathBuf {
    let tar = Path::new(CACHE).join("jdk-maven.tar");
    if tar.exists() {
        return tar;
    }
    std::fs::create_dir_all(CACHE).unwrap();
    let lock = std::fs::File::create(Path::new(CACHE).join("jdk-maven.lock")).unwrap();
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap();
    if !tar.exists() {
        run_root_script(
            "building the JDK and Maven image",
            Command::new(repo_file("bench/debian-images.sh"))
                .arg(CACHE)
                .arg("jdk-maven"),
        );
    }
    tar
}

/// The images the journey pulls: the JDK as docker.io's eclipse-temurin (through the mirror),
/// an image of 80 layers, busybox for the project that is exported and pushed.
fn serve_images(registry: &Registry) {
    let tar = std::fs::read(jdk_maven_tar()).unwrap();
    // Uncompressed: the emulated guest unpacks it several times faster than gzip.
    let (blob, media_type) = oci::compress(&tar, Compression::None);
    let layer = oci::BuiltLayer {
        digest: oci::digest(&blob),
        diff_id: oci::digest(&tar),
        blob,
        media_type,
    };
    let jdk = oci::assemble(vec![layer], oci::host_arch());
    oci::push(&registry.url(), "library/eclipse-temurin", "17-jdk", &jdk);
    let mut layers = vec![LayerSpec {
        entries: oci::busybox_entries(),
        compression: Compression::Gzip,
    }];
    for n in 2..=80 {
        layers.push(LayerSpec {
            entries: vec![Entry::file(
                &format!("layer{n}"),
                format!("layer {n}\n").as_bytes(),
            )],
            compression: Compression::Gzip,
        });
    }
    let many = oci::build(&oci::ImageSpec {
        layers,
        architecture: oci::host_arch().into(),
    });
    oci::push(&registry.url(), "many/layers", "80", &many);
    let busybox = oci::build(&oci::ImageSpec {
        layers: vec![LayerSpec {
            entries: oci::busybox_full_entries(),
            compression: Compression::Gzip,
        }],
        architecture: oci::host_arch().into(),
    });
    oci::push(&registry.url(), "library/busybox", "latest", &busybox);
}

/// The job the guest runs at boot: the binary, the journey and what it needs to know.
fn job_dir(registry_port: u16) -> tempfile::TempDir {
    let job = tempfile::Builder::new()
        .prefix("sandbox-vm-job-")
        .tempdir_in("/tmp")
        .unwrap();
    let put = |name: &str, bytes: &[u8], mode: u32| {
        let path = job.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .unwrap();
    };
    put(
        "sandbox",
        &std::fs::read(env!("CARGO_BIN_EXE_sandbox")).unwrap(),
        0o755,
    );
    put(
        "journey.sh",
        &std::fs::read(repo_file("tests/vm/journey.sh")).unwrap(),
        0o755,
    );
    put(
        "journey.env",
        format!(
            "REGISTRY_IP={REGISTRY_IP}\nREGISTRY={REGISTRY_IP}:5000\nJAVA_IMAGE=library/eclipse-temurin:17-jdk\nLAYERS_IMAGE=many/layers:80\nBUSYBOX_IMAGE=library/busybox:latest\n# the registry on the host: 127.0.0.1:{registry_port}\n"
        )
        .as_bytes(),
        0o644,
    );
    put("pom.xml", crate::support::POM.as_bytes(), 0o644);
    put("mvnw", MVNW.as_bytes(), 0o755);
    job
}

/// The Maven wrapper's job where no distribution server is reachable: the image's Maven.
const MVNW: &str = "#!/bin/sh\n# Maven Wrapper stand-in: this network has no distribution server; the image has Maven.\nexec mvn \"$@\"\n";

/// Boots the guest with `job` and `out` shared; returns how long it ran.
fn boot(guest: &Path, job: &Path, out: &Path, registry_port: u16) -> Duration {
    let qemu = ["/usr/bin/qemu-system-x86_64", "/usr/local/bin/qemu-system-x86_64"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("qemu-system-x86_64 is missing: scripts/host-packages.sh installs it (qemu-system-x86 from bookworm-backports)");
    assert!(
        Path::new("/usr/bin/socat").exists(),
        "socat is missing: scripts/host-packages.sh installs it"
    );
    let disk = out.join("run.qcow2");
    let made = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
        .arg(guest.join("disk.img"))
        .arg(&disk)
        .status()
        .expect("qemu-img (qemu-utils)");
    assert!(made.success(), "qemu-img create failed");
    let mut qemu = Command::new(qemu)
        .args(["-accel", "tcg,thread=multi", "-cpu", "max", "-smp", "2", "-m", "3072"])
        .args(["-display", "none", "-monitor", "none", "-no-reboot"])
        .arg("-kernel")
        .arg(guest.join("vmlinuz"))
        .arg("-initrd")
        .arg(guest.join("initrd.img"))
        .args(["-append", "root=/dev/vda rw console=ttyS0 panic=-1"])
        .arg("-drive")
        .arg(format!("file={},format=qcow2,if=virtio", disk.display()))
        .arg("-virtfs")
        .arg(format!(
            "local,path={},mount_tag=job,security_model=none,readonly=on",
            job.display()
        ))
        .arg("-virtfs")
        .arg(format!(
            "local,path={},mount_tag=out,security_model=none",
            out.display()
        ))
        .arg("-nic")
        .arg(format!(
            "user,model=virtio-net-pci,restrict=on,guestfwd=tcp:{REGISTRY_IP}:5000-cmd:socat - TCP:127.0.0.1:{registry_port}"
        ))
        .arg("-serial")
        .arg(format!("file:{}", out.join("console.log").display()))
        .stdin(Stdio::null())
        .spawn()
        .expect("start qemu");
    let started = Instant::now();
    loop {
        if let Some(status) = qemu.try_wait().unwrap() {
            assert!(status.success(), "qemu failed: {status}");
            return started.elapsed();
        }
        if started.elapsed() > JOURNEY {
            let _ = qemu.kill();
            let _ = qemu.wait();
            panic!(
                "the guest did not finish within {} s; its console ends:\n{}\nits journey so far:\n{}",
                JOURNEY.as_secs(),
                tail(&out.join("console.log"), 40),
                std::fs::read_to_string(out.join("journey.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Boots `release`, runs the journey, and checks every line of it.
fn journey(release: &str, kernel: &str, name_server: Option<&str>) {
    assert!(
        crate::support::env::is_root(),
        "the VM journeys need root (to build the guests); or SANDBOX_TEST_SKIP_VMS=1"
    );
    let guest = guest(release);
    let registry = Registry::start();
    serve_images(&registry);
    let port: u16 = registry
        .host()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the registry's port");
    let job = job_dir(port);
    let out = tempfile::Builder::new()
        .prefix("sandbox-vm-out-")
        .tempdir_in("/tmp")
        .unwrap();
    let took = boot(&guest, job.path(), out.path(), port);
    let log = std::fs::read_to_string(out.path().join("journey.log")).unwrap_or_default();
    eprintln!(
        "{release}: the guest ran {:.0} s\n{log}",
        took.as_secs_f64()
    );
    assert!(
        log.contains("journey done"),
        "the journey did not finish; its console ends:\n{}",
        tail(&out.path().join("console.log"), 40)
    );
    let host = log
        .lines()
        .find_map(|l| l.strip_prefix("ok host: "))
        .expect("the host line");
    assert!(host.starts_with(kernel), "kernel {kernel}: {host}");
    assert!(host.contains("cgroup2fs"), "cgroup v2 only: {host}");
    let mut checks = CHECKS.to_vec();
    if let Some(server) = name_server {
        assert!(
            host.trim_end()
                .ends_with(&format!("first name server {server}")),
            "{host}"
        );
        checks.push("names-resolve");
    }
    let failed: Vec<&str> = log.lines().filter(|l| l.starts_with("FAIL ")).collect();
    let missing: Vec<&&str> = checks
        .iter()
        .filter(|c| !log.lines().any(|l| l.starts_with(&format!("ok {c}: "))))
        .collect();
    assert!(
        failed.is_empty() && missing.is_empty(),
        "{release}: failed {failed:#?}; no line for {missing:?}"
    );
}

#[test]
fn debian_12_guest_journey() {
    journey("bookworm", "6.1.", None);
}

#[test]
fn debian_13_guest_journey() {
    journey("trixie", "6.12.", Some("127.0.0.53"));
}
