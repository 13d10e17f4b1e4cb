//! What a project's sandbox is planned from, besides the command line: sandbox.toml as the
//! plan takes it, what the user's config forwards from the host, and the host's facts.

use std::path::{Path, PathBuf};

use crate::config::project::Project;
use crate::project::error::ProjectError;
use crate::project::locations::Locations;
use crate::project::reporter::ProjectReporter;
use crate::runtime::plan::{self, HostFacts, ProjectInputs};

/// The project directory: the nearest ancestor holding sandbox.toml, else the current dir.
pub fn project_dir(cwd: &Path) -> PathBuf {
    crate::config::project::find(cwd)
        .and_then(|file| file.parent().map(Path::to_owned))
        .unwrap_or_else(|| cwd.to_owned())
}

/// What sandbox.toml says, as the plan takes it (the current dir as the project without one).
pub fn project_inputs(config: Option<&Project>, cwd: &Path) -> Result<ProjectInputs, ProjectError> {
    let (egress, setup_egress) = crate::project::egress::policies(config)?;
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
        sources: crate::project::sources::of(config),
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

/// What of the host's the user's config (and a trusted sandbox.toml) forwards, found on the
/// host; what is missing is said and left out.
pub fn forwarded(
    config: Option<&Project>,
    progress: &dyn ProjectReporter,
) -> Result<plan::Forwarded, ProjectError> {
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
pub fn host_facts(locations: &Locations) -> Result<HostFacts, ProjectError> {
    let cgroups = crate::config::user::cgroups_v1()?;
    let mut host = HostFacts::gather(locations.store_root()?, locations.caches_root(), &cgroups)?;
    if !crate::config::user::pass_proxy()? {
        host.proxy_env.clear();
    }
    Ok(host)
}
