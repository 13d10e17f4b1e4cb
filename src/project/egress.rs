//! The allow-lists a project's commands and setup steps run with: sandbox.toml's `[network]
//! allow` and `setup_allow` (which defaults to `allow`), within the floor of the user's own
//! `[network] allow`. A project may narrow the floor freely; an entry beyond it (or a project
//! with no list of its own, which would be open) needs `sandbox trust`, as other host access.

use crate::config::egress::AllowSetting;
use crate::config::project::Project;
use crate::project::error::ProjectError;
use crate::runtime::net::egress::Policy;

fn policy(setting: &AllowSetting) -> Policy {
    Policy {
        allow: setting.list(),
        source: setting.source.clone(),
        log: None,
        host_loopback: false,
    }
}

/// The policies for commands and for setup steps (`None`: open).
pub fn policies(
    config: Option<&Project>,
) -> Result<(Option<Policy>, Option<Policy>), ProjectError> {
    let floor =
        crate::config::user::egress_floor(config.and_then(|c| c.toolchain_egress.as_deref()))?;
    let Some(config) = config else {
        let floor = floor.as_ref().map(policy);
        return Ok((floor.clone(), floor));
    };
    let own = config.network.allow.as_ref();
    let setup = config.network.setup_allow.as_ref().or(own);
    Ok((
        effective(config, own, floor.as_ref())?,
        effective(config, setup, floor.as_ref())?,
    ))
}

fn effective(
    config: &Project,
    own: Option<&AllowSetting>,
    floor: Option<&AllowSetting>,
) -> Result<Option<Policy>, ProjectError> {
    let (own, floor) = match (own, floor) {
        (None, floor) => return Ok(floor.map(policy)),
        (Some(own), None) => return Ok(Some(policy(own))),
        (Some(own), Some(floor)) => (own, floor),
    };
    let beyond = own
        .rules
        .iter()
        .find(|r| !floor.rules.iter().any(|f| f.value.covers(&r.value)));
    if let Some(entry) = beyond {
        if !crate::config::trust::is_trusted(config) {
            return Err(config
                .error_at(
                    entry.span.clone(),
                    format!(
                        "`{}` is beyond your own {}",
                        entry.value, floor.source
                    ),
                    Some(format!(
                        "add it to your list, or, if this project may reach it, run `sandbox trust` in {}",
                        config.dir.display()
                    )),
                )
                .into());
        }
    }
    Ok(Some(policy(own)))
}

/// Where package managers name their mirrors, beneath an image's root.
const SOURCES: [&str; 2] = ["etc/apt/sources.list", "etc/apk/repositories"];
const SOURCES_DIR: &str = "etc/apt/sources.list.d";
/// The most of one sources file read.
const SOURCES_MAX: u64 = 64 * 1024;

/// The mirrors the base image's own apt and apk sources name (its layers, not setup's: a step
/// must not widen the list by editing them).
fn image_mirrors(layers: &[std::path::PathBuf]) -> Vec<crate::settings::allow_list::Rule> {
    let mut texts: Vec<String> = SOURCES
        .iter()
        .filter_map(|rel| crate::image::layer_lookup::read_in_layers(layers, rel, SOURCES_MAX))
        .collect();
    let mut names = std::collections::BTreeSet::new();
    for layer in layers {
        use std::os::fd::AsRawFd as _;
        // The dir itself beneath the layer too: a link there would list another's names.
        let Ok(dir) = crate::fsutil::tree::open_beneath(layer, std::path::Path::new(SOURCES_DIR))
        else {
            continue;
        };
        if let Ok(entries) = fs_err::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd())) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with(".list") || name.ends_with(".sources") {
                    names.insert(name);
                }
            }
        }
    }
    // Each as the merged image has it: one a higher layer deleted is not read.
    for name in names {
        texts.extend(crate::image::layer_lookup::read_in_layers(
            layers,
            &format!("{SOURCES_DIR}/{name}"),
            SOURCES_MAX,
        ));
    }
    let mut rules = Vec::new();
    for text in texts {
        for rule in crate::config::egress::mirrors_in(&text) {
            if !rules.contains(&rule) {
                rules.push(rule);
            }
        }
    }
    rules
}

/// `project` with the base image's mirrors added to each list that names a distribution
/// preset (`@debian`), within the user's floor (a mirror beyond it is left out and said).
pub fn with_image_mirrors(
    project: &crate::runtime::plan::ProjectInputs,
    config: Option<&Project>,
    layers: &[std::path::PathBuf],
    progress: &dyn crate::project::reporter::ProjectReporter,
) -> Result<crate::runtime::plan::ProjectInputs, ProjectError> {
    let mut enriched = project.clone();
    let Some(config) = config else {
        return Ok(enriched);
    };
    let own = config.network.allow.as_ref();
    let setup = config.network.setup_allow.as_ref().or(own);
    let names_preset = |s: Option<&AllowSetting>| s.is_some_and(|s| !s.distributions.is_empty());
    if !names_preset(own) && !names_preset(setup) {
        return Ok(enriched);
    }
    let floor = crate::config::user::egress_floor(config.toolchain_egress.as_deref())?;
    let mirrors: Vec<_> = image_mirrors(layers)
        .into_iter()
        .filter(|rule| {
            let within = floor
                .as_ref()
                .is_none_or(|f| f.rules.iter().any(|r| r.value.covers(rule)));
            if !within {
                crate::image::reporter::PullReporter::notice(
                    progress,
                    &format!(
                        "the image's package mirror {rule} is beyond your own {}; not allowed",
                        floor.as_ref().map_or("", |f| f.source.as_str())
                    ),
                );
            }
            within
        })
        .collect();
    for (setting, policy) in [
        (own, &mut enriched.egress),
        (setup, &mut enriched.setup_egress),
    ] {
        if let (true, Some(policy)) = (names_preset(setting), policy.as_mut()) {
            for rule in &mirrors {
                if !policy.allow.rules.contains(rule) {
                    policy.allow.rules.push(rule.clone());
                }
            }
        }
    }
    Ok(enriched)
}
