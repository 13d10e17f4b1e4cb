//! `sandbox completions bash|zsh|fish`: the script a shell sources. It asks sandbox itself at
//! each completion (`COMPLETE=SHELL sandbox -- ...`), so subcommands, flags, toolchain names and
//! versions and running container ids are always those of the installed binary. The same
//! scripts are checked in under completions/ (a test keeps them current).

use std::io::Write as _;

use crate::cli::args::CompletionsArgs;
use crate::cli::errors::CliError;

/// The environment variable the scripts set when they ask.
pub const VAR: &str = "COMPLETE";

/// The registration script for `shell`, as bytes.
pub fn script(shell: &str) -> Result<Vec<u8>, CliError> {
    let shells = clap_complete::env::Shells::builtins();
    let completer = shells.completer(shell).ok_or_else(|| CliError::Usage {
        message: format!("no completions for the shell `{shell}`"),
        hint: Some("use bash, zsh or fish".into()),
    })?;
    let mut out = Vec::new();
    completer.write_registration(VAR, "sandbox", "sandbox", "sandbox", &mut out)?;
    Ok(out)
}

pub fn run(args: &CompletionsArgs) -> Result<(), CliError> {
    let bytes = script(args.shell.name())?;
    std::io::stdout().lock().write_all(&bytes)?;
    Ok(())
}

/// `sandbox man DIR`: the man pages, from the same clap definition as `--help`.
#[allow(clippy::print_stdout)]
pub fn man(args: &crate::cli::args::ManArgs) -> Result<(), CliError> {
    use clap::CommandFactory as _;
    fs_err::create_dir_all(&args.dir)?;
    clap_mangen::generate_to(crate::cli::args::Cli::command(), &args.dir)?;
    println!("wrote the man pages to {}", args.dir.display());
    Ok(())
}
