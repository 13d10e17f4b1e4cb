//! `sandbox run -- CMD` and `sandbox enter`: find the project, prepare the image, then start a
//! container, or join the project's running one.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use crate::cli::args::{EnterArgs, GlobalArgs, NetworkArg, RunArgs, SandboxArgs};
use crate::cli::environment::{expand_home, Environment};
use crate::cli::errors::CliError;
use crate::cli::progress::Progress;
use crate::cli::setup;
use crate::cli::{project, session};
use crate::config::project::Project;
use crate::image::platform::Platform;
use crate::image::reporter::PullReporter as _;
use crate::image::runnable::{self, Runnable};
use crate::image::unpack::Ownership;
use crate::image::Reference;
use crate::runtime::monitor::Outcome;
use crate::runtime::network::{self, Helper};
use crate::runtime::spec::{
    network_summary, ContainerSpec, Identity, Network, NetworkOptions, OverlayChoice, Program,
};
use crate::runtime::{join, monitor, state, RuntimeError};

/// The project directory: the nearest ancestor holding sandbox.toml, else the current dir.
pub fn project_dir(cwd: &Path) -> PathBuf {
    cwd.ancestors()
        .find(|d| d.join("sandbox.toml").is_file())
        .unwrap_or(cwd)
        .to_owned()
}

fn usage(message: impl Into<String>, hint: impl Into<String>) -> CliError {
    CliError::Usage {
        message: message.into(),
        hint: Some(hint.into()),
    }
}

fn identity(ids_mapped: bool) -> Result<Identity, CliError> {
    let uid = nix::unistd::getuid();
    let user = nix::unistd::User::from_uid(uid).ok().flatten();
    let name = user
        .as_ref()
        .map(|u| u.name.clone())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| format!("user{uid}"));
    let home = user
        .as_ref()
        .map(|u| u.dir.clone())
        .or_else(dirs::home_dir)
        .unwrap_or_else(|| PathBuf::from("/home").join(&name));
    let shell = user
        .as_ref()
        .map(|u| u.shell.clone())
        .unwrap_or_else(|| PathBuf::from("/bin/sh"));
    Ok(Identity {
        uid: uid.as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        name,
        home,
        shell,
        ids_mapped,
    })
}

/// The image's env and sandbox.toml's (see `Environment::base`), then who you are, then the
/// host's terminal and locale variables, then `-e`.
fn environment(
    image_env: &[String],
    project_env: &[(String, String)],
    user: &Identity,
    hostname: &str,
    extra: &[String],
) -> Result<Vec<(String, String)>, CliError> {
    let mut env = Environment::base(image_env, project_env, &user.home);
    let mut set = |key: &str, value: &str| env.set(key, value);
    set("HOME", &user.home.display().to_string());
    set("USER", &user.name);
    set("LOGNAME", &user.name);
    set("HOSTNAME", hostname);
    set("container", "sandbox");
    for (key, value) in std::env::vars() {
        if key == "TERM"
            || key == "COLORTERM"
            || key == "LANG"
            || key == "LANGUAGE"
            || key.starts_with("LC_")
        {
            set(&key, &value);
        }
    }
    for pair in extra {
        let (k, v) = pair.split_once('=').ok_or_else(|| {
            usage(
                format!("`-e {pair}` is not KEY=VALUE"),
                "write it as `-e NAME=value`",
            )
        })?;
        if k.is_empty() || k.contains(char::is_whitespace) {
            return Err(usage(
                format!("`-e {pair}` has no valid variable name"),
                "write it as `-e NAME=value`",
            ));
        }
        set(k, v);
    }
    Ok(env.into_vec())
}

/// The network mode: the flag, else sandbox.toml's `[network] mode`, else pasta if installed,
/// else slirp4netns.
pub fn network_mode(
    flag: Option<NetworkArg>,
    config: Option<&Project>,
) -> Result<Network, CliError> {
    let configured = config.and_then(|p| p.network.mode.as_ref());
    let from_config = configured.map(|m| match m.value.as_str() {
        "none" => NetworkArg::None,
        "host" => NetworkArg::Host,
        "slirp4netns" => NetworkArg::Slirp4netns,
        _ => NetworkArg::Pasta,
    });
    Ok(match flag.or(from_config) {
        Some(NetworkArg::None) => Network::None,
        Some(NetworkArg::Host) => Network::Host,
        Some(NetworkArg::Pasta) => Network::Helper(Helper::Pasta),
        Some(NetworkArg::Slirp4netns) => Network::Helper(Helper::Slirp4netns),
        None => Network::Helper(Helper::detect().ok_or(RuntimeError::NoNetworkHelper)?),
    })
}

/// The network mode and its options: flags first, then sandbox.toml's `[network]`; without
/// either, pasta if installed, else slirp4netns.
fn network(
    args: &SandboxArgs,
    config: Option<&Project>,
) -> Result<(Network, NetworkOptions), CliError> {
    let mode = network_mode(args.network, config)?;
    let mut ports = Vec::new();
    if let Some(project) = config {
        for port in &project.network.ports {
            let parsed = network::parse_port(&port.value).map_err(|e| {
                project.error_at(
                    port.span.clone(),
                    format!("bad port {e}"),
                    Some("for example \"8080:80\" or \"127.0.0.1:5353:53/udp\"".into()),
                )
            })?;
            ports.push(parsed);
        }
    }
    for p in &args.publish {
        ports.push(network::parse_port(p).map_err(|e| {
            usage(
                format!("bad -p/--publish {e}"),
                "for example `-p 8080:80` or `-p 127.0.0.1:5353:53/udp`",
            )
        })?);
    }
    let host_loopback = args.host_loopback || config.is_some_and(|p| p.network.host_loopback);
    if !matches!(mode, Network::Helper(_)) && (!ports.is_empty() || host_loopback) {
        return Err(usage(
            "-p/--publish and --host-loopback need a network helper, not --network none or host",
            "with --network host the sandbox uses the host's ports directly; otherwise use --network pasta or slirp4netns",
        ));
    }
    let host_address = match mode {
        Network::Helper(helper) if host_loopback => helper.host_address(),
        _ => None,
    };
    Ok((
        mode,
        NetworkOptions {
            ports,
            host_loopback,
            host_address,
        },
    ))
}

/// A joined command shares the running container's network: asking for another one (a
/// different mode, ports, host loopback) is an error rather than silently ignored.
fn refuse_other_network(
    running: &state::ContainerState,
    args: &SandboxArgs,
    network: Network,
    options: &NetworkOptions,
) -> Result<(), CliError> {
    let asked = args.network.is_some() || !args.publish.is_empty() || args.host_loopback;
    let wanted = network_summary(network, options);
    if !asked || wanted == running.network {
        return Ok(());
    }
    Err(usage(
        format!(
            "this project's sandbox {} is already running with network `{}`; a command joining it shares that network and cannot have `{wanted}`",
            running.id, running.network
        ),
        format!(
            "drop --network/-p/--host-loopback to join it, or end it first (`sandbox stop {}`)",
            running.id
        ),
    ))
}

/// The project's sandbox.toml, unless --image names the image (then it is not read).
fn project_config(
    global: &GlobalArgs,
    args: &SandboxArgs,
    cwd: &Path,
) -> Result<Option<Project>, CliError> {
    if args.image.is_some() {
        if args.locked {
            return Err(usage(
                "--locked pins sandbox.toml's image, and --image names another",
                "drop one of them",
            ));
        }
        return Ok(None);
    }
    let file = project::locate(global, cwd)?.ok_or_else(|| {
        usage(
            "no image to run: this directory has no sandbox.toml and no --image was given",
            "write a sandbox.toml with `sandbox init` (e.g. `sandbox init java@21`), or pass an image: `sandbox run --image docker.io/library/debian:bookworm -- bash`",
        )
    })?;
    let config = crate::config::project::load(&file)?;
    crate::config::trust::check(&config)?;
    Ok(Some(config))
}

/// The image to run: --image; else sandbox.toml's, pinned by sandbox.lock when it matches.
fn image_reference(
    args: &SandboxArgs,
    config: Option<&Project>,
    progress: &Progress,
) -> Result<Reference, CliError> {
    let Some(config) = config else {
        let text = args.image.as_deref().unwrap_or_default();
        return Ok(Reference::parse(text)?);
    };
    let locked = if args.locked {
        Some(project::require_current_lock(config)?)
    } else {
        match project::lock_state(config)? {
            project::LockState::Current(lock) => Some(lock),
            project::LockState::Missing => None,
            project::LockState::Drifted(_) => {
                progress.notice("sandbox.lock no longer matches sandbox.toml, so it is not used; `sandbox lock` records the change");
                None
            }
        }
    };
    let text = match locked {
        Some(lock) => crate::config::lock::pinned_reference(&lock, &Platform::host().to_string()),
        None => config.image.value.clone(),
    };
    Reference::parse(&text).map_err(|e| {
        config
            .error_at(config.image.span.clone(), format!("`{text}`: {e}"), None)
            .into()
    })
}

/// The stored image, pulled first when missing or incomplete. A digest already stored under
/// its tag (`sandbox lock` pulled it) is used as it is, without asking the registry.
fn prepare_image(
    store: &crate::image::store::Store,
    ownership: Ownership,
    reference: &Reference,
    progress: &Progress,
) -> Result<Runnable, CliError> {
    if let Some(record) = store.image(&reference.to_string())? {
        if let Some(runnable) = runnable::load(store, &record)? {
            return Ok(runnable);
        }
    }
    if let Some(digest) = reference.digest() {
        let platform = Platform::host().to_string();
        for record in store.images()? {
            let same = record.manifest_digest == *digest
                || (record.resolved_digest == *digest && record.platform == platform);
            let name = reference.name();
            let same_repository = record
                .reference
                .strip_prefix(&name)
                .is_some_and(|rest| rest.starts_with([':', '@']));
            if same && same_repository {
                if let Some(runnable) = runnable::load(store, &record)? {
                    return Ok(runnable);
                }
            }
        }
    }
    let record = session::pull(store, ownership, reference, progress)?;
    runnable::load(store, &record)?.ok_or_else(|| CliError::Usage {
        message: format!("{reference} lost a layer while it was being pulled"),
        hint: Some("run the command again".into()),
    })
}

#[derive(Clone)]
struct Request<'a> {
    sandbox: &'a SandboxArgs,
    program: Program,
    tty: bool,
}

fn launch(global: &GlobalArgs, request: Request<'_>) -> Result<u8, CliError> {
    let progress = Progress::new(global.quiet).verbose(global.verbose);
    let cwd = std::env::current_dir()?;
    let config = project_config(global, request.sandbox, &cwd)?;
    let reference = image_reference(request.sandbox, config.as_ref(), &progress)?;
    let project = config
        .as_ref()
        .map_or_else(|| project_dir(&cwd), |c| c.dir.clone());
    let cwd = match config.as_ref().and_then(|c| c.workdir.as_ref()) {
        Some(workdir) => project.join(workdir),
        None => cwd,
    };
    let hostname = crate::runtime::etc_files::hostname_for(&project);
    let containers = session::store_root(global).join("containers");
    let (network, network_options) = network(request.sandbox, config.as_ref())?;
    let project_env = config.as_ref().map_or(&[][..], |c| &c.env[..]);

    // A running container of this project and image is joined instead of starting another.
    if let Some(running) = state::find_for_project(&containers, &project, &reference.to_string()) {
        refuse_other_network(&running, request.sandbox, network, &network_options)?;
        let identity = identity(true)?;
        let env = environment(
            &[],
            project_env,
            &identity,
            &running.hostname,
            &request.sandbox.env,
        )?;
        let spec = spec(
            &running.id,
            &containers,
            Vec::new(),
            &reference,
            &project,
            &cwd,
            &running.hostname,
            (network, network_options.clone()),
            identity,
            request.clone(),
            env,
        );
        match join::run(&running, &spec) {
            // It ended while we looked: start a new one below.
            Err(RuntimeError::NotRunning { .. }) => {}
            other => return finish(other?),
        }
    }

    let (store, ownership) = session::open_store_in_namespace(global, &progress)?;
    state::collect_stale(&containers);
    let image = prepare_image(&store, ownership.clone(), &reference, &progress)?;
    let identity = identity(!matches!(ownership, Ownership::Squash))?;
    if request.sandbox.as_root && !identity.ids_mapped {
        return Err(usage("--as-root needs subordinate ids, and this user has none", "add a range: `sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $USER`"));
    }
    let mut layers = image.layers.clone();
    let mut caches = Vec::new();
    if let Some(config) = &config {
        if config.limits.any() {
            progress.notice("[limits] in sandbox.toml are checked but not applied yet: this sandbox runs without memory, cpu or pid limits");
        }
        if !config.setup.is_empty() {
            layers.push(setup::prepare(
                global, &store, config, &image, &reference, &progress,
            )?);
        }
        caches = cache_mounts(config, &identity.home)?;
    }
    let env = environment(
        &image.env,
        project_env,
        &identity,
        &hostname,
        &request.sandbox.env,
    )?;
    let id = state::new_id();
    if matches!(request.program, Program::LoginShell) && !global.quiet {
        progress_line(&progress, &format!(
            "sandbox {id}: {} in {}; changes outside the project dir are discarded when the last shell exits",
            image.reference,
            project.display()
        ));
    }
    let mut spec = spec(
        &id,
        &containers,
        layers,
        &reference,
        &project,
        &cwd,
        &hostname,
        (network, network_options),
        identity,
        request,
        env,
    );
    spec.caches = caches;
    let outcome = monitor::start(&spec, &progress)?;
    finish(outcome)
}

/// The project's caches: (dir on the host, path inside). The host dirs are made here, owned by
/// the user, under `$XDG_CACHE_HOME/sandbox/caches/<toolchain>/<name>`.
fn cache_mounts(config: &Project, home: &Path) -> Result<Vec<(PathBuf, PathBuf)>, CliError> {
    use std::os::unix::fs::DirBuilderExt as _;
    let root = super::cache::caches_root();
    let mut out = Vec::new();
    for cache in &config.caches {
        let host = root.join(&cache.group).join(&cache.name);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&host)
            .map_err(|e| {
                CliError::Io(std::io::Error::new(
                    e.kind(),
                    format!("cannot create the cache dir {}: {e}", host.display()),
                ))
            })?;
        out.push((host, PathBuf::from(expand_home(&cache.target, home))));
    }
    Ok(out)
}

fn progress_line(progress: &Progress, text: &str) {
    progress.line(text);
}

#[allow(clippy::too_many_arguments)]
fn spec(
    id: &str,
    containers: &Path,
    layers: Vec<PathBuf>,
    reference: &Reference,
    project: &Path,
    cwd: &Path,
    hostname: &str,
    (network, network_options): (Network, NetworkOptions),
    identity: Identity,
    request: Request<'_>,
    env: Vec<(String, String)>,
) -> ContainerSpec {
    ContainerSpec {
        id: id.to_owned(),
        dir: containers.join(id),
        layers,
        image: reference.to_string(),
        project_dir: project.to_owned(),
        cwd: if cwd.starts_with(project) {
            cwd.to_owned()
        } else {
            project.to_owned()
        },
        hostname: hostname.to_owned(),
        network,
        network_options,
        identity,
        as_root: request.sandbox.as_root,
        env,
        program: request.program,
        tty: request.tty,
        overlay: overlay_choice(),
        caches: Vec::new(),
        mount_project: true,
        keep_upper: None,
        resolv_conf: fs_err::read_to_string("/etc/resolv.conf")
            .unwrap_or_default()
            .chars()
            .take(64 * 1024)
            .collect(),
    }
}

/// `SANDBOX_OVERLAY=kernel|fuse` forces one overlay implementation (fuse for a store on a file
/// system where kernel overlayfs in a user namespace does not work); unset, the kernel is tried
/// first and fuse-overlayfs is the fallback.
fn overlay_choice() -> OverlayChoice {
    match std::env::var("SANDBOX_OVERLAY").as_deref() {
        Ok("fuse") => OverlayChoice::Fuse,
        Ok("kernel") => OverlayChoice::Kernel,
        _ => OverlayChoice::Auto,
    }
}

#[allow(clippy::print_stderr)]
fn finish(outcome: Outcome) -> Result<u8, CliError> {
    match outcome {
        Outcome::Exited(code) => Ok(u8::try_from(code).unwrap_or(255)),
        Outcome::NotStarted {
            program,
            errno,
            code,
        } => {
            let reason = std::io::Error::from_raw_os_error(errno);
            if code == 127 {
                eprintln!("error: command not found in the sandbox: {program}");
                eprintln!("hint: check the name, or the image's PATH");
            } else {
                eprintln!("error: cannot execute {program} in the sandbox: {reason}");
            }
            Ok(u8::try_from(code).unwrap_or(126))
        }
    }
}

pub fn run(global: &GlobalArgs, args: &RunArgs) -> Result<u8, CliError> {
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    launch(
        global,
        Request {
            sandbox: &args.sandbox,
            program: Program::Command(args.command.clone()),
            tty,
        },
    )
}

pub fn enter(global: &GlobalArgs, args: &EnterArgs) -> Result<u8, CliError> {
    launch(
        global,
        Request {
            sandbox: &args.sandbox,
            program: Program::LoginShell,
            tty: true,
        },
    )
}
