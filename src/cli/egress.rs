//! The allow-lists a project's commands and setup steps run with: sandbox.toml's `[network]
//! allow` and `setup_allow` (which defaults to `allow`), within the floor of the user's own
//! `[network] allow`. A project may narrow the floor freely; an entry beyond it (or a project
//! with no list of its own, which would be open) needs `sandbox trust`, as other host access.

use crate::cli::errors::CliError;
use crate::config::egress::AllowSetting;
use crate::config::project::Project;
use crate::runtime::egress::Policy;

fn policy(setting: &AllowSetting) -> Policy {
    Policy {
        allow: setting.list(),
        source: setting.source.clone(),
        log: None,
        host_loopback: false,
    }
}

/// The policies for commands and for setup steps (`None`: open).
pub fn policies(config: Option<&Project>) -> Result<(Option<Policy>, Option<Policy>), CliError> {
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
) -> Result<Option<Policy>, CliError> {
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
