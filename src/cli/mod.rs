//! The CLI layer: parses arguments, dispatches, and is the only layer that prints.

pub mod args;
mod commands;
mod env_file;
pub mod errors;
mod format;
mod progress;

use std::process::ExitCode;

use clap::Parser as _;

use self::args::{Cli, Command};
use self::errors::CliError;

/// Exit status for sandbox's own failures, as podman uses.
pub const EXIT_FAILURE: u8 = 125;

/// Runs the command line and returns the process exit status.
#[allow(clippy::print_stderr)]
pub fn main() -> ExitCode {
    // `COMPLETE=bash sandbox -- ...`: the completion scripts ask us; answers and exits.
    clap_complete::CompleteEnv::with_factory(<Cli as clap::CommandFactory>::command)
        .var(commands::completions::VAR)
        .bin("sandbox")
        .completer("sandbox")
        .complete();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_FAILURE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // Parsed: what was on the command line (`-e API_KEY=...`) need not stay readable in
    // /proc/PID/cmdline of this process and of what it forks (pid 1, a joining command).
    crate::runtime::hide_command_line();
    match dispatch(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprint!("{}", e.render());
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Runs the command; `Ok` carries the exit status (the command's own for run and enter).
fn dispatch(cli: &Cli) -> Result<u8, CliError> {
    let mut global = cli.global.clone().with_environment();
    global.verbose |= cli.verbose_short;
    let global = &global;
    match &cli.command {
        Command::Run(args) => return commands::run::run(global, args),
        Command::Doctor(args) => return commands::doctor::run(global, args),
        Command::Enter(args) => return commands::run::enter(global, args),
        Command::Ps(args) => commands::containers::ps(global, args),
        Command::Stop(args) => commands::containers::stop(global, args),
        Command::Pull(args) => commands::pull::run(global, args),
        Command::Images(args) => commands::images::run(global, args),
        Command::Rmi(args) => commands::store_admin::rmi(global, args),
        Command::Prune(args) => commands::store_admin::prune(global, args),
        Command::Df => commands::store_admin::df(global),
        Command::Login(args) => commands::login::login(global, args),
        Command::Logout(args) => commands::login::logout(global, args),
        Command::Init(args) => commands::init::run(global, args),
        Command::Lock(args) => commands::lock::run(global, args),
        Command::Trust => commands::init::trust(global),
        Command::Reset => commands::home::reset(global),
        Command::Cache(command) => commands::cache::run(global, command),
        Command::Setup(command) => commands::setup::run(global, command),
        Command::Completions(args) => commands::completions::run(args),
        Command::Man(args) => commands::completions::man(args),
        Command::Export(args) => commands::export::run(global, args),
        Command::Load(args) => commands::export::load(global, args),
        Command::Push(args) => commands::push::run(global, args),
        Command::Kube(args) => commands::kube::run(global, args),
        Command::Stats(args) => commands::stats::run(global, args),
    }?;
    Ok(0)
}
