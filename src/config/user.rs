//! The user-wide config, `$XDG_CONFIG_HOME/sandbox/config.toml`, and containers' registries.conf
//! files (the user's, else the system's), which are honoured so a podman user's mirrors just work.
//!
//! ```toml
//! safe_directories = ["/srv/shared/app"]   # sandbox.toml there may be another user's
//! [cgroups]                                # delegated cgroup v1 dirs, for [limits]
//! v1 = "/sys/fs/cgroup/{controller}/sandbox/alice"
//! [tls]
//! host_cas = true            # trust the host's own CAs inside (default: when it has some)
//! ca_files = ["~/corp-ca.crt"]                # and these
//! [proxy]
//! pass = true                # the host's http_proxy, https_proxy, no_proxy go inside
//! [forward]                  # off unless asked for
//! ssh_agent = true
//! gitconfig = true
//! paths = ["~/.npmrc"]
//! [[registry]]
//! prefix = "docker.io"
//! [[registry.mirror]]
//! location = "mirror.example:5000"
//! insecure = false
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::error::ConfigError;
use crate::image::registry::hosts::{MirrorRule, RegistryConfig, RegistryRule};
use crate::settings::limits::Controller;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct OwnFile {
    #[serde(default)]
    registry: Vec<OwnRegistry>,
    /// Directories whose sandbox.toml may belong to another user (`*`: any).
    #[serde(default)]
    safe_directories: Vec<PathBuf>,
    cgroups: Option<OwnCgroups>,
    tls: Option<OwnTls>,
    proxy: Option<OwnProxy>,
    forward: Option<crate::config::forward::RawForward>,
    network: Option<OwnNetwork>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnNetwork {
    allow: Option<toml::Spanned<Vec<toml::Spanned<String>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnTls {
    host_cas: Option<bool>,
    #[serde(default)]
    ca_files: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnProxy {
    pass: Option<bool>,
}

/// `[tls]`: which CAs of the host's the sandbox trusts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// `host_cas`; unset: on when the host trusts CAs beyond its distribution's bundle.
    pub host_cas: Option<bool>,
    /// More CA files (`~/` is the home).
    pub ca_files: Vec<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnCgroups {
    v1: Option<CgroupsV1>,
}

/// `v1 = "/sys/fs/cgroup/{controller}/sandbox/alice"`, or a table with a dir per controller
/// (when the delegated dirs do not share one path).
#[derive(Deserialize)]
#[serde(untagged)]
enum CgroupsV1 {
    Template(String),
    PerController(std::collections::BTreeMap<String, PathBuf>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnRegistry {
    prefix: String,
    location: Option<String>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
    #[serde(default)]
    mirror: Vec<OwnMirror>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnMirror {
    location: String,
    #[serde(default)]
    insecure: bool,
}

/// containers-registries.conf(5) v2: the same shape, unknown keys ignored.
#[derive(Deserialize, Default)]
struct ContainersFile {
    #[serde(default)]
    registry: Vec<ContainersRegistry>,
}

#[derive(Deserialize)]
struct ContainersRegistry {
    prefix: Option<String>,
    location: Option<String>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
    #[serde(default)]
    mirror: Vec<ContainersMirror>,
}

#[derive(Deserialize)]
struct ContainersMirror {
    location: String,
    #[serde(default)]
    insecure: bool,
}

/// What was loaded, and complaints about files we chose to skip.
pub struct UserConfig {
    pub registries: RegistryConfig,
    pub warnings: Vec<String>,
}

/// The default path of sandbox's own user config; `None` when neither XDG_CONFIG_HOME nor
/// HOME is set (then there is none to read, rather than one relative to the current dir).
pub fn own_config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("sandbox/config.toml"))
}

/// Whether the user's own config reads (for `doctor`): every command reads it first.
pub fn check() -> Result<(), ConfigError> {
    own_file().map(|_| ())
}

/// Loads sandbox's own config (errors are fatal) and containers' files (errors become warnings).
pub fn load() -> Result<UserConfig, ConfigError> {
    let mut rules = Vec::new();
    let own = match own_config_path() {
        Some(path) => read_optional(&path)?.map(|text| (path, text)),
        None => None,
    };
    if let Some((own_path, text)) = own {
        let file: OwnFile = toml::from_str(&text)
            .map_err(|e| crate::config::diagnostic::from_toml(&own_path, &text, &e))?;
        rules.extend(file.registry.into_iter().map(|r| {
            RegistryRule {
                prefix: r.prefix,
                location: r.location,
                insecure: r.insecure,
                blocked: r.blocked,
                mirrors: r
                    .mirror
                    .into_iter()
                    .map(|m| MirrorRule {
                        location: m.location,
                        insecure: m.insecure,
                    })
                    .collect(),
            }
        }));
    }
    let mut warnings = Vec::new();
    let user_file = dirs::config_dir().map(|d| d.join("containers/registries.conf"));
    let containers_path = match user_file {
        Some(p) if p.exists() => p,
        _ => PathBuf::from("/etc/containers/registries.conf"),
    };
    match read_containers(&containers_path) {
        Ok(more) => rules.extend(more.into_iter().filter(|r| !r.prefix.is_empty())),
        Err(e) => warnings.push(format!("ignoring {}: {e}", containers_path.display())),
    }
    Ok(UserConfig {
        registries: RegistryConfig { rules },
        warnings,
    })
}

fn read_optional(path: &Path) -> Result<Option<String>, ConfigError> {
    crate::config::files::read_optional(path, crate::config::files::SMALL)
}

/// The user's own config file, parsed, and its path; `None` when there is none.
fn own_file() -> Result<Option<(PathBuf, OwnFile)>, ConfigError> {
    let Some(path) = own_config_path() else {
        return Ok(None);
    };
    let Some(text) = read_optional(&path)? else {
        return Ok(None);
    };
    let file: OwnFile = toml::from_str(&text)
        .map_err(|e| crate::config::diagnostic::from_toml(&path, &text, &e))?;
    Ok(Some((path, file)))
}

/// The delegated cgroup v1 dirs `[cgroups] v1` names, per controller.
pub fn cgroups_v1() -> Result<Vec<(Controller, PathBuf)>, ConfigError> {
    let Some((path, file)) = own_file()? else {
        return Ok(Vec::new());
    };
    let Some(v1) = file.cgroups.and_then(|c| c.v1) else {
        return Ok(Vec::new());
    };
    match v1 {
        CgroupsV1::Template(template) => Ok(Controller::ALL
            .iter()
            .map(|c| (*c, PathBuf::from(template.replace("{controller}", c.name()))))
            .collect()),
        CgroupsV1::PerController(dirs) => dirs
            .into_iter()
            .map(|(name, dir)| {
                Controller::ALL
                    .iter()
                    .find(|c| c.name() == name)
                    .map(|c| (*c, dir))
                    .ok_or_else(|| ConfigError::Other {
                        message: format!(
                            "{}: [cgroups] v1 names `{name}`, which is not a controller sandbox uses",
                            path.display()
                        ),
                        hint: Some("the controllers are memory, pids, cpu, cpuacct and blkio".into()),
                    })
            })
            .collect(),
    }
}

/// `[tls]` of the user's own config.
pub fn tls() -> Result<TlsSettings, ConfigError> {
    let Some((_, file)) = own_file()? else {
        return Ok(TlsSettings::default());
    };
    let Some(tls) = file.tls else {
        return Ok(TlsSettings::default());
    };
    let home = dirs::home_dir().unwrap_or_default();
    Ok(TlsSettings {
        host_cas: tls.host_cas,
        ca_files: tls
            .ca_files
            .iter()
            .map(|f| match f.strip_prefix("~/") {
                Some(rest) => home.join(rest),
                None => PathBuf::from(f),
            })
            .collect(),
    })
}

/// `[proxy] pass`: whether the host's proxy variables go inside (default: yes, as podman).
pub fn pass_proxy() -> Result<bool, ConfigError> {
    Ok(own_file()?
        .and_then(|(_, file)| file.proxy)
        .and_then(|p| p.pass)
        .unwrap_or(true))
}

/// `[forward]` of the user's own config.
pub fn forward() -> Result<crate::config::forward::Forward, ConfigError> {
    let Some((path, file)) = own_file()? else {
        return Ok(Default::default());
    };
    let Some(raw) = file.forward else {
        return Ok(Default::default());
    };
    let error =
        |_: std::ops::Range<usize>, message: String, hint: Option<String>| ConfigError::Other {
            message: format!("{}: {message}", path.display()),
            hint,
        };
    Ok(raw.into_forward(&error)?.0)
}

/// `[network] allow` of the user's own config: the floor every project's list stays within
/// (`toolchain`: the project template's registries, for `@toolchain`).
pub fn egress_floor(
    toolchain: Option<&[String]>,
) -> Result<Option<crate::config::egress::AllowSetting>, ConfigError> {
    let Some((path, file)) = own_file()? else {
        return Ok(None);
    };
    let Some(entries) = file.network.and_then(|n| n.allow) else {
        return Ok(None);
    };
    let error =
        |_: std::ops::Range<usize>, message: String, hint: Option<String>| ConfigError::Other {
            message: format!("{}: {message}", path.display()),
            hint,
        };
    // Without a template, `@toolchain` in the floor stands for nothing.
    let none: &[String] = &[];
    crate::config::egress::parse(
        "allow",
        &entries,
        Some(toolchain.unwrap_or(none)),
        format!("[network].allow in {}", path.display()),
        &error,
    )
    .map(Some)
}

/// `safe_directories` of the user's own config.
pub fn safe_directories() -> Result<Vec<PathBuf>, ConfigError> {
    Ok(own_file()?
        .map(|(_, file)| file.safe_directories)
        .unwrap_or_default())
}

fn read_containers(path: &Path) -> Result<Vec<RegistryRule>, String> {
    let Some(text) = read_optional(path).map_err(|e| e.to_string())? else {
        return Ok(Vec::new());
    };
    let file: ContainersFile = toml::from_str(&text).map_err(|e| e.to_string())?;
    Ok(file
        .registry
        .into_iter()
        .map(|r| RegistryRule {
            prefix: r.prefix.or_else(|| r.location.clone()).unwrap_or_default(),
            location: r.location,
            insecure: r.insecure,
            blocked: r.blocked,
            mirrors: r
                .mirror
                .into_iter()
                .map(|m| MirrorRule {
                    location: m.location,
                    insecure: m.insecure,
                })
                .collect(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_file_is_strict_and_points_at_the_typo() {
        let err = toml::from_str::<OwnFile>("[[registry]]\nprefix = \"docker.io\"\nmirors = []\n")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("mirors"), "{err}");
    }

    #[test]
    fn containers_file_ignores_keys_we_do_not_use() {
        let text = "unqualified-search-registries = [\"docker.io\"]\n[[registry]]\nlocation = \"quay.io\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"m:5000\"\n";
        let file: ContainersFile = toml::from_str(text).unwrap();
        assert_eq!(file.registry[0].mirror[0].location, "m:5000");
    }
}
