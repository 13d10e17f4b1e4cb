//! A project's setup steps: run once as root, with network, in a container of its base image
//! (the launch plan with the setup script as its process and its upper dir kept); the
//! container's changes become a setup layer in the store (`image::setup_layer`), reused by
//! every later run of every project with the same inputs.
//!
//! The steps' output is captured by the monitor and comes here as it is written: a spinner with
//! the last line on a terminal, the lines themselves otherwise; a failing step is reported with
//! its number, its text, the tail of its output and its exit code. Nothing is stored unless
//! every step succeeded.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::PathBuf;

use indicatif::ProgressBar;

use super::errors::CliError;
use super::progress::Progress;
use crate::config::project::Project;
use crate::image::runnable::Runnable;
use crate::image::setup_layer::{SetupInputs, SetupRecord};
use crate::image::store::Store;
use crate::image::Digest;
use crate::runtime::monitor::{self, Outcome};
use crate::runtime::plan::{
    self, HostFacts, Inputs, LaunchKind, Limits, Program, ProjectInputs, Request, Seccomp, Stdio,
};
use crate::runtime::{exit_code, state, RunReporter, RuntimeError};

/// Lines of output kept for the report of a failing step.
const TAIL: usize = 20;
/// The longest line kept whole: a step printing without newlines cannot grow our memory.
const LINE_LIMIT: usize = 64 * 1024;
/// How each step is announced in the output (and found again there).
const MARK: &str = "==> sandbox setup step ";

/// The setup layer of `config` on `image`, built first when it is not stored.
pub fn prepare(
    store: &Store,
    config: &Project,
    project: &ProjectInputs,
    image: &Runnable,
    host: &HostFacts,
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
    let digest = Digest::parse(&key).map_err(|e| CliError::Internal {
        what: format!("the setup key {key} is not a digest"),
        source: Box::new(e),
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
    let request = Request {
        program: Program::Command(vec!["/bin/sh".into(), "-c".into(), script(&config.setup)]),
        stdio: Stdio::Capture,
        as_root: true,
        env: Vec::new(),
        network: None,
        publish: Vec::new(),
        host_loopback: false,
        cap_add: Vec::new(),
        cap_drop: Vec::new(),
        seccomp: Seccomp::Default,
        limits: Limits::default(),
        stats: false,
    };
    let launch = plan::resolve(&Inputs {
        kind: LaunchKind::Setup {
            keep_upper: kept.clone(),
        },
        id: state::new_id(),
        image: &image.reference,
        layers: image.layers.clone(),
        image_env: &image.env,
        project,
        request: &request,
        host,
        ids_mapped: true,
    })
    .map_err(RuntimeError::from)?;
    let output = StepOutput::new(progress);
    let result = monitor::start(&launch, &output);
    let outcome = output.finish();
    let code = match result {
        Ok(Outcome::Exited(code)) => code,
        Ok(Outcome::NotStarted { errno, .. }) => i32::from(exit_code::not_started(errno)),
        Err(e) => {
            let _ = fs_err::remove_dir_all(&kept);
            return Err(e.into());
        }
    };
    if code != 0 {
        let _ = fs_err::remove_dir_all(&kept);
        let step = outcome.step.unwrap_or(1);
        let text = config.setup.get(step - 1).cloned().unwrap_or_default();
        return Err(CliError::SetupStep {
            step,
            total: config.setup.len(),
            code,
            text,
            output: outcome
                .tail
                .iter()
                .map(|l| format!("  | {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
            file: config.file.clone(),
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

/// What the steps printed, as far as the report of a failure needs it.
#[derive(Default)]
struct StepsOutcome {
    /// The step that ran last (1-based), as its announcement says.
    step: Option<usize>,
    tail: VecDeque<String>,
    /// An unfinished last line.
    partial: Vec<u8>,
}

/// Shows the steps' output as it comes (the monitor hands it over) and keeps what the report
/// of a failure needs.
struct StepOutput<'a> {
    progress: &'a Progress,
    spinner: Option<ProgressBar>,
    seen: RefCell<StepsOutcome>,
}

impl<'a> StepOutput<'a> {
    fn new(progress: &'a Progress) -> Self {
        Self {
            progress,
            spinner: progress.spinner(),
            seen: RefCell::new(StepsOutcome::default()),
        }
    }

    #[allow(clippy::print_stderr)]
    fn line(&self, seen: &mut StepsOutcome, line: String) {
        if let Some(rest) = line.strip_prefix(MARK) {
            seen.step = rest.split('/').next().and_then(|n| n.parse().ok());
            seen.tail.clear();
            match &self.spinner {
                Some(bar) => {
                    bar.println(format!("setup: step {rest}"));
                    bar.set_message("");
                }
                None => self.progress.line(&format!("setup: step {rest}")),
            }
            return;
        }
        match &self.spinner {
            Some(bar) => {
                bar.set_message(line.chars().take(100).collect::<String>());
                bar.tick();
            }
            None if !self.progress.is_quiet() => eprintln!("  | {line}"),
            None => {}
        }
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
        if let Some(bar) = &self.spinner {
            bar.finish_and_clear();
        }
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
        let progress = Progress::new(true);
        let output = StepOutput::new(&progress);
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
