//! Renders the image layer's progress with indicatif: one bar per layer on a TTY, nothing when
//! stderr is not a terminal or with `-q`. Notices go to stderr either way, except with `-q`.

use std::io::IsTerminal as _;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::image::reporter::PullReporter;
use crate::image::Digest;

pub struct Progress {
    /// The bars being drawn; replaced by a fresh one once they have all finished, so what is
    /// said after them prints below them, not above.
    multi: Mutex<MultiProgress>,
    verbose: bool,
    bars: Mutex<Vec<ProgressBar>>,
    visible: bool,
    quiet: bool,
    /// `--stats --json`: the run's figures as JSON.
    stats_json: bool,
    /// The spinner under which setup steps' output scrolls, while they run.
    setup: Mutex<Option<ProgressBar>>,
}

impl Progress {
    /// With `--json`, `--stats` prints JSON.
    pub fn stats_json(mut self, on: bool) -> Self {
        self.stats_json = on;
        self
    }

    /// With `-v`, also the runtime's detail.
    pub fn verbose(mut self, on: bool) -> Self {
        self.verbose = on;
        self
    }

    pub fn new(quiet: bool) -> Self {
        // indicatif draws nothing on a terminal it takes for dumb (no TERM): then lines are
        // printed plainly, never handed to bars that swallow them.
        let visible =
            !quiet && std::io::stderr().is_terminal() && !ProgressDrawTarget::stderr().is_hidden();
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self {
            multi: Mutex::new(MultiProgress::with_draw_target(target)),
            verbose: false,
            bars: Mutex::new(Vec::new()),
            visible,
            quiet,
            stats_json: false,
            setup: Mutex::new(None),
        }
    }

    /// A spinner under the other bars (its lines printed with `line` stay above it), for
    /// output that comes as it is made; it moves when `set_message` or `tick` is called (no
    /// ticking thread: a container starts only from a single-threaded process).
    pub fn spinner(&self) -> Option<ProgressBar> {
        self.visible.then(|| {
            let bar = self.multi().add(ProgressBar::new_spinner());
            if let Ok(style) = ProgressStyle::with_template("{spinner} {wide_msg}") {
                bar.set_style(style);
            }
            bar
        })
    }

    fn multi(&self) -> MultiProgress {
        match self.multi.lock() {
            Ok(multi) => multi.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Once every layer bar has finished, they stay on the screen as they are, and a fresh
    /// set of bars starts below them: lines printed next come after them.
    fn settle(&self) {
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        if bars.is_empty() || !bars.iter().all(ProgressBar::is_finished) {
            return;
        }
        bars.clear();
        if let Ok(mut multi) = self.multi.lock() {
            *multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        }
        // The last bar's line is left unterminated.
        #[allow(clippy::print_stderr)]
        {
            eprintln!();
        }
    }

    /// Prints a line above the bars still running (or plainly when they are hidden).
    #[allow(clippy::print_stderr)]
    pub fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        if self.visible {
            self.settle();
            let _ = self.multi().println(text);
        } else {
            eprintln!("{text}");
        }
    }
}

impl PullReporter for Progress {
    fn layer_started(&self, blob: &Digest, size: u64) -> usize {
        let bar = self.multi().add(ProgressBar::new(size));
        let style =
            ProgressStyle::with_template("{prefix} [{bar:30}] {bytes:>10}/{total_bytes:<10} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(blob.short().to_owned());
        let Ok(mut bars) = self.bars.lock() else {
            return 0;
        };
        bars.push(bar);
        bars.len() - 1
    }

    fn layer_progress(&self, id: usize, bytes: u64) {
        if let Some(bar) = self.bars.lock().ok().and_then(|b| b.get(id).cloned()) {
            bar.inc(bytes);
        }
    }

    fn layer_length(&self, id: usize, size: u64) {
        if let Some(bar) = self.bars.lock().ok().and_then(|b| b.get(id).cloned()) {
            bar.set_length(size);
        }
    }

    fn layer_finished(&self, id: usize, reused: bool) {
        if let Some(bar) = self.bars.lock().ok().and_then(|b| b.get(id).cloned()) {
            if reused {
                bar.set_position(bar.length().unwrap_or(0));
                bar.finish_with_message("already stored");
            } else {
                bar.finish_with_message("done");
            }
        }
    }

    fn notice(&self, message: &str) {
        self.line(&format!("notice: {message}"));
    }
}

impl crate::runtime::RunReporter for Progress {
    fn verbose(&self, message: &str) {
        if self.verbose {
            self.line(message);
        }
    }

    /// Asked for with --stats, so said even with -q.
    #[allow(clippy::print_stderr)]
    fn stats(&self, stats: &crate::runtime::cgroups::metering::Stats) {
        if self.stats_json {
            if let Ok(text) = serde_json::to_string(stats) {
                eprintln!("{text}");
            }
            return;
        }
        use crate::settings::limits::human_size;
        let seconds = |us: u64| us as f64 / 1e6;
        let u = &stats.usage;
        let pids = u
            .peak_pids
            .map_or_else(String::new, |p| format!(", peak pids {p}"));
        eprintln!(
            "sandbox: {:.2} s wall, {:.2} s CPU ({:.2} user, {:.2} system), peak memory {}{pids}, read {}, written {}, network in {} out {} (from the {})",
            seconds(stats.wall_us),
            seconds(u.cpu_user_us + u.cpu_system_us),
            seconds(u.cpu_user_us),
            seconds(u.cpu_system_us),
            human_size(u.peak_memory),
            human_size(u.read_bytes),
            human_size(u.written_bytes),
            human_size(u.net_in),
            human_size(u.net_out),
            stats.source,
        );
    }

    /// Said even with -q: it may be why the command failed.
    #[allow(clippy::print_stderr)]
    fn egress_blocked(&self, target: &str, reason: &str) {
        // One write: the command inside shares this stderr, and pieces would interleave. A
        // terminal may be in raw mode (`enter`): the line ends with a carriage return too.
        use std::io::IsTerminal as _;
        let end = if std::io::stderr().is_terminal() {
            "\r\n"
        } else {
            "\n"
        };
        let line = format!("sandbox: blocked egress to {target} ({reason}){end}");
        self.multi().suspend(|| {
            use std::io::Write as _;
            let _ = std::io::stderr().write_all(line.as_bytes());
        });
    }

    /// Said even with -q: it is why the command died.
    #[allow(clippy::print_stderr)]
    fn out_of_memory(&self, limit: u64, peak: u64) {
        use crate::settings::limits::human_size;
        eprintln!(
            "sandbox: killed: out of memory (limit {}, peak {})",
            human_size(limit),
            human_size(peak)
        );
    }
}

/// Setup steps' output: on a terminal, each line passes through a spinner's message and each
/// step's announcement stays above it; otherwise the lines are printed indented.
impl crate::project::reporter::ProjectReporter for Progress {
    fn line(&self, text: &str) {
        Progress::line(self, text);
    }

    fn setup_started(&self) {
        if let Ok(mut setup) = self.setup.lock() {
            *setup = self.spinner();
        }
    }

    fn setup_step(&self, step: &str) {
        let text = format!("setup: step {step}");
        match self.setup.lock().ok().and_then(|s| s.clone()) {
            Some(bar) => {
                bar.println(text);
                bar.set_message("");
            }
            None => Progress::line(self, &text),
        }
    }

    #[allow(clippy::print_stderr)]
    fn setup_output(&self, line: &str) {
        match self.setup.lock().ok().and_then(|s| s.clone()) {
            Some(bar) => {
                bar.set_message(line.chars().take(100).collect::<String>());
                bar.tick();
            }
            None if !self.quiet => eprintln!("  | {line}"),
            None => {}
        }
    }

    fn setup_finished(&self) {
        if let Some(bar) = self.setup.lock().ok().and_then(|mut s| s.take()) {
            bar.finish_and_clear();
        }
    }
}
