//! The command line, as one clap definition (completions are generated from it too).

use std::path::PathBuf;

use crate::settings::network::parse_port;
use crate::settings::network::NetworkMode;
use crate::settings::network::PortMapping;
use clap::{Args, Parser, Subcommand};

/// Rootless per-project developer sandboxes from OCI images.
#[derive(Debug, Parser)]
#[command(name = "sandbox", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Explain what is being done (`-v` before the subcommand; `--verbose` anywhere): after
    /// run and enter, `-v` mounts a volume as in podman
    #[arg(short = 'v')]
    pub verbose_short: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Debug, Args)]
pub struct GlobalArgs {
    /// The image store [default: $SANDBOX_ROOT, else $XDG_DATA_HOME/sandbox]
    // The variables are read after parsing (`with_environment`): given to clap, an error's
    // usage line shows `--root <DIR>` as if it were required.
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Print only results and errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Explain what is being done
    #[arg(long, global = true)]
    pub verbose: bool,
    /// The project's sandbox.toml [default: $SANDBOX_CONFIG, else the nearest one at or above
    /// the current dir]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl GlobalArgs {
    /// Fills what the flags left unset from `SANDBOX_ROOT` and `SANDBOX_CONFIG`.
    pub fn with_environment(mut self) -> Self {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        self.root = self.root.or_else(|| var("SANDBOX_ROOT"));
        self.config = self.config.or_else(|| var("SANDBOX_CONFIG"));
        self
    }

    /// Where the store and sandbox.toml are, as these flags choose them.
    pub fn locations(&self) -> crate::project::locations::Locations {
        crate::project::locations::Locations {
            root: self.root.clone(),
            config: self.config.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write sandbox.toml from a toolchain template (guessed from the project's files if not given)
    Init(InitArgs),
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
    /// Remove layers and blobs no image uses, homes of projects gone for a week, what killed
    /// runs left, and leftovers of interrupted work
    Prune(PruneArgs),
    /// Show how much space the store uses
    Df,
    /// Store credentials for a registry
    Login(LoginArgs),
    /// Forget stored credentials for a registry
    Logout(LogoutArgs),
    /// Write sandbox.lock: the image digests and setup key sandbox.toml resolves to
    Lock(LockArgs),
    /// Allow this project's sandbox.toml to ask for host access (host network, host loopback)
    Trust,
    /// Empty the project's persistent home (shell history, tool logins, editor state)
    Reset,
    /// List or remove the persistent caches shared by projects of a toolchain
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Show the project's setup layers
    #[command(subcommand)]
    Setup(SetupCommand),
    /// Print a shell completion script (also checked in under completions/)
    Completions(CompletionsArgs),
    /// Write the man pages (sandbox.1, sandbox-SUBCOMMAND.1) into DIR (also checked in under man/)
    Man(ManArgs),
    /// Write the prepared sandbox (image and setup layers) as an OCI archive or image layout
    Export(ExportArgs),
    /// Load an OCI archive or image layout into the store, without a registry
    Load(LoadArgs),
    /// Push the prepared sandbox (image and setup layers) to a registry; prints its digest
    Push(PushArgs),
    /// Print a Kubernetes Job or Pod running CMD in the prepared sandbox sandbox.lock pins
    Kube(KubeArgs),
    /// Check what this host gives a sandbox, and print the fix for each missing piece
    Doctor(DoctorArgs),
    /// Show running sandboxes' CPU, memory, pids, network and block I/O (every second)
    Stats(StatsArgs),
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Container ids (or prefixes); without any, every running sandbox
    #[arg(add = clap_complete::engine::ArgValueCompleter::new(running_ids))]
    pub ids: Vec<String>,
    /// Print once and exit
    #[arg(long)]
    pub no_stream: bool,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print JSON instead of lines
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// TOOLCHAIN or TOOLCHAIN@VERSION, e.g. `java@21`, `php@8.2` [default: guessed]
    #[arg(value_name = "TOOLCHAIN[@VERSION]", add = clap_complete::engine::ArgValueCandidates::new(toolchain_candidates))]
    pub toolchain: Option<String>,
    /// Replace an existing sandbox.toml
    #[arg(long)]
    pub force: bool,
}

/// Every `name` and `name@version` of the templates, for completion.
fn toolchain_candidates() -> Vec<clap_complete::engine::CompletionCandidate> {
    let mut values = Vec::new();
    for template in crate::config::templates::all().unwrap_or_default() {
        values.push(
            clap_complete::engine::CompletionCandidate::new(template.name.clone())
                .help(Some(template.description.clone().into())),
        );
        for version in template.versions_sorted() {
            values.push(clap_complete::engine::CompletionCandidate::new(format!(
                "{}@{version}",
                template.name
            )));
        }
    }
    values
}

#[derive(Debug, Args)]
pub struct LockArgs {
    /// Ask the registry again what the tags name now, instead of keeping the locked digests
    #[arg(long)]
    pub update: bool,
    /// Also push the prepared sandbox to REF and pin its digest: machines without the setup
    /// layers pull it instead of running setup
    #[arg(long, value_name = "REF")]
    pub push: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// List the caches, their size and their path on the host
    Ls,
    /// Remove a cache (`TOOLCHAIN/NAME`, or NAME when only one toolchain has it)
    Rm {
        /// The cache to remove
        #[arg(value_name = "NAME", required = true, add = clap_complete::engine::ArgValueCompleter::new(cache_names))]
        names: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SetupCommand {
    /// List the project's setup steps with their layers (size, age), and what an edit superseded
    Ls,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// FILE.tar: an OCI archive (`podman load -i`, `docker load -i`); DIR/: an OCI image layout
    #[arg(short = 'o', long = "output", value_name = "PATH")]
    pub output: PathBuf,
    /// How setup layers are compressed
    #[arg(long, value_enum, default_value = "gzip")]
    pub compression: CompressionArg,
    /// The name the image gets when loaded [default: localhost/PROJECT:sandbox]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Fail unless sandbox.lock exists and still matches sandbox.toml
    #[arg(long)]
    pub locked: bool,
}

#[derive(Debug, Args)]
pub struct KubeArgs {
    /// A Job (batch/v1) [default]
    #[arg(long, conflicts_with = "pod")]
    pub job: bool,
    /// A Pod (v1), which `podman kube play` runs too
    #[arg(long)]
    pub pod: bool,
    /// The volume claim holding the project, mounted at /workspace [default: this machine's
    /// project dir, as a hostPath]
    #[arg(long, value_name = "NAME")]
    pub volume_claim: Option<String>,
    /// The command and its arguments
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required = true,
        value_name = "CMD"
    )]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Where to: REGISTRY/REPOSITORY[:TAG]
    #[arg(value_name = "REF")]
    pub reference: String,
    /// How setup layers are compressed
    #[arg(long, value_enum, default_value = "gzip")]
    pub compression: CompressionArg,
    /// Fail unless sandbox.lock exists and still matches sandbox.toml
    #[arg(long)]
    pub locked: bool,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// FILE.tar (an OCI archive) or DIR (an OCI image layout)
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// The name to store it under [default: the name the archive gives it]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Replace the image a name stands for even when a project's sandbox.lock pins that name
    #[arg(long)]
    pub force: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CompressionArg {
    Gzip,
    Zstd,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Where to write them
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

impl CompletionShell {
    pub fn name(self) -> &'static str {
        match self {
            CompletionShell::Bash => "bash",
            CompletionShell::Zsh => "zsh",
            CompletionShell::Fish => "fish",
        }
    }
}

/// The store, as completion finds it (no command line was parsed).
fn store_root_for_completion() -> Option<PathBuf> {
    std::env::var_os("SANDBOX_ROOT")
        .map(PathBuf::from)
        .or_else(|| dirs::data_dir().map(|d| d.join("sandbox")))
}

/// Stored images' references, for completing `rmi`, `pull` and `--image`: read from the
/// store's records, nothing pulled.
fn stored_images(current: &std::ffi::OsStr) -> Vec<clap_complete::engine::CompletionCandidate> {
    let prefix = current.to_string_lossy();
    let Some(root) = store_root_for_completion().filter(|r| r.join("images").is_dir()) else {
        return Vec::new();
    };
    let Ok(store) = crate::image::store::Store::open(&root) else {
        return Vec::new();
    };
    let mut names: Vec<String> = store
        .images()
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.reference)
        .collect();
    // `busybox` completes as well as `docker.io/library/busybox:latest`.
    let short: Vec<String> = names
        .iter()
        .filter_map(|n| n.strip_prefix("docker.io/library/").map(str::to_owned))
        .collect();
    names.extend(short);
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| n.starts_with(prefix.as_ref()))
        .map(clap_complete::engine::CompletionCandidate::new)
        .collect()
}

/// Cache names (`TOOLCHAIN/NAME`), for completing `cache rm`.
fn cache_names(current: &std::ffi::OsStr) -> Vec<clap_complete::engine::CompletionCandidate> {
    let prefix = current.to_string_lossy();
    let Some(root) = dirs::cache_dir().map(|d| d.join("sandbox").join("caches")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for group in fs_err::read_dir(&root).into_iter().flatten().flatten() {
        for name in fs_err::read_dir(group.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let full = format!(
                "{}/{}",
                group.file_name().to_string_lossy(),
                name.file_name().to_string_lossy()
            );
            if full.starts_with(prefix.as_ref()) {
                out.push(clap_complete::engine::CompletionCandidate::new(full));
            }
        }
    }
    out.sort_by(|a, b| a.get_value().cmp(b.get_value()));
    out
}

/// Running containers' ids, for completing `sandbox stop`.
fn running_ids(current: &std::ffi::OsStr) -> Vec<clap_complete::engine::CompletionCandidate> {
    let prefix = current.to_string_lossy();
    let Some(root) = store_root_for_completion() else {
        return Vec::new();
    };
    crate::runtime::state::running(&root.join("containers"))
        .into_iter()
        .filter(|s| s.id.starts_with(prefix.as_ref()))
        .map(|s| {
            clap_complete::engine::CompletionCandidate::new(s.id.clone())
                .help(Some(s.project_dir.display().to_string().into()))
        })
        .collect()
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Image reference, e.g. `busybox`, `127.0.0.1:5000/library/busybox:1.36`, `repo@sha256:...`
    /// [default: the project's image]
    #[arg(add = clap_complete::engine::ArgValueCompleter::new(stored_images))]
    pub reference: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove the homes of projects that are gone at once, not a week after their last use
    #[arg(long)]
    pub homes: bool,
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Image references to remove
    #[arg(required = true, add = clap_complete::engine::ArgValueCompleter::new(stored_images))]
    pub references: Vec<String>,
    /// Remove an image even when current projects' setup steps are built on it (never one a
    /// running sandbox uses)
    #[arg(short, long)]
    pub force: bool,
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
    /// Its own network namespace; sandbox makes each connection again from the host's side
    /// (the default: no helper to start)
    Relay,
    /// Its own network namespace, connected by pasta (rootless, slirp-style)
    Pasta,
    /// Its own network namespace, connected by slirp4netns
    Slirp4netns,
    /// Its own network namespace with only loopback
    None,
    /// The host's network namespace
    Host,
}

impl From<NetworkArg> for NetworkMode {
    fn from(arg: NetworkArg) -> Self {
        match arg {
            NetworkArg::Relay => NetworkMode::Relay,
            NetworkArg::Pasta => NetworkMode::Pasta,
            NetworkArg::Slirp4netns => NetworkMode::Slirp4netns,
            NetworkArg::None => NetworkMode::None,
            NetworkArg::Host => NetworkMode::Host,
        }
    }
}

/// `-p [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp]`, parsed where it is read.
fn parse_publish(text: &str) -> Result<PortMapping, String> {
    parse_port(text)
        .map_err(|e| format!("{e}; for example `-p 8080:80` or `-p 127.0.0.1:5353:53/udp`"))
}

/// `-e KEY=VALUE`, or `-e KEY` for the value it has here (none when it is unset).
fn parse_env(text: &str) -> Result<(String, Option<String>), String> {
    let (key, value) = match text.split_once('=') {
        Some((key, value)) => (key, Some(value.to_owned())),
        None => (text, None),
    };
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Err(format!(
            "`{text}` has no valid variable name; write it as `-e NAME=value` (or `-e NAME` for your value of it)"
        ));
    }
    Ok((key.to_owned(), value))
}

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// The image to run, e.g. `docker.io/library/debian:bookworm` (pulled if missing)
    #[arg(long, value_name = "REF", add = clap_complete::engine::ArgValueCompleter::new(stored_images))]
    pub image: Option<String>,
    /// Network mode [default: sandbox.toml's, else relay where the kernel can, else pasta, else
    /// slirp4netns]
    #[arg(long, value_enum)]
    pub network: Option<NetworkArg>,
    /// Publish a port: [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp]; the host address defaults
    /// to 127.0.0.1 (repeatable)
    #[arg(short = 'p', long = "publish", value_name = "SPEC", value_parser = parse_publish)]
    pub publish: Vec<PortMapping>,
    /// Let the sandbox reach the host's loopback services, as host.containers.internal
    #[arg(long)]
    pub host_loopback: bool,
    /// With `[network] allow` or the relay network: write every connection and lookup, allowed
    /// or blocked, to FILE (JSON lines)
    #[arg(long, value_name = "FILE")]
    pub network_log: Option<std::path::PathBuf>,
    /// Set an environment variable inside; KEY alone passes your value of it (repeatable)
    #[arg(short = 'e', long = "env", value_name = "KEY[=VALUE]", value_parser = parse_env)]
    pub env: Vec<(String, Option<String>)>,
    /// Read variables from a file: KEY=VALUE lines (KEY alone: your value of it), `#` comments,
    /// `export KEY=VALUE` and quoted values as in .env files; before -e (repeatable)
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Mount a file or dir of the host: HOST[:CONTAINER][:ro] (CONTAINER defaults to HOST);
    /// podman's `z` and `Z` are accepted and ignored: sandbox relabels nothing for SELinux
    /// (repeatable)
    #[arg(short = 'v', long = "volume", value_name = "HOST[:CONTAINER][:ro]", value_parser = parse_volume)]
    pub volumes: Vec<Volume>,
    /// Run as root inside the sandbox instead of as yourself
    #[arg(long)]
    pub as_root: bool,
    /// Fail unless sandbox.lock exists and still matches sandbox.toml
    #[arg(long)]
    pub locked: bool,
    /// Start from an empty home, discarded afterwards, instead of the project's persistent one
    #[arg(long)]
    pub fresh_home: bool,
    /// Give container root a capability beyond podman's default set, e.g. NET_ADMIN or ALL
    /// (repeatable)
    #[arg(long = "cap-add", value_name = "CAP", value_parser = parse_capabilities)]
    pub cap_add: Vec<Vec<caps::Capability>>,
    /// Take a capability from container root's default set (repeatable)
    #[arg(long = "cap-drop", value_name = "CAP", value_parser = parse_capabilities)]
    pub cap_drop: Vec<Vec<caps::Capability>>,
    /// Memory limit, e.g. 512m or 2g (swap off inside it); over [limits] in sandbox.toml
    #[arg(long, value_name = "SIZE", value_parser = parse_memory)]
    pub memory: Option<u64>,
    /// CPU limit in CPUs, e.g. 1.5
    #[arg(long, value_name = "CPUS", value_parser = parse_cpus)]
    pub cpus: Option<f64>,
    /// Limit on the number of processes and threads inside
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=4_194_304))]
    pub pids: Option<u64>,
    /// Size of /tmp and /dev/shm (default: half of the memory limit)
    #[arg(long, value_name = "SIZE", value_parser = parse_tmp)]
    pub tmp: Option<u64>,
    /// Fail (exit 125) instead of warning when a limit cannot be applied on this host
    #[arg(long)]
    pub require_limits: bool,
    /// After the command, print what it cost on stderr: wall time, CPU, peak memory and pids,
    /// bytes read and written, network bytes in and out
    #[arg(long)]
    pub stats: bool,
    /// With --stats: print the figures as one JSON object
    #[arg(long, requires = "stats")]
    pub json: bool,
    /// Loosen confinement: `seccomp=unconfined` runs without the default seccomp filter
    #[arg(long = "security-opt", value_name = "OPT", value_parser = parse_security_opt)]
    pub security_opt: Vec<SecurityOpt>,
}

/// A `-v` mount, as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    pub host: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
}

/// `HOST[:CONTAINER][:OPTIONS]`: the container path absolute without `..`; OPTIONS as
/// podman's, comma-separated: `ro` or `rw`, and `z` or `Z` (SELinux relabelling, common in
/// podman scripts), which are accepted and do nothing: sandbox relabels nothing.
fn parse_volume(text: &str) -> Result<Volume, String> {
    let mut parts: Vec<&str> = text.split(':').collect();
    let mut read_only = false;
    let is_options = |last: &str| {
        last.split(',')
            .all(|o| matches!(o, "ro" | "rw" | "z" | "Z"))
    };
    if let Some(last) = parts
        .last()
        .copied()
        .filter(|l| parts.len() > 1 && is_options(l))
    {
        read_only = last.split(',').any(|o| o == "ro");
        parts.pop();
    }
    let (host, target) = match parts.as_slice() {
        [host] => (*host, *host),
        [host, target] => (*host, *target),
        _ => return Err(format!("`{text}` is not HOST[:CONTAINER][:ro]")),
    };
    if host.is_empty() {
        return Err("the host path is empty".into());
    }
    let target = std::path::Path::new(target);
    let absolute_in_image = target.is_absolute()
        && !target
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir));
    if !absolute_in_image {
        return Err(format!(
            "the path inside, `{}`, must be absolute and without `..`",
            target.display()
        ));
    }
    Ok(Volume {
        host: PathBuf::from(host),
        target: target.to_owned(),
        read_only,
    })
}

fn parse_memory(text: &str) -> Result<u64, String> {
    crate::config::project::parse_size(text, "memory")
}

fn parse_tmp(text: &str) -> Result<u64, String> {
    crate::config::project::parse_size(text, "tmp")
}

fn parse_cpus(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(n) if n > 0.0 && n <= 1024.0 => Ok(n),
        _ => Err(format!(
            "`{text}` is not a number of CPUs above 0, such as 1.5"
        )),
    }
}

/// What `--security-opt` can say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecurityOpt {
    SeccompUnconfined,
}

fn parse_security_opt(text: &str) -> Result<SecurityOpt, String> {
    match text {
        "seccomp=unconfined" => Ok(SecurityOpt::SeccompUnconfined),
        _ => Err(format!(
            "`{text}` is not a security option sandbox knows; the one it takes is `seccomp=unconfined`"
        )),
    }
}

/// `--cap-add NET_ADMIN` (with or without `CAP_`, any case, or ALL).
fn parse_capabilities(text: &str) -> Result<Vec<caps::Capability>, String> {
    crate::settings::capabilities::parse(text)
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// The command and its arguments: the first word that is not an option of sandbox's
    /// starts it (`sandbox run node -v`); `--` before it still works
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required = true,
        value_name = "CMD"
    )]
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
    #[arg(add = clap_complete::engine::ArgValueCompleter::new(running_ids))]
    pub id: Option<String>,
    /// Seconds to wait after SIGTERM before SIGKILL
    #[arg(short, long, default_value_t = 10)]
    pub time: u64,
}

impl From<CompressionArg> for crate::image::archive::export::LayerCompression {
    fn from(arg: CompressionArg) -> Self {
        match arg {
            CompressionArg::Gzip => crate::image::archive::export::LayerCompression::Gzip,
            CompressionArg::Zstd => crate::image::archive::export::LayerCompression::Zstd,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command_of(args: &[&str]) -> Vec<String> {
        match Cli::try_parse_from(args).unwrap().command {
            Command::Run(run) => run.command,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn volumes_read_as_podman_writes_them() {
        let v = parse_volume("/srv/data:/data:ro").unwrap();
        assert_eq!(
            (v.host.to_str(), v.target.to_str(), v.read_only),
            (Some("/srv/data"), Some("/data"), true)
        );
        let v = parse_volume("./cache").unwrap_err();
        assert!(v.contains("must be absolute"), "{v}");
        let v = parse_volume("/srv/x:ro").unwrap();
        assert_eq!((v.target.to_str(), v.read_only), (Some("/srv/x"), true));
        assert!(parse_volume("/a:/b/../etc").is_err());
        assert!(parse_volume("/a:/b:/c:ro").is_err());
        // podman's SELinux labels: accepted, nothing relabelled.
        let v = parse_volume("/srv/data:/data:Z").unwrap();
        assert_eq!((v.target.to_str(), v.read_only), (Some("/data"), false));
        let v = parse_volume("/srv/data:/data:ro,z").unwrap();
        assert_eq!((v.target.to_str(), v.read_only), (Some("/data"), true));
        assert!(parse_volume("/a:/b:shared").is_err());
        // -v after run is a volume; before it, verbose.
        let cli = Cli::try_parse_from(["sandbox", "-v", "run", "-v", "/tmp:/x", "true"]).unwrap();
        assert!(cli.verbose_short);
        match cli.command {
            Command::Run(run) => assert_eq!(run.sandbox.volumes[0].target, PathBuf::from("/x")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_first_word_that_is_no_option_starts_the_command() {
        assert_eq!(
            command_of(&["sandbox", "run", "node", "-v"]),
            ["node", "-v"]
        );
        assert_eq!(
            command_of(&[
                "sandbox",
                "run",
                "--network",
                "none",
                "--",
                "ls",
                "--",
                "-l"
            ]),
            ["ls", "--", "-l"]
        );
        assert_eq!(
            command_of(&[
                "sandbox",
                "-v",
                "run",
                "-e",
                "A=1",
                "make",
                "--network",
                "x"
            ]),
            ["make", "--network", "x"]
        );
        assert!(Cli::try_parse_from(["sandbox", "run"]).is_err());
    }
}
