//! Mobility: the prepared sandbox (image and setup layers) leaves the machine as a standard OCI
//! image that other tools run. podman (with runc, rootless, in the test's own dirs) is the
//! other tool here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    clippy::print_stderr
)]

mod support;

use std::path::Path;
use std::process::Command;

use support::TestEnv;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
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

#[test]
fn an_exported_sandbox_loads_and_runs_in_podman_with_what_setup_made() {
    let env = TestEnv::new();
    let (_registry, image) = support::pulled_busybox(&env, "mobility/app", Vec::new());
    env.write(
        "project/sandbox.toml",
        &format!(
            "setup = [\"echo made-by-setup > /made\", \"rm /bin/vi\"]\n[toolchain]\nimage = \"{image}\"\n[env]\nGREETING = \"hello\"\n[network]\nmode = \"none\"\n"
        ),
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

    let podman_dir = env.path().join("podman");
    std::fs::create_dir_all(&podman_dir).unwrap();
    let loaded = podman(
        &env,
        &podman_dir,
        &["load", "-i", &archive.display().to_string()],
    );
    assert!(
        loaded.status.success(),
        "podman load: {}",
        text(&loaded.stderr)
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
            "cat /made; echo $GREETING; test -e /bin/vi || echo vi-removed",
        ],
    );
    assert!(ran.status.success(), "podman run: {}", text(&ran.stderr));
    assert_eq!(text(&ran.stdout), "made-by-setup\nhello\nvi-removed\n");
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
    // An OCI image layout too.
    env.ok(&["export", "-o", "layout/"]);
    assert!(env.path().join("project/layout/index.json").is_file());
    assert!(env.path().join("project/layout/oci-layout").is_file());
}
