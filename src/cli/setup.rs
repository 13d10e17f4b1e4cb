//! The setup layer: a project's `setup` steps run once as root, with network, in a container of
//! its base image; the container's changes become a layer in the store (image::setup), reused
//! by every later run of every project with the same inputs.
//!
//! The container runs in a forked child whose stdout and stderr are a pipe we read: the output
//! streams live (a spinner with the last line on a terminal, the lines themselves otherwise),
//! and a failing step is reported with its number, its text, the tail of its output and its
//! exit code. Nothing is stored unless every step succeeded.

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader};
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::path::PathBuf;

use super::args::GlobalArgs;
use super::environment::Environment;
use super::errors::CliError;
use super::progress::Progress;
use super::session;
use crate::config::project::Project;
use crate::image::runnable::Runnable;
use crate::image::setup::{SetupInputs, SetupRecord};
use crate::image::store::Store;
use crate::image::{Digest, Reference};
use crate::runtime::monitor::{self, Outcome};
use crate::runtime::spec::{ContainerSpec, Identity, NetworkOptions, Program};
use crate::runtime::{state, sys, RunReporter};

/// Lines of output kept for the report of a failing step.
const TAIL: usize = 20;
/// How each step is announced in the output (and found again there).
const MARK: &str = "==> sandbox setup step ";

/// The setup layer of `config` on `image`, built first when it is not stored.
pub fn prepare(
    global: &GlobalArgs,
    store: &Store,
    config: &Project,
    image: &Runnable,
    reference: &Reference,
    progress: &Progress,
) -> Result<PathBuf, CliError> {
    let toolchain = config
        .toolchain
        .as_ref()
        .map(|t| format!("{}@{}", t.name, t.version));
    let key = SetupInputs {
        base_manifest: &image.manifest,
        toolchain: toolchain.as_deref(),
        steps: &config.setup,
        env: &config.env,
    }
    .key();
    if let Some(layer) = store.setup_layer(&key) {
        return Ok(layer);
    }
    let digest = Digest::parse(&key).map_err(|e| CliError::Usage {
        message: format!("internal error: setup key {key}: {e}"),
        hint: None,
    })?;
    // A second run of the same setup waits here, then finds the layer built.
    let _lock = store.lock_digest(&digest)?;
    if let Some(layer) = store.setup_layer(&key) {
        return Ok(layer);
    }
    progress.line(&format!(
        "setup: running {} step{} once as root (setup key {})",
        config.setup.len(),
        if config.setup.len() == 1 { "" } else { "s" },
        digest.short()
    ));
    let kept = store.temp_path("setup", &digest);
    let spec = setup_spec(global, config, image, reference, &kept)?;
    let outcome = run_streaming(&spec, progress)?;
    if outcome.code != 0 {
        let _ = fs_err::remove_dir_all(&kept);
        let step = outcome.step.unwrap_or(1);
        let text = config.setup.get(step - 1).cloned().unwrap_or_default();
        return Err(CliError::Usage {
            message: format!(
                "setup step {step} of {} failed with exit code {}: {text}\n{}",
                config.setup.len(),
                outcome.code,
                outcome
                    .tail
                    .iter()
                    .map(|l| format!("  | {l}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
            hint: Some(format!(
                "fix the step in {} and run again; nothing was stored",
                config.file.display()
            )),
        });
    }
    let record = SetupRecord {
        key: key.clone(),
        base_manifest: image.manifest.clone(),
        steps: config.setup.clone(),
        built: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    // Shared, so `prune` and `rmi` (exclusive) never see it half-committed.
    let _store = store.lock(crate::fsutil::lock::LockMode::Shared)?;
    let layer = store.commit_setup_layer(&key, &kept, &record)?;
    progress.line(&format!("setup: done, stored as layer {}", digest.short()));
    Ok(layer)
}

/// The steps as one script: each announced, the first failure ends it with its status.
fn script(steps: &[String]) -> String {
    let mut out = String::from("set -u\n");
    for (i, step) in steps.iter().enumerate() {
        let quoted = step.replace('\'', "'\\''");
        out.push_str(&format!(
            "printf '%s\\n' '{MARK}{n}/{total}: {quoted}'\n/bin/sh -c '{quoted}' </dev/null || exit $?\n",
            n = i + 1,
            total = steps.len(),
        ));
    }
    out
}

fn setup_spec(
    global: &GlobalArgs,
    config: &Project,
    image: &Runnable,
    reference: &Reference,
    kept: &std::path::Path,
) -> Result<ContainerSpec, CliError> {
    let containers = session::store_root(global).join("containers");
    let id = state::new_id();
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    let name = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map_or_else(|| format!("user{uid}"), |u| u.name);
    // Setup runs as root, with root's home: the user's own home must not be made (as root's)
    // inside the layer every later run sits on.
    let identity = Identity {
        uid,
        gid,
        name,
        home: "/root".into(),
        shell: "/bin/sh".into(),
        ids_mapped: true,
    };
    let network = super::commands::run::network_mode(None, Some(config))?;
    let mut env = Environment::base(&image.env, &config.env, std::path::Path::new("/root"));
    env.set("HOME", "/root");
    env.set("DEBIAN_FRONTEND", "noninteractive");
    let hostname = crate::runtime::etc_files::hostname_for(&config.dir);
    Ok(ContainerSpec {
        id: id.clone(),
        dir: containers.join(&id),
        layers: image.layers.clone(),
        // Not the project's image name: a `run` meanwhile must not join this container.
        image: format!("{reference} (setup)"),
        project_dir: config.dir.clone(),
        cwd: "/".into(),
        hostname,
        network,
        network_options: NetworkOptions::default(),
        identity,
        as_root: true,
        env: env.into_vec(),
        program: Program::Command(vec!["/bin/sh".into(), "-c".into(), script(&config.setup)]),
        tty: false,
        resolv_conf: fs_err::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        overlay: crate::runtime::spec::OverlayChoice::Auto,
        caches: Vec::new(),
        mount_project: false,
        keep_upper: Some(kept.to_owned()),
    })
}

struct StepsOutcome {
    code: i32,
    /// The step that ran last (1-based), as its announcement says.
    step: Option<usize>,
    tail: VecDeque<String>,
}

struct Silent;
impl RunReporter for Silent {}

/// Runs the setup container in a child whose output comes to us through a pipe.
fn run_streaming(spec: &ContainerSpec, progress: &Progress) -> Result<StepsOutcome, CliError> {
    let (read, write) = sys::pipe()?;
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the child only runs the container and exits; it never returns here.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(CliError::Io(std::io::Error::last_os_error()));
    }
    if child == 0 {
        drop(read);
        child_main(spec, &write, parent);
    }
    drop(write);
    let outcome = follow(read, progress);
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(child, &mut status, 0) };
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    Ok(StepsOutcome { code, ..outcome })
}

/// The child: stdout and stderr into the pipe, no stdin; the container; its status.
fn child_main(spec: &ContainerSpec, out: &OwnedFd, parent: libc::pid_t) -> ! {
    // The setup container ends with the sandbox command the user started (`kill -9` of it too):
    // our death takes pid 1 and the network helper with it.
    let _ = sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } != parent {
        sys::exit_now(137);
    }
    let null = fs_err::File::open("/dev/null");
    if let Ok(null) = &null {
        let _ = sys::dup2(null.as_raw_fd(), 0);
    }
    let _ = sys::dup2(out.as_raw_fd(), 1);
    let _ = sys::dup2(out.as_raw_fd(), 2);
    let code = match monitor::start(spec, &Silent) {
        Ok(Outcome::Exited(code)) => code,
        Ok(Outcome::NotStarted { program, code, .. }) => {
            let _ = crate::runtime::pty::write_all(
                2,
                format!("error: cannot start {program} in the sandbox\n").as_bytes(),
            );
            code
        }
        Err(e) => {
            let _ = crate::runtime::pty::write_all(2, CliError::from(e).render().as_bytes());
            125
        }
    };
    sys::exit_now(code)
}

/// Shows the output as it comes and keeps what the report of a failure needs.
#[allow(clippy::print_stderr)]
fn follow(read: OwnedFd, progress: &Progress) -> StepsOutcome {
    let spinner = progress.spinner();
    let mut outcome = StepsOutcome {
        code: 0,
        step: None,
        tail: VecDeque::new(),
    };
    let reader = BufReader::new(std::fs::File::from(read));
    for line in reader.split(b'\n').map_while(Result::ok) {
        let line = String::from_utf8_lossy(&line).trim_end().to_owned();
        if let Some(rest) = line.strip_prefix(MARK) {
            outcome.step = rest.split('/').next().and_then(|n| n.parse().ok());
            outcome.tail.clear();
            match &spinner {
                Some(bar) => {
                    bar.println(format!("setup: step {rest}"));
                    bar.set_message("");
                }
                None => progress.line(&format!("setup: step {rest}")),
            }
            continue;
        }
        match &spinner {
            Some(bar) => bar.set_message(line.chars().take(100).collect::<String>()),
            None if !progress.is_quiet() => eprintln!("  | {line}"),
            None => {}
        }
        if outcome.tail.len() == TAIL {
            outcome.tail.pop_front();
        }
        outcome.tail.push_back(line);
    }
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_announces_each_step_and_stops_at_the_first_failure() {
        let text = script(&["echo 'a b'".into(), "false".into(), "echo never".into()]);
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", &text])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stdout.contains(&format!("{MARK}1/3: echo 'a b'")),
            "{stdout}"
        );
        assert!(stdout.contains("a b\n"), "{stdout}");
        assert!(stdout.contains(&format!("{MARK}2/3: false")), "{stdout}");
        assert!(!stdout.contains("never"), "{stdout}");
    }
}
