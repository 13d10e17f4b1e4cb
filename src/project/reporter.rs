//! How the project layer tells the user what it is doing; it never prints. The CLI renders
//! this (with indicatif); tests use a silent one.

use crate::image::reporter::PullReporter;
use crate::runtime::RunReporter;

/// What preparing and running a project's sandbox reports: pulls and runs (the lower layers'
/// reporters), plus lines of its own and the setup steps' output.
pub trait ProjectReporter: PullReporter + RunReporter {
    /// A line of what is being done (`setup: step 1/2: ...`); the CLI leaves it out when quiet.
    fn line(&self, _text: &str) {}
    /// The setup steps begin to run; their output follows.
    fn setup_started(&self) {}
    /// A setup step begins: `2/3: make`.
    fn setup_step(&self, _step: &str) {}
    /// A line a setup step printed.
    fn setup_output(&self, _line: &str) {}
    /// The setup steps ended (done, failed or interrupted).
    fn setup_finished(&self) {}
}

/// Reports nothing: for tests, and for callers that only want the outcome.
pub struct Silent;

impl PullReporter for Silent {}
impl RunReporter for Silent {}
impl ProjectReporter for Silent {}
