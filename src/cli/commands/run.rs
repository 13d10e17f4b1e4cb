//! `sandbox run -- CMD` and `sandbox enter`: the flags become what the command asks of the
//! project's sandbox (`project::launch`), which starts or joins it; the outcome is rendered
//! here, as the exit code podman would give.

use std::io::IsTerminal as _;
use std::path::Path;

use crate::cli::args::{EnterArgs, GlobalArgs, RunArgs, SandboxArgs, SecurityOpt};
use crate::cli::errors::CliError;
use crate::cli::progress::Progress;
use crate::project::launch::{self, Asked};
use crate::runtime::plan::{self, Program, Request, Seccomp, Stdio};
use crate::runtime::process::exit_code;
use crate::runtime::process::monitor::Outcome;
use crate::settings::limits::Limits;

/// `-v` mounts: the host path (relative to the current dir) must exist.
fn volumes(
    asked: &[crate::cli::args::Volume],
    cwd: &Path,
) -> Result<Vec<crate::runtime::plan::ForwardMount>, CliError> {
    asked
        .iter()
        .map(|v| {
            let host = cwd.join(&v.host);
            let meta = fs_err::metadata(&host).map_err(|_| CliError::Usage {
                message: format!("-v {}: {} does not exist", v.host.display(), host.display()),
                hint: Some("create it first; sandbox does not make host paths".into()),
            })?;
            Ok(crate::runtime::plan::ForwardMount {
                source: host,
                target: v.target.clone(),
                dir: meta.is_dir(),
                read_only: v.read_only,
            })
        })
        .collect()
}

/// The flags given that take effect only when a sandbox starts.
fn start_only(args: &SandboxArgs) -> Vec<&'static str> {
    [
        (args.memory.is_some(), "--memory"),
        (args.cpus.is_some(), "--cpus"),
        (args.pids.is_some(), "--pids"),
        (args.tmp.is_some(), "--tmp"),
        (!args.volumes.is_empty(), "-v"),
        (args.fresh_home, "--fresh-home"),
    ]
    .into_iter()
    .filter_map(|(given, flag)| given.then_some(flag))
    .collect()
}

fn launch(
    global: &GlobalArgs,
    args: &SandboxArgs,
    program: Program,
    stdio: Stdio,
) -> Result<u8, CliError> {
    let progress = Progress::new(global.quiet)
        .verbose(global.verbose)
        .stats_json(args.json);
    let cwd = std::env::current_dir()?;
    let request = Request {
        as_root: args.as_root,
        env: crate::cli::env_file::environment_flags(args)?,
        network: args.network.map(Into::into),
        publish: args.publish.clone(),
        host_loopback: args.host_loopback,
        network_log: args.network_log.as_ref().map(|f| cwd.join(f)),
        cap_add: args.cap_add.concat(),
        cap_drop: args.cap_drop.concat(),
        seccomp: if args.security_opt.contains(&SecurityOpt::SeccompUnconfined) {
            Seccomp::Unconfined
        } else {
            Seccomp::Default
        },
        limits: Limits {
            memory: args.memory,
            cpus: args.cpus,
            pids: args.pids,
            tmp: args.tmp,
            required: args.require_limits,
        },
        stats: args.stats,
        forward: plan::Forwarded {
            volumes: volumes(&args.volumes, &cwd)?,
            ..plan::Forwarded::default()
        },
        ..Request::new(program, stdio)
    };
    let asked = Asked {
        image: args.image.clone(),
        locked: args.locked,
        fresh_home: args.fresh_home,
        start_only: start_only(args),
        request,
    };
    finish(launch::launch(&global.locations(), asked, &progress)?)
}

#[allow(clippy::print_stderr)]
fn finish(outcome: Outcome) -> Result<u8, CliError> {
    match outcome {
        Outcome::Exited(code) => Ok(u8::try_from(code).unwrap_or(255)),
        Outcome::NotStarted { program, errno } => {
            let reason = std::io::Error::from_raw_os_error(errno);
            let code = exit_code::not_started(errno);
            if code == exit_code::NOT_FOUND {
                eprintln!("error: command not found in the sandbox: {program}");
                eprintln!("hint: check the name, or the image's PATH");
            } else {
                eprintln!("error: cannot execute {program} in the sandbox: {reason}");
            }
            Ok(code)
        }
    }
}

pub fn run(global: &GlobalArgs, args: &RunArgs) -> Result<u8, CliError> {
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    launch(
        global,
        &args.sandbox,
        Program::Command(args.command.clone()),
        if tty { Stdio::Terminal } else { Stdio::Inherit },
    )
}

pub fn enter(global: &GlobalArgs, args: &EnterArgs) -> Result<u8, CliError> {
    // An interactive shell on something that is not a terminal would wait for input that
    // never comes: say so at once.
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Usage {
            message: "sandbox enter opens an interactive shell, and stdin is not a terminal".into(),
            hint: Some(
                "run commands with `sandbox run -- CMD`, or a script with `sandbox run -- sh < script.sh`"
                    .into(),
            ),
        });
    }
    launch(global, &args.sandbox, Program::LoginShell, Stdio::Terminal)
}
