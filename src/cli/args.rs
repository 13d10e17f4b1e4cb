//! The command line, as one clap definition (completions are generated from it too).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Rootless per-project developer sandboxes from OCI images.
#[derive(Debug, Parser)]
#[command(name = "sandbox", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The image store [default: $XDG_DATA_HOME/sandbox]
    #[arg(long, global = true, env = "SANDBOX_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Print only results and errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Explain what is being done
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one command in the project's sandbox; stdio, exit code and signals as on the host
    Run(RunArgs),
    /// Open an interactive shell in the project's sandbox
    Enter(EnterArgs),
    /// List running sandboxes
    Ps(PsArgs),
    /// Stop a running sandbox (SIGTERM, then SIGKILL after a grace period)
    Stop(StopArgs),
    /// Pull an image from a registry into the store
    Pull(PullArgs),
    /// List stored images
    Images(ImagesArgs),
    /// Remove images, and the layers only they used
    Rmi(RmiArgs),
    /// Remove layers and blobs no image uses, and leftovers of interrupted work
    Prune,
    /// Show how much space the store uses
    Df,
    /// Store credentials for a registry
    Login(LoginArgs),
    /// Forget stored credentials for a registry
    Logout(LogoutArgs),
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Image reference, e.g. `busybox`, `127.0.0.1:5000/library/busybox:1.36`, `repo@sha256:...`
    pub reference: String,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Image references to remove
    #[arg(required = true)]
    pub references: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Registry host, e.g. `docker.io` or `127.0.0.1:5000`
    pub registry: String,
    /// User name (asked for when not given)
    #[arg(short, long)]
    pub username: Option<String>,
    /// Read the password from standard input instead of asking
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Registry host
    pub registry: String,
}

/// How the sandbox reaches the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum NetworkArg {
    /// Its own network namespace, connected by pasta (rootless, slirp-style)
    Pasta,
    /// Its own network namespace, connected by slirp4netns
    Slirp4netns,
    /// Its own network namespace with only loopback
    None,
    /// The host's network namespace
    Host,
}

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// The image to run, e.g. `docker.io/library/debian:bookworm` (pulled if missing)
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// Network mode [default: pasta if installed, else slirp4netns]
    #[arg(long, value_enum)]
    pub network: Option<NetworkArg>,
    /// Publish a port: [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp]; the host address defaults
    /// to 127.0.0.1 (repeatable)
    #[arg(short = 'p', long = "publish", value_name = "SPEC")]
    pub publish: Vec<String>,
    /// Let the sandbox reach the host's loopback services, as host.containers.internal
    #[arg(long)]
    pub host_loopback: bool,
    /// Set an environment variable inside (repeatable)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Run as root inside the sandbox instead of as yourself
    #[arg(long)]
    pub as_root: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// The command and its arguments, after `--`
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct EnterArgs {
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Container id (or a prefix of it); without one, the current project's sandbox
    pub id: Option<String>,
    /// Seconds to wait after SIGTERM before SIGKILL
    #[arg(short, long, default_value_t = 10)]
    pub time: u64,
}
