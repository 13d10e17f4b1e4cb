//! `sandbox run -- CMD` and `sandbox enter`: gather the inputs (sandbox.toml, the flags, the
//! stored image, the host), then join the project's running container or plan a new one and
//! execute the plan; render the outcome.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use crate::cli::args::{EnterArgs, GlobalArgs, RunArgs, SandboxArgs, SecurityOpt};
use crate::cli::errors::CliError;
use crate::cli::progress::Progress;
use crate::cli::setup_steps;
use crate::cli::{project, session};
use crate::config::project::Project;
use crate::image::platform::Platform;
use crate::image::reporter::PullReporter as _;
use crate::image::runnable::{self, Runnable};
use crate::image::unpack::Ownership;
use crate::image::Reference;
use crate::runtime::plan::{
    self, HostFacts, Inputs, LaunchKind, Program, ProjectInputs, Request, Seccomp, Stdio,
};
use crate::runtime::process::exit_code;
use crate::runtime::process::join;
use crate::runtime::process::monitor;
use crate::runtime::process::monitor::Outcome;
use crate::runtime::state;
use crate::runtime::RuntimeError;
use crate::settings::limits::Limits;

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

/// What sandbox.toml says, as the plan takes it (the current dir as the project without one).
pub fn project_inputs(config: Option<&Project>, cwd: &Path) -> Result<ProjectInputs, CliError> {
    let (egress, setup_egress) = crate::cli::egress::policies(config)?;
    let Some(config) = config else {
        return Ok(ProjectInputs {
            dir: project_dir(cwd),
            egress,
            setup_egress,
            ..ProjectInputs::default()
        });
    };
    Ok(ProjectInputs {
        egress,
        setup_egress,
        sources: crate::cli::sources::of(config),
        dir: config.dir.clone(),
        workdir: config.workdir.clone(),
        env: config.env.clone(),
        env_defaults: config.env_defaults.clone(),
        caches: config
            .caches
            .iter()
            .map(|c| (c.group.clone(), c.name.clone(), c.target.clone()))
            .collect(),
        network: config.network.mode.as_ref().map(|m| m.value),
        ports: config
            .network
            .ports
            .iter()
            .map(|p| p.value.clone())
            .collect(),
        host_loopback: config.network.host_loopback,
        limits: config.limits.clone(),
        cap_add: config.security.cap_add.iter().map(|c| c.value).collect(),
        cap_drop: config.security.cap_drop.iter().map(|c| c.value).collect(),
    })
}

/// What a command joining `running` asks for that the running sandbox does not have: another
/// image, changed files it was made from, flags that apply only when a sandbox starts.
fn join_differences(
    running: &state::ContainerState,
    image: &str,
    project: &ProjectInputs,
    args: &SandboxArgs,
) -> Vec<String> {
    let mut differences = Vec::new();
    if running.image != image {
        differences.push(format!("it runs {}, not {image}", running.image));
    }
    // A record from before sources were kept says nothing about them.
    if !running.sources.is_empty() {
        for name in state::changed_sources(&running.sources, &project.sources) {
            differences.push(format!("{name} changed"));
        }
    }
    let flags: Vec<&str> = [
        (args.memory.is_some(), "--memory"),
        (args.cpus.is_some(), "--cpus"),
        (args.pids.is_some(), "--pids"),
        (args.tmp.is_some(), "--tmp"),
        (!args.volumes.is_empty(), "-v"),
        (args.fresh_home, "--fresh-home"),
    ]
    .into_iter()
    .filter_map(|(given, flag)| given.then_some(flag))
    .collect();
    if !flags.is_empty() {
        differences.push(format!(
            "{} take effect only when a sandbox starts",
            flags.join(", ")
        ));
    }
    differences
}

/// `--env-file` files, then `-e`.
fn environment_flags(args: &SandboxArgs) -> Result<Vec<(String, String)>, CliError> {
    let mut env = Vec::new();
    for file in &args.env_files {
        let text = crate::config::files::read(file, crate::config::files::SMALL)?;
        for (number, line) in text.lines().enumerate() {
            let Ok(parsed) = crate::cli::env_file::parse_line(line) else {
                return Err(CliError::Usage {
                    message: format!(
                        "{}:{}: `{}` is not a variable",
                        file.display(),
                        number + 1,
                        line.trim()
                    ),
                    hint: Some(crate::cli::env_file::RULES.into()),
                });
            };
            // KEY alone: the value it has here, if any (as docker reads an env file).
            if let Some((key, value)) = parsed {
                if let Some(value) = value.or_else(|| std::env::var(key).ok()) {
                    env.push((key.to_owned(), value));
                }
            }
        }
    }
    // `-e KEY` alone: the value it has here, if any (as podman).
    env.extend(args.env.iter().filter_map(|(key, value)| {
        value
            .clone()
            .or_else(|| std::env::var(key).ok())
            .map(|v| (key.clone(), v))
    }));
    Ok(env)
}

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

/// What of the host's the user's config (and a trusted sandbox.toml) forwards, found on the
/// host; what is missing is said and left out.
fn forwarded(config: Option<&Project>, progress: &Progress) -> Result<plan::Forwarded, CliError> {
    let mut forward = crate::config::user::forward()?;
    if let Some(config) = config {
        forward = forward.merged(&config.forward);
    }
    let mut out = plan::Forwarded::default();
    if forward.is_empty() {
        return Ok(out);
    }
    let home = dirs::home_dir().unwrap_or_default();
    if forward.ssh_agent {
        use std::os::unix::fs::FileTypeExt as _;
        match std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from) {
            Some(socket) if fs_err::metadata(&socket).is_ok_and(|m| m.file_type().is_socket()) => {
                out.ssh_agent = Some(socket)
            }
            // Said under -v only: a login without an agent is common, and every run would
            // repeat it.
            _ => crate::runtime::RunReporter::verbose(
                progress,
                "forward.ssh_agent: SSH_AUTH_SOCK names no socket here, so no agent is forwarded",
            ),
        }
    }
    // (on the host, inside)
    let mut paths: Vec<(PathBuf, String)> = forward
        .paths
        .iter()
        .map(|inside| {
            let host = crate::runtime::environment::expand_home(inside, &home);
            (PathBuf::from(host), inside.clone())
        })
        .collect();
    if forward.gitconfig {
        // Both files git reads, as it reads them: ~/.gitconfig and $XDG_CONFIG_HOME/git/config
        // (inside, where git looks with no XDG_CONFIG_HOME set); at least the first is named.
        let xdg = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| home.join(".config"))
            .join("git/config");
        // Whichever there are: git works without either, so none is nothing to say.
        let dot = home.join(".gitconfig");
        if dot.exists() {
            paths.push((dot, "~/.gitconfig".into()));
        }
        if xdg.exists() {
            paths.push((xdg, "~/.config/git/config".into()));
        }
    }
    for (host, inside) in paths {
        match fs_err::metadata(&host) {
            Ok(meta) => out.paths.push((host, inside, meta.is_dir())),
            Err(_) => progress.notice(&format!(
                "forward: {} is not there, so it is not forwarded",
                host.display()
            )),
        }
    }
    Ok(out)
}

/// The host facts every plan starts from.
pub fn host_facts(global: &GlobalArgs) -> Result<HostFacts, CliError> {
    let containers = session::store_root(global)?.join("containers");
    let cgroups = crate::config::user::cgroups_v1()?;
    let mut host = HostFacts::gather(
        containers,
        crate::cli::commands::cache::caches_root(global),
        &cgroups,
    )?;
    if !crate::config::user::pass_proxy()? {
        host.proxy_env.clear();
    }
    Ok(host)
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

/// The image to run, and how it is named.
pub struct ChosenImage {
    /// What is pulled: the digest sandbox.lock pins, else the reference itself.
    pub reference: Reference,
    /// For a locked project, the tag the lock came from: the image is stored under it.
    pub tag: Option<Reference>,
    /// The prepared sandbox the lock pins (`sandbox lock --push`), by digest.
    pub prepared: Option<Reference>,
}

impl ChosenImage {
    /// How `ps` names it: a locked project's tag with a short digest, not a second
    /// `repo@sha256:...`.
    fn shown(&self) -> String {
        match (&self.tag, self.reference.digest()) {
            (Some(tag), Some(digest)) => format!("{tag} ({})", digest.short()),
            _ => self.reference.to_string(),
        }
    }
}

/// The image to run: --image; else sandbox.toml's, pinned by sandbox.lock when it matches.
pub fn image_reference(
    image_flag: Option<&str>,
    locked_flag: bool,
    config: Option<&Project>,
    progress: &Progress,
) -> Result<ChosenImage, CliError> {
    let Some(config) = config else {
        let text = image_flag.unwrap_or_default();
        return Ok(ChosenImage {
            reference: Reference::parse(text)?,
            tag: None,
            prepared: None,
        });
    };
    let locked = if locked_flag {
        Some(project::require_current_lock(config)?)
    } else {
        match project::lock_state(config)? {
            project::LockState::Current(lock) => Some(*lock),
            project::LockState::Missing => None,
            project::LockState::Drifted(_) => {
                progress.notice("sandbox.lock no longer matches sandbox.toml, so it is not used; `sandbox lock` records the change");
                None
            }
        }
    };
    let parse = |text: &str| {
        Reference::parse(text).map_err(|e| -> CliError {
            config
                .error_at(config.image.span.clone(), format!("`{text}`: {e}"), None)
                .into()
        })
    };
    Ok(match locked {
        Some(lock) => ChosenImage {
            reference: parse(&crate::config::lock::pinned_reference(
                &lock,
                &Platform::host().to_string(),
            ))?,
            tag: Some(parse(&lock.inputs.image)?).filter(|t| t.digest().is_none()),
            prepared: lock
                .resolved
                .prepared
                .as_deref()
                .map(Reference::parse)
                .transpose()?
                .filter(|p| p.digest().is_some()),
        },
        None => ChosenImage {
            reference: parse(&config.image.value)?,
            tag: None,
            prepared: None,
        },
    })
}

/// The stored image, pulled first when missing or incomplete. A digest already stored under
/// its tag (`sandbox lock` pulled it) is used as it is, without asking the registry.
pub fn prepare_image(
    store: &crate::image::store::Store,
    ownership: Ownership,
    chosen: &ChosenImage,
    progress: &Progress,
) -> Result<Runnable, CliError> {
    let reference = &chosen.reference;
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
    // A locked project's digest is stored under its tag (one entry in `images`, not two).
    let record = session::pull_as(
        store,
        ownership,
        reference,
        chosen.tag.as_ref().unwrap_or(reference),
        progress,
    )?;
    runnable::load(store, &record)?.ok_or_else(|| CliError::Usage {
        message: format!("{reference} lost a layer while it was being pulled"),
        hint: Some("run the command again".into()),
    })
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
    let config = project_config(global, args, &cwd)?;
    for notice in config.iter().flat_map(|c| &c.notices) {
        progress.notice(notice);
    }
    let chosen = image_reference(
        args.image.as_deref(),
        args.locked,
        config.as_ref(),
        &progress,
    )?;
    let host = host_facts(global)?;
    let project = project_inputs(config.as_ref(), &cwd)?;
    let request = Request {
        program,
        stdio,
        as_root: args.as_root,
        env: environment_flags(args)?,
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
            ..forwarded(config.as_ref(), &progress)?
        },
        home: if args.fresh_home {
            None
        } else {
            Some(crate::image::store::homes::ensure_home(
                &session::store_root(global)?,
                &project.dir,
            )?)
        },
    };
    let image_name = chosen.shown();
    let mut inputs = Inputs {
        kind: LaunchKind::Command,
        id: state::new_id(),
        image: &image_name,
        layers: Vec::new(),
        image_env: &[],
        project: &project,
        request: &request,
        host: &host,
        ids_mapped: true,
        trust: None,
    };

    // A running container of this project is joined instead of starting another: one sandbox
    // per project. What it cannot take from this command is said first (--locked: refused).
    if let Some(running) = state::find_for_project(&host.containers_dir, &project.dir) {
        let differences = join_differences(&running, &image_name, &project, args);
        if !differences.is_empty() {
            let what = differences.join("; ");
            let id = &running.id;
            if args.locked {
                return Err(usage(
                    format!("--locked: the project's running sandbox {id} is not what sandbox.toml and sandbox.lock make now: {what}"),
                    format!("`sandbox stop {id}` ends it; the next command then starts one from the files as they are"),
                ));
            }
            progress.notice(
                &format!("joining the project's running sandbox {id}, started before this: {what}; `sandbox stop {id}` ends it, and the next command starts a new one"),
            );
        }
        let process = plan::resolve_join(&inputs, &running).map_err(RuntimeError::from)?;
        let v1_parents: Vec<PathBuf> = host.cgroups.v1.iter().map(|d| d.path.clone()).collect();
        match join::run(&running, &process, &v1_parents, request.stats, &progress) {
            // It ended while we looked: start a new one below.
            Err(RuntimeError::NotRunning { .. }) => {}
            other => return finish(other?),
        }
    }

    let (store, ownership) = session::open_store_in_namespace(global, &progress)?;
    state::collect_stale(&host.containers_dir);
    // What sandboxes killed with -9 left in the delegated cgroups.
    let v2_base = host.cgroups.v2.as_ref().and_then(|v2| v2.base.as_ref());
    let delegated: Vec<PathBuf> = host
        .cgroups
        .v1
        .iter()
        .map(|d| d.path.clone())
        .chain(v2_base.map(|b| b.path.clone()))
        .collect();
    crate::runtime::cgroups::collect_stale(&delegated, &host.containers_dir);
    let image = prepare_image(&store, ownership.clone(), &chosen, &progress)?;
    // `@debian` and the like reach the image's own mirrors too.
    let project = crate::cli::egress::with_image_mirrors(
        &project,
        config.as_ref(),
        &image.layers,
        &progress,
    )?;
    inputs.project = &project;
    let mut layers = image.layers.clone();
    if let Some(config) = config.as_ref() {
        // Setup not built here, and the lock pins a prepared sandbox: pulled (and checked by
        // its digest) instead of running the steps.
        let missing = || -> Result<bool, CliError> {
            Ok(setup_steps::chain(config, &image.manifest)?
                .iter()
                .any(|key| store.setup_layer(key).is_none()))
        };
        match &chosen.prepared {
            Some(prepared) if missing()? => {
                // A cloned lock's pin would run someone's image in place of the reviewed
                // steps: only one made here, or trusted, is pulled.
                let pinned = prepared.to_string();
                if !store.made_prepared(&pinned)
                    && !crate::config::trust::is_prepared_trusted(config, &pinned)
                {
                    return Err(CliError::UntrustedPrepared {
                        prepared: pinned,
                        lock: crate::config::lock::path_for(config),
                    });
                }
                progress.line(&format!(
                    "setup: not built here; using the prepared sandbox {prepared} that sandbox.lock pins instead of running the setup steps"
                ));
                let whole = ChosenImage {
                    reference: prepared.clone(),
                    tag: None,
                    prepared: None,
                };
                let prepared_layers =
                    prepare_image(&store, ownership.clone(), &whole, &progress)?.layers;
                if !prepared_layers.starts_with(&image.layers) {
                    return Err(CliError::PreparedOffBase {
                        prepared: pinned,
                        base: image.reference.clone(),
                    });
                }
                layers = prepared_layers;
            }
            _ => layers.extend(setup_steps::prepare(
                &store, config, &project, &image, &host, &ownership, &progress,
            )?),
        }
    }
    let trust = crate::cli::trust::for_layers(
        &store,
        &crate::cli::trust::host_files()?,
        &layers,
        &crate::cli::trust::env_pairs(&image.env, &project.env_defaults, &project.env),
        &progress,
    )?;
    inputs.layers = layers;
    inputs.image_env = &image.env;
    inputs.ids_mapped = !matches!(ownership, Ownership::Squash);
    inputs.trust = trust.as_ref();
    let plan = plan::resolve(&inputs).map_err(RuntimeError::from)?;
    if !plan.cgroup.not_applied.is_empty() && !global.quiet {
        let what: Vec<String> = plan
            .cgroup
            .not_applied
            .iter()
            .map(|n| format!("{} ({})", n.limit, n.why))
            .collect();
        progress.notice(&format!(
            "limits not applied: {}; --require-limits makes this an error",
            what.join("; ")
        ));
    }
    if plan.process.program == Program::LoginShell && !global.quiet {
        progress.line(&format!(
            "sandbox {}: {} in {}; changes outside the project dir, the home and the caches are discarded when the last shell exits",
            plan.id,
            image.reference,
            project.dir.display()
        ));
    }
    finish(monitor::start(&plan, &progress)?)
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
