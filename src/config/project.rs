//! `sandbox.toml`: one project's sandbox. Found in the current dir or its nearest ancestor (as
//! git finds .git), or named with `--config`.
//!
//! ```toml
//! setup = ["apt-get update && apt-get install -y --no-install-recommends maven"]
//! workdir = "."                # where commands start, inside the project
//!
//! [toolchain]
//! name = "java"                # a template in sandboxes/
//! version = "21"
//! # image = "docker.io/library/eclipse-temurin:21-jdk"   # or an image (with name: the
//! #                            template's caches, its env where the image leaves a variable
//! #                            unset; `version` ignored, the image decides it)
//!
//! [env]
//! MAVEN_OPTS = "-Xmx1g"
//! [caches]                     # name = path inside; shared by the toolchain's projects
//! maven = "~/.m2"
//! shared = false               # this project's own caches instead
//! [network]
//! mode = "relay"               # relay (default) | pasta | slirp4netns | none | host
//! ports = ["8080:8080"]
//! host_loopback = false
//! [limits]
//! memory = "2g"
//! cpus = 1.5
//! pids = 512
//! tmp = "1g"                   # /tmp and /dev/shm (default: half of memory)
//! required = false             # true: fail when a limit cannot be applied
//! [security]                   # container root (setup steps, --as-root) holds podman's set
//! cap_add = ["NET_ADMIN"]      # more: refused until `sandbox trust`
//! cap_drop = ["CHOWN"]
//! ```
//! `setup` may also sit inside `[toolchain]`, where a TOML file puts it when it follows that
//! header (as the design sketch writes it).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::config::diagnostic::{self, located, Located};
use crate::config::error::ConfigError;
use crate::config::templates;
pub use crate::settings::limits::Limits;
use crate::settings::network::parse_port;
use crate::settings::network::NetworkMode;
use crate::settings::network::PortMapping;

pub const FILE_NAME: &str = "sandbox.toml";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProject {
    toolchain: Option<Spanned<RawToolchain>>,
    setup: Option<Spanned<Vec<Spanned<crate::config::setup::RawStep>>>>,
    workdir: Option<Spanned<String>>,
    #[serde(default)]
    env: BTreeMap<Spanned<String>, String>,
    #[serde(default)]
    caches: BTreeMap<Spanned<String>, Spanned<RawCacheValue>>,
    network: Option<RawNetwork>,
    limits: Option<RawLimits>,
    security: Option<RawSecurity>,
    forward: Option<crate::config::forward::RawForward>,
}

/// A value in `[caches]`: a cache's path inside, or `shared = false`.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum RawCacheValue {
    Path(String),
    Flag(bool),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecurity {
    #[serde(default)]
    cap_add: Vec<Spanned<String>>,
    #[serde(default)]
    cap_drop: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToolchain {
    name: Option<Spanned<String>>,
    version: Option<Spanned<toml::Value>>,
    image: Option<Spanned<String>>,
    setup: Option<Spanned<Vec<Spanned<crate::config::setup::RawStep>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    mode: Option<Spanned<String>>,
    #[serde(default)]
    ports: Vec<Spanned<String>>,
    host_loopback: Option<Spanned<bool>>,
    allow: Option<Spanned<Vec<Spanned<String>>>>,
    setup_allow: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    memory: Option<Spanned<toml::Value>>,
    cpus: Option<Spanned<toml::Value>>,
    pids: Option<Spanned<toml::Value>>,
    tmp: Option<Spanned<toml::Value>>,
    required: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Toolchain {
    pub name: String,
    pub version: String,
    /// On the user's own image, which decides the version: `version` keys nothing.
    pub on_own_image: bool,
}

impl Toolchain {
    /// What the setup steps and the lock are keyed by: the template and the version it maps
    /// to an image, or the template alone on the user's own image.
    pub fn key(&self) -> String {
        if self.on_own_image {
            self.name.clone()
        } else {
            format!("{}@{}", self.name, self.version)
        }
    }
}

/// A persistent dir shared by the projects of one toolchain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cache {
    /// The group it belongs to (the toolchain's name, or `image` for projects naming an image).
    pub group: String,
    pub name: String,
    /// Where it is mounted inside: absolute, or `~/...` for the user's home.
    pub target: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct NetworkSettings {
    pub mode: Option<Located<NetworkMode>>,
    pub ports: Vec<Located<PortMapping>>,
    pub host_loopback: bool,
    /// `allow`: only these names are reachable (none: everything is).
    pub allow: Option<crate::config::egress::AllowSetting>,
    /// `setup_allow`: the same for setup steps (none: `allow`).
    pub setup_allow: Option<crate::config::egress::AllowSetting>,
}

/// `[security]`: changes to container root's capabilities.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SecuritySettings {
    pub cap_add: Vec<Located<caps::Capability>>,
    pub cap_drop: Vec<Located<caps::Capability>>,
}

/// A validated sandbox.toml, with its template applied.
#[derive(Clone, Debug)]
pub struct Project {
    pub file: PathBuf,
    pub dir: PathBuf,
    pub text: String,
    pub toolchain: Option<Toolchain>,
    /// The image reference (from the template, or `image =`).
    pub image: Located<String>,
    pub setup: Vec<crate::config::setup::SetupStep>,
    /// The template's env, then the project's.
    pub env: Vec<(String, String)>,
    /// A template's env on the user's own image (`image` beside `name`): set only where the
    /// image leaves it unset, since the image knows where its own tools are.
    pub env_defaults: Vec<(String, String)>,
    /// What the file asks for that is ignored, said when it is used (`version` beside
    /// `image`).
    pub notices: Vec<String>,
    /// The hosts of the template's package registries (`@toolchain`), when it has a template.
    pub toolchain_egress: Option<Vec<String>>,
    pub caches: Vec<Cache>,
    pub network: NetworkSettings,
    pub limits: Limits,
    pub security: SecuritySettings,
    /// Relative to the project dir.
    pub workdir: Option<PathBuf>,
    /// `[forward]`: the host's things it asks for (only after `sandbox trust`).
    pub forward: crate::config::forward::Forward,
    /// What in the file asks for access beyond the project (refused until `sandbox trust`).
    pub host_access: Vec<Located<String>>,
}

impl Project {
    /// An error pointing at `span` of this file.
    pub fn error_at(
        &self,
        span: Range<usize>,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> ConfigError {
        diagnostic::at(&self.file, &self.text, span, message, hint)
    }
}

/// The nearest `sandbox.toml` at or above `dir`.
pub fn find(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .map(|d| d.join(FILE_NAME))
        .find(|f| f.is_file())
}

/// Reads and validates `file`.
pub fn load(file: &Path) -> Result<Project, ConfigError> {
    let text = crate::config::files::read(file, crate::config::files::SMALL)?;
    crate::config::ownership::check(file)?;
    parse(file, text)
}

/// Validates the text of `file`.
pub fn parse(file: &Path, text: String) -> Result<Project, ConfigError> {
    let raw: RawProject =
        toml::from_str(&text).map_err(|e| diagnostic::from_toml(file, &text, &e))?;
    let error = |span: Range<usize>, message: String, hint: Option<String>| {
        diagnostic::at(file, &text, span, message, hint)
    };
    let dir = file
        .parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."));

    // The toolchain: a template and version, or an image.
    let Some(toolchain) = raw.toolchain else {
        return Err(error(
            0..0,
            "no [toolchain] table".into(),
            Some("add [toolchain] with `name` and `version` (a template), or `image = \"REF\"`; `sandbox init` writes one".into()),
        ));
    };
    let table_span = toolchain.span();
    let toolchain = toolchain.into_inner();
    let mut env = Vec::new();
    let mut env_defaults = Vec::new();
    let mut notices = Vec::new();
    let mut caches = Vec::new();
    let mut toolchain_egress = None;
    let (chosen, image) = match (&toolchain.name, &toolchain.image) {
        (None, Some(image)) => {
            check_reference(image, &error)?;
            if toolchain.version.is_some() {
                let version = toolchain.version.as_ref().map_or(0..0, Spanned::span);
                return Err(error(
                    version,
                    "`version` needs `name` (a template); with `image` the tag is the version"
                        .into(),
                    None,
                ));
            }
            (None, located(image))
        }
        (Some(name), own_image) => {
            let template = templates::find(name.get_ref())?.ok_or_else(|| {
                let names = templates::names();
                let hint = match diagnostic::nearest(name.get_ref(), &names) {
                    Some(best) => format!(
                        "did you mean `{best}`? The templates are: {}",
                        names.join(", ")
                    ),
                    None => format!(
                        "the templates are: {}; or name an image with `image = \"REF\"`",
                        names.join(", ")
                    ),
                };
                error(
                    name.span(),
                    format!("unknown toolchain `{}`", name.get_ref()),
                    Some(hint),
                )
            })?;
            // On the user's own image, the image decides the version: a `version` beside it
            // is ignored (said once the project is used), and the template's env only fills
            // what the image leaves unset.
            let (version, image) = match own_image {
                Some(image) => {
                    check_reference(image, &error)?;
                    if let Some(given) = &toolchain.version {
                        notices.push(format!(
                            "{}: `version = {}` is ignored: `image` decides the version",
                            file.display(),
                            given.get_ref()
                        ));
                    }
                    env_defaults.extend(template.env.clone());
                    (String::new(), located(image))
                }
                None => {
                    let version = version_text(&toolchain, &template, table_span.clone(), &error)?;
                    let Some(reference) = template.versions.get(&version.value) else {
                        return Err(error(
                            version.span,
                            format!("{} has no version `{}`", template.name, version.value),
                            Some(format!(
                                "the {} template has versions {}; or name any image with `image = \"REF\"`",
                                template.name,
                                template.versions_sorted().join(", ")
                            )),
                        ));
                    };
                    env.extend(template.env.clone());
                    let image = Located {
                        value: reference.clone(),
                        span: version.span,
                    };
                    (version.value, image)
                }
            };
            toolchain_egress = Some(template.egress.clone());
            caches.extend(template.caches.iter().map(|(n, t)| Cache {
                group: template.name.clone(),
                name: n.clone(),
                target: t.clone(),
            }));
            (
                Some(Toolchain {
                    name: template.name.clone(),
                    version,
                    on_own_image: own_image.is_some(),
                }),
                image,
            )
        }
        (None, None) => {
            return Err(error(
                table_span,
                "[toolchain] names neither a template (`name`, `version`) nor an `image`".into(),
                Some(format!(
                    "for example name = \"java\" and version = \"21\"; the templates are: {}",
                    templates::names().join(", ")
                )),
            ))
        }
    };

    let mut host_access = Vec::new();
    let setup = match (raw.setup, toolchain.setup) {
        (Some(_), Some(inner)) => {
            return Err(error(
                inner.span(),
                "`setup` is given twice: at the top and in [toolchain]".into(),
                Some("keep one list of steps".into()),
            ))
        }
        (Some(s), None) | (None, Some(s)) => {
            let home = dirs::home_dir().unwrap_or_else(|| PathBuf::from("/"));
            crate::config::setup::parse(s, &home, &error, &mut host_access)?
        }
        (None, None) => Vec::new(),
    };

    for (key, value) in raw.env {
        let name = key.get_ref();
        if name.is_empty() || name.contains(['=', '\0']) || name.contains(char::is_whitespace) {
            return Err(error(
                key.span(),
                format!("`{name}` is not a valid variable name"),
                Some("use letters, digits and underscores, e.g. MAVEN_OPTS".into()),
            ));
        }
        // The project's value replaces the template's, but for one that names its own key
        // (`PATH = "$PATH:~/tools"`), which extends it.
        if !(value.contains(&format!("${name}")) || value.contains(&format!("${{{name}}}"))) {
            env.retain(|(k, _)| k != name);
        }
        env.push((name.clone(), value));
    }

    // An image's project shares its caches with the other projects of the same image
    // (repository, any tag), not with every image's.
    let group = chosen
        .as_ref()
        .map_or_else(|| image_cache_group(&image.value), |t| t.name.clone());
    // `shared = false`: this project's caches are its own, not shared with the other
    // projects of its toolchain (a cache is writable from inside, so it is a channel to them).
    let mut shared = true;
    for (name, value) in raw.caches {
        let target = match value.get_ref() {
            RawCacheValue::Flag(flag) if name.get_ref() == "shared" => {
                shared = *flag;
                continue;
            }
            RawCacheValue::Flag(_) => {
                return Err(error(
                    value.span(),
                    format!("cache `{}` needs a path, not true or false", name.get_ref()),
                    Some("give the path inside, e.g. maven = \"~/.m2\"; only `shared` takes true or false".into()),
                ))
            }
            RawCacheValue::Path(path) => Spanned::new(value.span(), path.clone()),
        };
        check_cache(name.get_ref(), &target, &error)?;
        caches.retain(|c| &c.name != name.get_ref());
        caches.push(Cache {
            group: group.clone(),
            name: name.get_ref().clone(),
            target: target.get_ref().clone(),
        });
    }
    if !shared {
        let own = format!(
            "project-{}",
            &crate::image::Digest::of_bytes(dir.as_os_str().as_encoded_bytes()).hex()[..16]
        );
        for cache in &mut caches {
            cache.group = own.clone();
        }
    }

    let network = match raw.network {
        None => NetworkSettings::default(),
        Some(n) => {
            let mode = match &n.mode {
                None => None,
                Some(text) => {
                    let Some(mode) = NetworkMode::parse(text.get_ref()) else {
                        let names = NetworkMode::ALL.map(NetworkMode::name);
                        let hint = diagnostic::nearest(text.get_ref(), &names)
                            .map(|m| format!("did you mean `{m}`? "))
                            .unwrap_or_default();
                        return Err(error(
                            text.span(),
                            format!("unknown network mode `{}`", text.get_ref()),
                            Some(format!(
                                "{hint}the modes are relay, pasta, slirp4netns, none and host"
                            )),
                        ));
                    };
                    if mode == NetworkMode::Host {
                        host_access.push(Located {
                            value: "network.mode = \"host\" shares the host's network".into(),
                            span: text.span(),
                        });
                    }
                    Some(Located {
                        value: mode,
                        span: text.span(),
                    })
                }
            };
            if let Some(h) = &n.host_loopback {
                if *h.get_ref() {
                    host_access.push(Located {
                        value: "network.host_loopback lets the sandbox reach the host's loopback services".into(),
                        span: h.span(),
                    });
                }
            }
            let mut ports = Vec::new();
            for port in &n.ports {
                let mapping = parse_port(port.get_ref()).map_err(|e| {
                    error(
                        port.span(),
                        format!("bad port {e}"),
                        Some("for example \"8080:80\" or \"127.0.0.1:5353:53/udp\"".into()),
                    )
                })?;
                if !mapping.host_ip.is_loopback() {
                    host_access.push(Located {
                        value: format!(
                            "port `{}` is published on {}, beyond this machine",
                            port.get_ref(),
                            mapping.host_ip
                        ),
                        span: port.span(),
                    });
                }
                ports.push(Located {
                    value: mapping,
                    span: port.span(),
                });
            }
            let file_name = file
                .file_name()
                .map_or("sandbox.toml".into(), |n| n.to_string_lossy().into_owned());
            let list = |key: &str, entries: &Option<Spanned<Vec<Spanned<String>>>>| {
                entries
                    .as_ref()
                    .map(|entries| {
                        let line = crate::config::egress::line_of(&text, entries.span().start);
                        crate::config::egress::parse(
                            key,
                            entries,
                            toolchain_egress.as_deref(),
                            format!("[network].{key} in {file_name}:{line}"),
                            &error,
                        )
                    })
                    .transpose()
            };
            NetworkSettings {
                mode,
                ports,
                host_loopback: n.host_loopback.is_some_and(|h| h.into_inner()),
                allow: list("allow", &n.allow)?,
                setup_allow: list("setup_allow", &n.setup_allow)?,
            }
        }
    };

    let mut security = SecuritySettings::default();
    if let Some(raw_security) = raw.security {
        let parse_all = |names: &[Spanned<String>]| {
            let mut parsed = Vec::new();
            for name in names {
                let caps = crate::settings::capabilities::parse(name.get_ref()).map_err(|e| {
                    error(
                        name.span(),
                        e,
                        Some("capabilities are named as in podman, e.g. \"NET_ADMIN\" or \"SYS_PTRACE\"".into()),
                    )
                })?;
                parsed.extend(caps.into_iter().map(|value| Located {
                    value,
                    span: name.span(),
                }));
            }
            Ok::<_, ConfigError>(parsed)
        };
        security.cap_add = parse_all(&raw_security.cap_add)?;
        security.cap_drop = parse_all(&raw_security.cap_drop)?;
        for name in &raw_security.cap_add {
            host_access.push(Located {
                value: format!(
                    "security.cap_add gives container root {} beyond podman's default set",
                    name.get_ref()
                ),
                span: name.span(),
            });
        }
    }

    let forward = match raw.forward {
        None => crate::config::forward::Forward::default(),
        Some(raw_forward) => {
            let (forward, asks) = raw_forward.into_forward(&error)?;
            host_access.extend(
                asks.into_iter()
                    .map(|(value, span)| Located { value, span }),
            );
            forward
        }
    };

    let limits = match raw.limits {
        None => Limits::default(),
        Some(l) => Limits {
            memory: l.memory.map(|m| size(&m, "memory", &error)).transpose()?,
            cpus: l.cpus.map(|c| cpus(&c, &error)).transpose()?,
            pids: l.pids.map(|p| pids(&p, &error)).transpose()?,
            tmp: l.tmp.map(|t| size(&t, "tmp", &error)).transpose()?,
            required: l.required.unwrap_or(false),
        },
    };

    let workdir = match raw.workdir {
        None => None,
        Some(w) => {
            let path = PathBuf::from(w.get_ref());
            let inside = path
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
            if !inside {
                return Err(error(
                    w.span(),
                    format!("workdir `{}` is not inside the project", w.get_ref()),
                    Some("give a path relative to the project dir, without `..`, e.g. workdir = \"app\"".into()),
                ));
            }
            Some(path)
        }
    };

    Ok(Project {
        toolchain_egress,
        file: file.to_owned(),
        dir,
        text,
        toolchain: chosen,
        image,
        setup,
        env,
        env_defaults,
        notices,
        caches,
        network,
        limits,
        security,
        workdir,
        forward,
        host_access,
    })
}

type ErrorAt<'a> = dyn Fn(Range<usize>, String, Option<String>) -> ConfigError + 'a;

fn check_reference(image: &Spanned<String>, error: &ErrorAt<'_>) -> Result<(), ConfigError> {
    crate::image::Reference::parse(image.get_ref()).map(|_| ()).map_err(|e| {
        error(
            image.span(),
            format!("`{}` is not an image reference: {e}", image.get_ref()),
            Some("for example `docker.io/library/eclipse-temurin:21-jdk` or `registry.example:5000/team/app@sha256:...`".into()),
        )
    })
}

/// The cache group of a project naming an image: `image-` and its repository, made a single
/// safe path component (`image-docker.io_library_node`).
pub fn image_cache_group(reference: &str) -> String {
    let repository = crate::image::Reference::parse(reference)
        .map(|r| r.name())
        .unwrap_or_else(|_| reference.to_owned());
    let safe: String = repository
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("image-{}", safe.trim_start_matches('.'))
}

/// `version = "17"` (an integer is taken too; a float is refused: 3.10 would read as 3.1).
fn version_text(
    toolchain: &RawToolchain,
    template: &templates::Template,
    table: Range<usize>,
    error: &ErrorAt<'_>,
) -> Result<Located<String>, ConfigError> {
    let Some(version) = &toolchain.version else {
        return Err(error(
            table,
            format!("[toolchain] names `{}` but no `version`", template.name),
            Some(format!(
                "add version = \"{}\"; the {} template has {}",
                template.default,
                template.name,
                template.versions_sorted().join(", ")
            )),
        ));
    };
    let text = match version.get_ref() {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        other => {
            return Err(error(
                version.span(),
                format!("version must be a string, not {}", other.type_str()),
                Some(format!("quote it: version = \"{other}\"")),
            ))
        }
    };
    Ok(Located {
        value: text,
        span: version.span(),
    })
}

fn check_cache(
    name: &str,
    target: &Spanned<String>,
    error: &ErrorAt<'_>,
) -> Result<(), ConfigError> {
    let path = target.get_ref();
    let relative = path
        .strip_prefix("~/")
        .unwrap_or(path.trim_start_matches('/'));
    let clean = Path::new(relative)
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !name.starts_with('.');
    if !valid_name {
        return Err(error(
            target.span(),
            format!("cache name `{name}` may only use letters, digits, `-`, `_` and `.`"),
            None,
        ));
    }
    if !(path.starts_with("~/") || path.starts_with('/')) || !clean || relative.is_empty() {
        return Err(error(
            target.span(),
            format!("cache `{name}`: `{path}` is not a path inside the sandbox"),
            Some("give an absolute path or one under your home, e.g. maven = \"~/.m2\"".into()),
        ));
    }
    Ok(())
}

/// `memory = "2g"`: bytes, with an optional k, m, g or t (powers of 1024).
fn size(value: &Spanned<toml::Value>, what: &str, error: &ErrorAt<'_>) -> Result<u64, ConfigError> {
    let hint = Some(
        "write a size such as \"512m\", \"2g\" or \"1.5g\" (k, m, g, t are powers of 1024)".into(),
    );
    match value.get_ref() {
        toml::Value::String(s) => {
            parse_size(s, what).map_err(|message| error(value.span(), message, hint))
        }
        toml::Value::Integer(i) if *i >= 4 << 20 => Ok(*i as u64),
        other => Err(error(
            value.span(),
            format!("{what} must be a size like \"2g\", not {other}"),
            hint,
        )),
    }
}

/// A size such as `512m`, `2g`, `1.5GiB` or a number of bytes: at least 4 MiB.
pub fn parse_size(text: &str, what: &str) -> Result<u64, String> {
    let text = text.trim().to_lowercase();
    let trimmed = text.trim_end_matches("ib").trim_end_matches('b');
    let (number, unit) = match trimmed.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&trimmed[..i], Some(c)),
        _ => (trimmed, None),
    };
    let factor: u64 = match unit {
        None => 1,
        Some('k') => 1 << 10,
        Some('m') => 1 << 20,
        Some('g') => 1 << 30,
        Some('t') => 1 << 40,
        Some(other) => return Err(format!("{what} `{text}`: unknown unit `{other}`")),
    };
    let amount: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{what} `{text}` is not a size"))?;
    let bytes = amount * factor as f64;
    if !(bytes.is_finite() && bytes >= (4u64 << 20) as f64 && bytes < u64::MAX as f64) {
        return Err(format!("{what} `{text}` is out of range (at least 4m)"));
    }
    Ok(bytes as u64)
}

fn cpus(value: &Spanned<toml::Value>, error: &ErrorAt<'_>) -> Result<f64, ConfigError> {
    let number = match value.get_ref() {
        toml::Value::Float(f) => *f,
        toml::Value::Integer(i) => *i as f64,
        _ => f64::NAN,
    };
    if !(number > 0.0 && number <= 1024.0) {
        return Err(error(
            value.span(),
            format!(
                "cpus must be a number of CPUs above 0, such as 1.5, not {}",
                value.get_ref()
            ),
            None,
        ));
    }
    Ok(number)
}

fn pids(value: &Spanned<toml::Value>, error: &ErrorAt<'_>) -> Result<u64, ConfigError> {
    match value.get_ref() {
        toml::Value::Integer(i) if (1..=4_194_304).contains(i) => Ok(*i as u64),
        other => Err(error(
            value.span(),
            format!("pids must be a whole number from 1 to 4194304, not {other}"),
            None,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<Project, ConfigError> {
        parse(Path::new("/work/app/sandbox.toml"), text.to_owned())
    }

    /// Every way sandbox.toml is refused: where (line and column, as the editor shows them),
    /// what, and the hint (`""`: none).
    #[test]
    fn each_refusal_names_its_line_column_and_fix() {
        const JAVA: &str = "[toolchain]\nname = \"java\"\nversion = \"21\"\n";
        let java = |rest: &str| format!("{JAVA}{rest}");
        let cases: Vec<(String, usize, usize, &str, &str)> = vec![
            (
                "".into(),
                1,
                1,
                "no [toolchain] table",
                "`sandbox init` writes one",
            ),
            (
                "[toolchain]\nimage = \"r.example/jdk:21\"\nversion = \"21\"\n".into(),
                3,
                11,
                "`version` needs `name`",
                "",
            ),
            (
                "[toolchain]\n".into(),
                1,
                1,
                "names neither a template",
                "the templates are",
            ),
            (
                "[toolchain]\nname = \"java\"\n".into(),
                1,
                1,
                "[toolchain] names `java` but no `version`",
                "add version = ",
            ),
            (
                "[toolchain]\nname = \"java\"\nversion = true\n".into(),
                3,
                11,
                "version must be a string, not boolean",
                "quote it: version = \"true\"",
            ),
            (
                "[toolchain]\nname = \"java\"\nversion = \"99\"\n".into(),
                3,
                11,
                "99",
                "image = ",
            ),
            (
                format!("setup = [\"a\"]\n{JAVA}setup = [\"b\"]\n"),
                5,
                9,
                "`setup` is given twice",
                "keep one list of steps",
            ),
            (
                java("[env]\n\"A=B\" = \"v\"\n"),
                5,
                1,
                "`A=B` is not a valid variable name",
                "letters, digits and underscores",
            ),
            (
                java("[caches]\nmaven = true\n"),
                5,
                9,
                "cache `maven` needs a path",
                "only `shared` takes true or false",
            ),
            (
                java("[caches]\n\"a b\" = \"~/.x\"\n"),
                5,
                9,
                "cache name `a b` may only use",
                "",
            ),
            (
                java("[caches]\nx = \"rel/path\"\n"),
                5,
                5,
                "`rel/path` is not a path inside the sandbox",
                "under your home",
            ),
            (
                java("[caches]\nx = \"~/../etc\"\n"),
                5,
                5,
                "is not a path inside the sandbox",
                "under your home",
            ),
            (
                java("[network]\nmode = \"bridge\"\n"),
                5,
                8,
                "unknown network mode `bridge`",
                "the modes are relay",
            ),
            (
                format!("workdir = \"../x\"\n{JAVA}"),
                1,
                11,
                "workdir `../x` is not inside the project",
                "without `..`",
            ),
            (
                java("[limits]\nmemory = true\n"),
                5,
                10,
                "memory must be a size like \"2g\"",
                "powers of 1024",
            ),
            (
                java("[limits]\nmemory = \"2q\"\n"),
                5,
                10,
                "unknown unit `q`",
                "powers of 1024",
            ),
            (
                java("[limits]\ncpus = 0\n"),
                5,
                8,
                "cpus must be a number of CPUs above 0",
                "",
            ),
            (
                java("[limits]\npids = 0\n"),
                5,
                8,
                "pids must be a whole number from 1 to 4194304",
                "",
            ),
            (
                "[toolchain]\nnam = \"java\"\n".into(),
                2,
                1,
                "unknown field `nam`",
                "`name`",
            ),
            ("[toolchain\n".into(), 1, 11, "", ""),
        ];
        for (text, line, column, message, hint) in cases {
            let Err(ConfigError::Invalid {
                line: l,
                column: c,
                message: m,
                hint: h,
                ..
            }) = parsed(&text)
            else {
                panic!("not refused as invalid: {text:?}");
            };
            assert_eq!((l, c), (line, column), "where, for {text:?}: {m}");
            assert!(m.contains(message), "{m:?} lacks {message:?}, for {text:?}");
            match h {
                Some(h) => assert!(
                    !hint.is_empty() && h.contains(hint),
                    "hint {h:?} lacks {hint:?}, for {text:?}"
                ),
                None => assert!(
                    hint.is_empty() || message.is_empty(),
                    "no hint, for {text:?}"
                ),
            }
        }
    }

    #[test]
    fn a_template_on_the_users_own_image_has_the_templates_env_and_caches() {
        let project = parsed(
            "[toolchain]\nname = \"java\"\nversion = \"21\"\nimage = \"registry.example/team/jdk:21\"\n",
        )
        .unwrap();
        assert_eq!(project.image.value, "registry.example/team/jdk:21");
        // The image decides the version: the one given is ignored, and said to be.
        assert_eq!(
            project.toolchain,
            Some(Toolchain {
                name: "java".into(),
                version: String::new(),
                on_own_image: true,
            })
        );
        assert_eq!(
            project.toolchain.as_ref().map(Toolchain::key).as_deref(),
            Some("java")
        );
        assert!(
            project
                .notices
                .iter()
                .any(|n| n.contains("`version = \"21\"` is ignored: `image` decides the version")),
            "{:?}",
            project.notices
        );
        // Its env fills only what the image leaves unset; the caches are the template's.
        assert!(
            project.env.iter().all(|(k, _)| k != "JAVA_HOME"),
            "{:?}",
            project.env
        );
        assert!(!project.env_defaults.is_empty());
        assert!(project
            .caches
            .iter()
            .any(|c| c.group == "java" && c.target == "~/.m2"));
        // Without a version too: nothing is missing.
        let project =
            parsed("[toolchain]\nname = \"java\"\nimage = \"registry.example/team/jdk:21\"\n")
                .unwrap();
        assert!(project.notices.is_empty());
        // The template's own image: its version keys the setup steps, its env is set.
        let project = parsed("[toolchain]\nname = \"java\"\nversion = \"21\"\n").unwrap();
        assert_eq!(
            project.toolchain.as_ref().map(Toolchain::key).as_deref(),
            Some("java@21")
        );
        assert!(project.env_defaults.is_empty());
    }

    #[test]
    fn an_images_caches_are_named_after_its_repository() {
        let project =
            parsed("[toolchain]\nimage = \"node:22\"\n[caches]\nnpm = \"~/.npm\"\n").unwrap();
        assert_eq!(project.caches[0].group, "image-docker.io_library_node");
        assert_eq!(
            image_cache_group("127.0.0.1:5000/team/app:1"),
            "image-127.0.0.1_5000_team_app"
        );
        assert!(!image_cache_group("../../x").contains('/'));
    }

    #[test]
    fn too_many_setup_steps_are_refused_where_they_stand() {
        let steps = vec!["\"true\""; super::super::setup::MAX_STEPS + 1].join(", ");
        let err = parsed(&format!(
            "setup = [{steps}]\n[toolchain]\nimage = \"busybox\"\n"
        ))
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.contains("201 setup steps") && err.contains(":1:9"),
            "{err}"
        );
    }
}
