//! Host-side writes into dirs code inside the sandbox can write: code inside plants a link (or
//! a dangling one) where sandbox will later write, read or delete from the host's side, and the
//! link's target stays untouched. Driven as the unprivileged test user.

use std::path::{Path, PathBuf};

use crate::support::text;
use crate::support::{Registry, TestEnv};

struct Fixture {
    env: TestEnv,
    _registry: Registry,
    image: String,
    /// A dir outside the project with a file `keep` ("keep\n"): what the links aim at.
    victim: PathBuf,
}

fn fixture() -> Fixture {
    let env = TestEnv::new();
    let (registry, image) = crate::support::pulled_busybox(&env, "planted/busybox", Vec::new());
    env.write(
        "project/sandbox.toml",
        &format!("[toolchain]\nimage = \"{image}\"\n[network]\nmode = \"none\"\n"),
    );
    env.write("victim/keep", "keep\n");
    let victim = env.path().join("victim");
    Fixture {
        env,
        _registry: registry,
        image,
        victim,
    }
}

impl Fixture {
    /// Runs `script` inside, as code in the project would (it plants the links).
    fn inside(&self, script: &str) {
        let out = self.env.run(&["run", "--", "sh", "-c", script]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }

    /// The victim dir holds only `keep`, unchanged.
    fn assert_untouched(&self, what: &str) {
        let names: Vec<String> = std::fs::read_dir(&self.victim)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["keep"], "{what}: the victim dir changed");
        assert_eq!(
            std::fs::read_to_string(self.victim.join("keep")).unwrap(),
            "keep\n",
            "{what}: the victim file changed"
        );
    }

    fn victim(&self, name: &str) -> String {
        self.victim.join(name).display().to_string()
    }
}

/// `sandbox export -o dist/` into a dir where code inside planted `index.json` (or
/// `oci-layout`, a blob, or `blobs` itself) as a link: refused, naming what it did not make;
/// `-o out/` where `out` is a link: refused. (The export wrote through the links, anywhere in
/// the user's home.)
#[test]
fn an_export_into_a_dir_with_planted_links_is_refused() {
    let f = fixture();
    let plants = [
        (
            "index.json",
            format!("ln -s {} dist/index.json", f.victim("keep")),
        ),
        (
            "oci-layout",
            format!("ln -s {} dist/oci-layout", f.victim("new")),
        ),
        (
            "blobs/sha256/",
            format!(
                "mkdir -p dist/blobs/sha256 && ln -s {} dist/blobs/sha256/{}",
                f.victim("blob"),
                "a".repeat(64)
            ),
        ),
        ("blobs", format!("ln -s {} dist/blobs", f.victim(""))),
    ];
    for (what, plant) in plants {
        f.inside(&format!("rm -rf dist; mkdir dist; {plant}"));
        let err = f.env.fails(&["export", "-o", "dist/"]);
        assert!(
            err.contains("which sandbox export did not make") && err.contains(what),
            "{what}: {err}"
        );
        f.assert_untouched(what);
    }
    // The output dir itself a link (to the victim dir, or dangling).
    for target in [f.victim(""), f.victim("made")] {
        f.inside(&format!("rm -rf dist; ln -s {target} dist"));
        let err = f.env.fails(&["export", "-o", "dist/"]);
        assert!(err.contains("is a link"), "{err}");
        f.assert_untouched("dist -> victim");
    }
    // A clean dir, and again into what that export wrote: both work.
    f.inside("rm -rf dist");
    f.env.ok(&["export", "-o", "dist/"]);
    f.env.ok(&["export", "-o", "dist/"]);
    assert!(f.env.project().join("dist/index.json").is_file());
}

/// `sandbox export -o app.tar` where code inside planted `app.tar` as a link (to a file, or
/// dangling): the archive replaces the link; the target is untouched. (The archive was
/// written through a planted temp name and the rename made `app.tar` the link.)
#[test]
fn an_export_to_a_planted_archive_link_replaces_the_link() {
    let f = fixture();
    for target in [f.victim("keep"), f.victim("new")] {
        f.inside(&format!("rm -f app.tar; ln -s {target} app.tar"));
        f.env.ok(&["export", "-o", "app.tar"]);
        let meta = std::fs::symlink_metadata(f.env.project().join("app.tar")).unwrap();
        assert!(
            meta.is_file() && meta.len() > 0,
            "app.tar is not the archive"
        );
        f.assert_untouched(&target);
    }
    // Links at the temp names an export would make next to it (`app.partial-<pid>`, for the
    // pids about to be given out): none is written through.
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let planted: Vec<PathBuf> = (last + 1..=last + 400)
        .map(|pid| f.env.project().join(format!("app.partial-{pid}")))
        .collect();
    for link in &planted {
        std::os::unix::fs::symlink(f.victim("keep"), link).unwrap();
    }
    f.env.ok(&["export", "-o", "app.tar"]);
    assert!(std::fs::symlink_metadata(f.env.project().join("app.tar"))
        .unwrap()
        .is_file());
    f.assert_untouched("app.partial-<pid>");
    for link in &planted {
        std::fs::remove_file(link).unwrap();
    }
    // Nothing but the archive is left beside it.
    let leftovers: Vec<String> = std::fs::read_dir(f.env.project())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("app") && n != "app.tar")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// `--network-log net.jsonl` where code inside planted `net.jsonl` (or a dir on the way) as a
/// link: refused at start, named; the target is untouched. (Every lookup and connection was
/// appended to the link's target.)
#[test]
fn a_network_log_planted_as_a_link_is_refused() {
    let f = fixture();
    let plants = [
        ("net.jsonl", format!("ln -s {} net.jsonl", f.victim("keep"))),
        ("net.jsonl", format!("ln -s {} net.jsonl", f.victim("new"))),
        ("logs", format!("ln -s {} logs", f.victim(""))),
    ];
    for (what, plant) in plants {
        f.inside(&format!("rm -rf net.jsonl logs; {plant}"));
        let log = if what == "logs" {
            "logs/net.jsonl"
        } else {
            "net.jsonl"
        };
        let out = f.env.run(&[
            "run",
            "--network",
            "relay",
            "--network-log",
            log,
            "--",
            "true",
        ]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{what}: {err}");
        assert!(err.contains("is a link"), "{what}: {err}");
        f.assert_untouched(what);
    }
}

/// The setup layer's own copies of the files sandbox writes in /etc, as a step saw them.
fn captured(store: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    let mut stack = vec![store.join("setup")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if e.file_type().unwrap().is_dir() {
                if e.file_name() == "captured" {
                    for f in std::fs::read_dir(&path).unwrap().flatten() {
                        found.push((
                            f.file_name().to_string_lossy().into_owned(),
                            std::fs::read(f.path()).unwrap(),
                        ));
                    }
                } else {
                    stack.push(path);
                }
            }
        }
    }
    found
}

/// A setup step replaces `/etc` with a link to a host dir holding exactly what sandbox writes
/// there (hostname, hosts, resolv.conf, passwd, group): cleaning the step's layer deletes
/// nothing through it. (It deleted each matching file in that host dir.)
#[test]
fn a_setup_step_cannot_make_sandbox_delete_host_files() {
    let f = fixture();
    let names = "hostname hosts resolv.conf passwd group";
    let capture = format!("mkdir /captured && for n in {names}; do cp /etc/$n /captured/; done");
    let toml = |steps: &str| {
        format!(
            "setup = [{steps}]\n[toolchain]\nimage = \"{}\"\n[network]\nmode = \"none\"\n",
            f.image
        )
    };
    f.env
        .write("project/sandbox.toml", &toml(&format!("\"{capture}\"")));
    f.env.ok(&["run", "--", "true"]);
    let copies = captured(&f.env.store());
    assert_eq!(copies.len(), 5, "what the step saw in /etc: {copies:?}");
    let target = f.env.path().join("etc-victim");
    std::fs::create_dir_all(&target).unwrap();
    for (name, bytes) in &copies {
        std::fs::write(target.join(name), bytes).unwrap();
    }
    f.env.give_to_user(&target);
    f.env.write(
        "project/sandbox.toml",
        &toml(&format!(
            "\"{capture}\", \"rm -rf /etc && ln -s {} /etc\"",
            target.display()
        )),
    );
    // What runs after the step may fail (its /etc is gone); the host's files must stay.
    let _ = f.env.run(&["run", "--", "true"]);
    for (name, bytes) in &copies {
        assert_eq!(
            std::fs::read(target.join(name)).ok().as_ref(),
            Some(bytes),
            "{name} was deleted on the host through the step's link"
        );
    }
}
