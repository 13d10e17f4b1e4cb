//! A project's sandbox, started or joined: sandbox.toml (unless --image), the image it pins,
//! its setup layers and trust, then the plan, which the runtime executes. One sandbox per
//! project: a running one is joined instead of starting another.

use std::path::{Path, PathBuf};

use crate::config::project::Project;
use crate::image::unpack::Ownership;
use crate::project::access;
use crate::project::error::ProjectError;
use crate::project::files;
use crate::project::image_choice::{self, ChosenImage};
use crate::project::inputs;
use crate::project::locations::Locations;
use crate::project::reporter::ProjectReporter;
use crate::project::setup_steps;
use crate::runtime::plan::{self, Inputs, LaunchKind, Program, ProjectInputs, Request};
use crate::runtime::process::join;
use crate::runtime::process::monitor::{self, Outcome};
use crate::runtime::state;
use crate::runtime::RuntimeError;

/// What a command asks of the project's sandbox, beyond sandbox.toml.
pub struct Asked {
    /// `--image`: run this instead of sandbox.toml's (which is then not read).
    pub image: Option<String>,
    /// `--locked`: sandbox.lock must match, and a running sandbox must be what it pins.
    pub locked: bool,
    /// `--fresh-home`: a throwaway home instead of the project's.
    pub fresh_home: bool,
    /// The flags given that take effect only when a sandbox starts (`--memory`, `-v`), as
    /// named on the command line: said when a running sandbox is joined instead.
    pub start_only: Vec<&'static str>,
    /// The command and its settings. Its forwarded paths and home are the project's to fill;
    /// its volumes (`-v`) are kept.
    pub request: Request,
}

/// Starts the project's sandbox, or joins the one running, and runs the command in it.
pub fn launch(
    locations: &Locations,
    asked: Asked,
    reporter: &dyn ProjectReporter,
) -> Result<Outcome, ProjectError> {
    let cwd = std::env::current_dir()?;
    let config = project_config(locations, &asked, &cwd)?;
    for notice in config.iter().flat_map(|c| &c.notices) {
        reporter.notice(notice);
    }
    let chosen = image_choice::image_reference(
        asked.image.as_deref(),
        asked.locked,
        config.as_ref(),
        reporter,
    )?;
    let host = inputs::host_facts(locations)?;
    let project = inputs::project_inputs(config.as_ref(), &cwd)?;
    let mut request = asked.request;
    request.forward = plan::Forwarded {
        volumes: std::mem::take(&mut request.forward.volumes),
        ..inputs::forwarded(config.as_ref(), reporter)?
    };
    request.home = if asked.fresh_home {
        None
    } else {
        Some(crate::image::store::homes::ensure_home(
            &locations.store_root()?,
            &project.dir,
        )?)
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
    if let Some(running) = state::find_for_project(&host.containers_dir(), &project.dir) {
        let differences = join_differences(&running, &image_name, &project, &asked.start_only);
        if !differences.is_empty() {
            let what = differences.join("; ");
            let id = &running.id;
            if asked.locked {
                return Err(ProjectError::refused(
                    format!("--locked: the project's running sandbox {id} is not what sandbox.toml and sandbox.lock make now: {what}"),
                    format!("`sandbox stop {id}` ends it; the next command then starts one from the files as they are"),
                ));
            }
            reporter.notice(
                &format!("joining the project's running sandbox {id}, started before this: {what}; `sandbox stop {id}` ends it, and the next command starts a new one"),
            );
        }
        let process = plan::resolve_join(&inputs, &running).map_err(RuntimeError::from)?;
        let v1_parents: Vec<PathBuf> = host.cgroups.v1.iter().map(|d| d.path.clone()).collect();
        match join::run(&running, &process, &v1_parents, request.stats, reporter) {
            // It ended while we looked: start a new one below.
            Err(RuntimeError::NotRunning { .. }) => {}
            other => return Ok(other?),
        }
    }

    let (store, ownership) = access::open_store_in_namespace(locations, reporter)?;
    state::collect_stale(&host.containers_dir());
    // What sandboxes killed with -9 left in the delegated cgroups.
    let v2_base = host.cgroups.v2.as_ref().and_then(|v2| v2.base.as_ref());
    let delegated: Vec<PathBuf> = host
        .cgroups
        .v1
        .iter()
        .map(|d| d.path.clone())
        .chain(v2_base.map(|b| b.path.clone()))
        .collect();
    crate::runtime::cgroups::collect_stale(&delegated, &host.containers_dir());
    let image = image_choice::prepare_image(&store, ownership.clone(), &chosen, reporter)?;
    // `@debian` and the like reach the image's own mirrors too.
    let project = crate::project::egress::with_image_mirrors(
        &project,
        config.as_ref(),
        &image.layers,
        reporter,
    )?;
    inputs.project = &project;
    let layers = match config.as_ref() {
        Some(config) => setup_layers(
            &store, config, &chosen, &image, &project, &host, &ownership, reporter,
        )?,
        None => image.layers.clone(),
    };
    let trust = crate::project::trust::for_layers(
        &store,
        &crate::project::trust::host_files()?,
        &layers,
        &crate::project::trust::env_pairs(&image.env, &project.env_defaults, &project.env),
        reporter,
    )?;
    inputs.layers = layers;
    inputs.image_env = &image.env;
    inputs.ids_mapped = !matches!(ownership, Ownership::Squash);
    inputs.trust = trust.as_ref();
    let plan = plan::resolve(&inputs).map_err(RuntimeError::from)?;
    if !plan.cgroup.not_applied.is_empty() {
        let what: Vec<String> = plan
            .cgroup
            .not_applied
            .iter()
            .map(|n| format!("{} ({})", n.limit, n.why))
            .collect();
        reporter.notice(&format!(
            "limits not applied: {}; --require-limits makes this an error",
            what.join("; ")
        ));
    }
    if plan.process.program == Program::LoginShell {
        reporter.line(&format!(
            "sandbox {}: {} in {}; changes outside the project dir, the home and the caches are discarded when the last shell exits",
            plan.id,
            image.reference,
            project.dir.display()
        ));
    }
    Ok(monitor::start(&plan, reporter)?)
}

/// The image's layers and the project's setup layers on them: built here when missing, unless
/// the lock pins a prepared sandbox, which is then pulled (and checked by its digest) instead.
#[allow(clippy::too_many_arguments)]
fn setup_layers(
    store: &crate::image::store::Store,
    config: &Project,
    chosen: &ChosenImage,
    image: &crate::image::runnable::Runnable,
    project: &ProjectInputs,
    host: &plan::HostFacts,
    ownership: &Ownership,
    reporter: &dyn ProjectReporter,
) -> Result<Vec<PathBuf>, ProjectError> {
    let missing = || -> Result<bool, ProjectError> {
        Ok(setup_steps::chain(config, &image.manifest)?
            .iter()
            .any(|key| store.setup_layer(key).is_none()))
    };
    let prepared = match &chosen.prepared {
        Some(prepared) if missing()? => prepared,
        _ => {
            let mut layers = image.layers.clone();
            layers.extend(setup_steps::prepare(
                store, config, project, image, host, ownership, reporter,
            )?);
            return Ok(layers);
        }
    };
    // A cloned lock's pin would run someone's image in place of the reviewed steps: only one
    // made here, or trusted, is pulled.
    let pinned = prepared.to_string();
    if !store.made_prepared(&pinned) && !crate::config::trust::is_prepared_trusted(config, &pinned)
    {
        return Err(ProjectError::UntrustedPrepared {
            prepared: pinned,
            lock: crate::config::lock::path_for(config),
        });
    }
    reporter.line(&format!(
        "setup: not built here; using the prepared sandbox {prepared} that sandbox.lock pins instead of running the setup steps"
    ));
    let whole = ChosenImage {
        reference: prepared.clone(),
        tag: None,
        prepared: None,
    };
    let prepared_layers =
        image_choice::prepare_image(store, ownership.clone(), &whole, reporter)?.layers;
    if !prepared_layers.starts_with(&image.layers) {
        return Err(ProjectError::PreparedOffBase {
            prepared: pinned,
            base: image.reference.clone(),
        });
    }
    Ok(prepared_layers)
}

/// The project's sandbox.toml, unless --image names the image (then it is not read).
fn project_config(
    locations: &Locations,
    asked: &Asked,
    cwd: &Path,
) -> Result<Option<Project>, ProjectError> {
    if asked.image.is_some() {
        if asked.locked {
            return Err(ProjectError::refused(
                "--locked pins sandbox.toml's image, and --image names another",
                "drop one of them",
            ));
        }
        return Ok(None);
    }
    let file = files::locate(locations, cwd)?.ok_or_else(|| {
        ProjectError::refused(
            "no image to run: this directory has no sandbox.toml and no --image was given",
            "write a sandbox.toml with `sandbox init` (e.g. `sandbox init java@21`), or pass an image: `sandbox run --image docker.io/library/debian:bookworm -- bash`",
        )
    })?;
    let config = crate::config::project::load(&file)?;
    crate::config::trust::check(&config)?;
    Ok(Some(config))
}

/// What a command joining `running` asks for that the running sandbox does not have: another
/// image, changed files it was made from, flags that apply only when a sandbox starts.
fn join_differences(
    running: &state::ContainerState,
    image: &str,
    project: &ProjectInputs,
    start_only: &[&str],
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
    if !start_only.is_empty() {
        differences.push(format!(
            "{} take effect only when a sandbox starts",
            start_only.join(", ")
        ));
    }
    differences
}
