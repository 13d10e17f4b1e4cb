//! A project's setup steps, a layer each: a command runs as root, with network, in a container
//! of the image and the layers of the steps before it (the launch plan with the step as its
//! process and its upper dir kept); a copy step's layer is made here from the project's files.
//! Each layer is stored under its chain key (`image::setup_layer`), so appending a step runs
//! only that step, editing step k reruns k and what follows, and every project with the same
//! inputs shares them.
//!
//! The steps' output is captured by the monitor and comes here as it is written: a spinner with
//! the last line on a terminal, the lines themselves otherwise; a failing step is reported with
//! its number, its text, the tail of its output and its exit code. A failing step stores
//! nothing; the steps before it stay stored.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use crate::config::project::Project;
use crate::config::setup::{Secret, SetupStep};
use crate::image::copy_layer;
use crate::image::runnable::Runnable;
use crate::image::setup_layer::{ChainRoot, SetupRecord, StepKey};
use crate::image::store::Store;
use crate::image::unpack::Ownership;
use crate::image::Digest;
use crate::project::error::{ProjectError, StepEnd};
use crate::project::reporter::ProjectReporter;
use crate::runtime::plan::{
    self, HostFacts, Inputs, LaunchKind, Program, ProjectInputs, Request, Stdio,
};
use crate::runtime::process::exit_code;
use crate::runtime::process::monitor;
use crate::runtime::process::monitor::Outcome;
use crate::runtime::state;
use crate::runtime::RunReporter;
use crate::runtime::RuntimeError;

/// Lines of output kept for the report of a failing step.
const TAIL: usize = 20;
/// The longest line kept whole: a step printing without newlines cannot grow our memory.
const LINE_LIMIT: usize = 64 * 1024;
/// How each step is announced in the output (and found again there).
const MARK: &str = "==> sandbox setup step ";
/// The largest secret read from a file.
const SECRET_LIMIT: u64 = 64 * 1024;

/// The key of each step's layer, in order; copy steps hash the project files they copy.
pub fn chain(config: &Project, base_manifest: &str) -> Result<Vec<String>, ProjectError> {
    let toolchain = config
        .toolchain
        .as_ref()
        .map(crate::config::project::Toolchain::key);
    let mut keys = Vec::with_capacity(config.setup.len());
    for step in &config.setup {
        keys.push(match step {
            SetupStep::Run { command, secrets } => StepKey::Run {
                command,
                secrets: secrets.iter().map(|s| s.name.as_str()).collect(),
            },
            SetupStep::Copy { from, to } => StepKey::Copy {
                from,
                to,
                content: copy_layer::content_digest(&config.dir, from)?,
            },
        });
    }
    Ok(ChainRoot {
        base_manifest,
        toolchain: toolchain.as_deref(),
        env: &config.env,
    }
    .chain(&keys))
}

fn as_digest(key: &str) -> Result<Digest, ProjectError> {
    Digest::parse(key).map_err(|e| ProjectError::Internal {
        what: format!("the setup key {key} is not a digest"),
        source: Box::new(e),
    })
}

/// The layers of `config`'s setup steps on `image`, in order, each built first when it is not
/// stored.
pub fn prepare(
    store: &Store,
    config: &Project,
    project: &ProjectInputs,
    image: &Runnable,
    host: &HostFacts,
    ownership: &Ownership,
    progress: &dyn ProjectReporter,
) -> Result<Vec<PathBuf>, ProjectError> {
    let keys = chain(config, &image.manifest)?;
    let total = keys.len();
    let stored = keys
        .iter()
        .take_while(|k| store.setup_layer(k).is_some())
        .count();
    if stored < total {
        let reused = match stored {
            0 => String::new(),
            1 => "step 1 is stored; ".into(),
            n => format!("steps 1-{n} are stored; "),
        };
        progress.line(&format!(
            "setup: {reused}running step{} {}{} of {total} once as root",
            if total - stored == 1 { "" } else { "s" },
            stored + 1,
            if total - stored == 1 {
                String::new()
            } else {
                format!("-{total}")
            },
        ));
    }
    let mut layers: Vec<PathBuf> = Vec::with_capacity(total);
    let mut parent = None;
    let trust_files = if stored < total {
        crate::project::trust::host_files()?
    } else {
        Vec::new()
    };
    for (index, (step, key)) in config.setup.iter().zip(&keys).enumerate() {
        let number = index + 1;
        if let Some(layer) = store.setup_layer(key) {
            layers.push(layer);
            parent = Some(key.clone());
            continue;
        }
        let digest = as_digest(key)?;
        // A second run of the same setup waits here, then finds the layer built.
        let _lock = store.lock_digest(&digest)?;
        if let Some(layer) = store.setup_layer(key) {
            layers.push(layer);
            parent = Some(key.clone());
            continue;
        }
        let kept = store.temp_path("setup", &digest);
        let mut lowers = image.layers.clone();
        lowers.extend(layers.iter().cloned());
        let built = match step {
            SetupStep::Run { command, secrets } => run_step(
                StepRun {
                    command,
                    secrets,
                    number,
                    total,
                    trust: crate::project::trust::for_layers(
                        store,
                        &trust_files,
                        &lowers,
                        &crate::project::trust::env_pairs(
                            &image.env,
                            &config.env_defaults,
                            &config.env,
                        ),
                        progress,
                    )?,
                    lowers,
                    kept: &kept,
                },
                config,
                project,
                image,
                host,
                progress,
            ),
            SetupStep::Copy { from, to } => {
                progress.line(&format!(
                    "setup: step {number}/{total}: {}",
                    step.describe()
                ));
                copy_step(&kept, config, from, to, &lowers, ownership)
            }
        };
        if let Err(e) = built {
            let _ = fs_err::remove_dir_all(&kept);
            return Err(e);
        }
        let record = SetupRecord {
            key: key.clone(),
            base_manifest: image.manifest.clone(),
            parent: parent.clone().unwrap_or_default(),
            step: step.describe(),
            number,
            project: Some(config.dir.clone()),
            steps: Vec::new(),
            built: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        // Shared, so `prune` and `rmi` (exclusive) never see it half-committed.
        let _store = store.lock(crate::fsutil::lock::LockMode::Shared)?;
        layers.push(store.commit_setup_layer(key, &kept, &record)?);
        parent = Some(key.clone());
    }
    // What the project uses now: layers of its earlier steps are superseded (`prune`).
    let _ = store.record_chain(&config.dir, &keys);
    if stored < total {
        progress.line(&format!(
            "setup: done, {} layer{} stored",
            total - stored,
            if total - stored == 1 { "" } else { "s" }
        ));
    }
    Ok(layers)
}

/// A command step to run.
struct StepRun<'a> {
    command: &'a str,
    secrets: &'a [Secret],
    number: usize,
    total: usize,
    /// The host's CAs, trusted in the step (never part of its layer).
    trust: Option<crate::runtime::plan::HostTrust>,
    /// The image's layers and the layers of the steps before it.
    lowers: Vec<PathBuf>,
    kept: &'a Path,
}

/// The secrets' values, from the user's environment or the files named: for the step's
/// environment only.
fn secret_values(secrets: &[Secret], number: usize) -> Result<Vec<(String, String)>, ProjectError> {
    secrets
        .iter()
        .map(|secret| {
            let value = match &secret.file {
                None => std::env::var(&secret.name).map_err(|_| ProjectError::Refused {
                    message: format!(
                        "setup step {number} needs the secret {0}, and {0} is not set in your environment",
                        secret.name
                    ),
                    hint: Some(format!("set it (`export {}=...`) and run again", secret.name)),
                })?,
                Some(file) => {
                    let text = crate::config::files::read(file, SECRET_LIMIT).map_err(|e| {
                        ProjectError::Refused {
                            message: format!(
                                "setup step {number} needs the secret {} from {}: {e}",
                                secret.name,
                                file.display()
                            ),
                            hint: None,
                        }
                    })?;
                    text.strip_suffix('\n').unwrap_or(&text).to_owned()
                }
            };
            if value.contains('\0') {
                return Err(ProjectError::Refused {
                    message: format!("the secret {} holds a NUL byte", secret.name),
                    hint: None,
                });
            }
            Ok((secret.name.clone(), value))
        })
        .collect()
}

fn run_step(
    step: StepRun<'_>,
    config: &Project,
    project: &ProjectInputs,
    image: &Runnable,
    host: &HostFacts,
    progress: &dyn ProjectReporter,
) -> Result<(), ProjectError> {
    let request = Request {
        as_root: true,
        env: secret_values(step.secrets, step.number)?,
        ..Request::new(
            Program::Command(vec![
                "/bin/sh".into(),
                "-c".into(),
                script(step.command, step.number, step.total),
            ]),
            Stdio::Capture,
        )
    };
    let lowers = step.lowers.clone();
    let launch = plan::resolve(&Inputs {
        kind: LaunchKind::Setup {
            keep_upper: step.kept.to_owned(),
        },
        id: state::new_id(),
        image: &image.reference,
        layers: step.lowers,
        image_env: &image.env,
        project,
        request: &request,
        host,
        ids_mapped: true,
        trust: step.trust.as_ref(),
    })
    .map_err(RuntimeError::from)?;
    let output = StepOutput::new(progress);
    let result = monitor::start(&launch, &output);
    let outcome = output.finish();
    let code = match result {
        Ok(Outcome::Exited(code)) => code,
        Ok(Outcome::NotStarted { errno, .. }) => i32::from(exit_code::not_started(errno)),
        Err(e) => return Err(e.into()),
    };
    if code != 0 {
        let _ = fs_err::remove_dir_all(step.kept);
        return Err(ProjectError::SetupStep {
            step: step.number,
            total: step.total,
            code,
            text: config
                .setup
                .get(step.number - 1)
                .map(SetupStep::describe)
                .unwrap_or_default(),
            output: outcome
                .tail
                .iter()
                .map(|l| format!("  | {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
            file: config.file.clone(),
            end: StepEnd::of(code, outcome.blocked),
        });
    }
    // The layer holds what the step did, not the /etc files and mount points sandbox made.
    crate::image::setup_layer::clean_setup_upper(
        step.kept,
        &lowers,
        &written_etc(&launch, &lowers),
        &made_dirs(&launch),
    )?;
    Ok(())
}

/// The dirs sandbox may have made in a setup container: its mount points and the home.
fn made_dirs(launch: &plan::LaunchPlan) -> Vec<PathBuf> {
    use crate::runtime::plan::MountOp;
    let mut dirs: Vec<PathBuf> = launch
        .rootfs
        .mounts
        .iter()
        .filter_map(|op| match op {
            MountOp::Proc { target }
            | MountOp::Sys { target, .. }
            | MountOp::Tmpfs { target, .. }
            | MountOp::Devpts { target } => Some(target.clone()),
            _ => None,
        })
        .collect();
    dirs.push(launch.rootfs.home.0.clone());
    dirs
}

/// The /etc files sandbox wrote into a setup container, with their text.
fn written_etc(launch: &plan::LaunchPlan, lowers: &[PathBuf]) -> Vec<(PathBuf, String)> {
    use crate::runtime::plan::EtcContent;
    use crate::runtime::rootfs::etc_files;
    let image_text = |path: &Path| {
        crate::image::trust::find_in_layers(lowers, &path.display().to_string())
            .and_then(|found| crate::config::files::read(&found, etc_files::READ_LIMIT).ok())
            .unwrap_or_default()
    };
    launch
        .rootfs
        .etc_files
        .iter()
        .map(|file| {
            let text = match &file.content {
                EtcContent::Text(text) => text.clone(),
                EtcContent::Passwd => {
                    etc_files::passwd(&image_text(&file.path), &launch.process.user)
                }
                EtcContent::Group => {
                    etc_files::group(&image_text(&file.path), &launch.process.user)
                }
            };
            (file.path.clone(), text)
        })
        .collect()
}

fn copy_step(
    kept: &Path,
    config: &Project,
    from: &Path,
    to: &str,
    lowers: &[PathBuf],
    ownership: &Ownership,
) -> Result<(), ProjectError> {
    fs_err::create_dir_all(kept)?;
    let copied = copy_layer::build(kept, &config.dir, from, to, lowers, ownership)?;
    // The key was made from the files as they were a moment ago; they must not have changed.
    let expected = copy_layer::content_digest(&config.dir, from)?;
    if copied != expected {
        return Err(ProjectError::Refused {
            message: format!(
                "{} changed while setup copied it",
                config.dir.join(from).display()
            ),
            hint: Some("run again once nothing writes to it".into()),
        });
    }
    Ok(())
}

/// A step as a script: announced, then run with nothing on its stdin.
fn script(command: &str, number: usize, total: usize) -> String {
    let quoted = command.replace('\'', "'\\''");
    format!(
        "set -u\nprintf '%s\\n' '{MARK}{number}/{total}: {quoted}'\nexec /bin/sh -c '{quoted}' </dev/null\n"
    )
}

/// What the steps printed, as far as the report of a failure needs it.
#[derive(Default)]
struct StepsOutcome {
    /// The step that ran last (1-based), as its announcement says.
    step: Option<usize>,
    tail: VecDeque<String>,
    /// An unfinished last line.
    partial: Vec<u8>,
    /// What the allow-list (`setup_allow`) refused while the step ran.
    blocked: Vec<String>,
}

/// Hands the steps' output to the reporter as it comes (the monitor hands it over) and keeps
/// what the report of a failure needs.
struct StepOutput<'a> {
    progress: &'a dyn ProjectReporter,
    seen: RefCell<StepsOutcome>,
}

impl<'a> StepOutput<'a> {
    fn new(progress: &'a dyn ProjectReporter) -> Self {
        progress.setup_started();
        Self {
            progress,
            seen: RefCell::new(StepsOutcome::default()),
        }
    }

    fn line(&self, seen: &mut StepsOutcome, line: String) {
        if let Some(rest) = line.strip_prefix(MARK) {
            seen.step = rest.split('/').next().and_then(|n| n.parse().ok());
            seen.tail.clear();
            self.progress.setup_step(rest);
            return;
        }
        self.progress.setup_output(&line);
        if seen.tail.len() == TAIL {
            seen.tail.pop_front();
        }
        seen.tail.push_back(line);
    }

    /// The outcome, once the container has ended.
    fn finish(self) -> StepsOutcome {
        let mut seen = self.seen.take();
        if !seen.partial.is_empty() {
            let rest = std::mem::take(&mut seen.partial);
            self.line(
                &mut seen,
                String::from_utf8_lossy(&rest).trim_end().to_owned(),
            );
        }
        self.progress.setup_finished();
        seen
    }
}

impl RunReporter for StepOutput<'_> {
    fn verbose(&self, message: &str) {
        RunReporter::verbose(self.progress, message);
    }

    fn out_of_memory(&self, limit: u64, peak: u64) {
        RunReporter::out_of_memory(self.progress, limit, peak);
    }

    fn egress_blocked(&self, target: &str, reason: &str) {
        RunReporter::egress_blocked(self.progress, target, reason);
        let mut seen = self.seen.borrow_mut();
        if !seen.blocked.iter().any(|t| t == target) && seen.blocked.len() < 8 {
            seen.blocked.push(target.to_owned());
        }
    }

    fn output(&self, bytes: &[u8]) {
        let mut seen = self.seen.borrow_mut();
        seen.partial.extend_from_slice(bytes);
        while let Some(end) = seen.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = seen.partial.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            self.line(&mut seen, text);
        }
        if seen.partial.len() > LINE_LIMIT {
            let long = std::mem::take(&mut seen.partial);
            let text = String::from_utf8_lossy(&long[..LINE_LIMIT]).into_owned();
            self.line(&mut seen, text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_without_newlines_stays_bounded_and_steps_are_followed() {
        let output = StepOutput::new(&crate::project::reporter::Silent);
        output.output(format!("{MARK}2/3: make\nbuilding\n").as_bytes());
        for _ in 0..64 {
            output.output(&[b'x'; 64 * 1024]);
            assert!(output.seen.borrow().partial.len() <= LINE_LIMIT);
        }
        let seen = output.finish();
        assert_eq!(seen.step, Some(2));
        assert!(seen.tail.len() <= TAIL);
        assert!(seen.tail.iter().all(|l| l.len() <= LINE_LIMIT));
    }

    #[test]
    fn the_script_announces_the_step_and_keeps_its_status() {
        let text = script("echo 'a b'; exit 3", 2, 3);
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", &text])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(3));
        assert!(
            stdout.contains(&format!("{MARK}2/3: echo 'a b'; exit 3")),
            "{stdout}"
        );
        assert!(stdout.contains("a b\n"), "{stdout}");
    }
}
