//! `setup` steps in sandbox.toml: a command (a string, or `{ run = "...", secrets = [...] }`)
//! or a copy of project files into the image (`{ copy = "ci/ca.crt", to = "/usr/local/..." }`).
//!
//! ```toml
//! setup = [
//!   "apt-get update && apt-get install -y --no-install-recommends maven",
//!   { copy = "ci/corp-ca.crt", to = "/usr/local/share/ca-certificates/corp.crt" },
//!   { run = "npm ci", secrets = ["NPM_TOKEN", { name = "PIP_TOKEN", file = "~/.pip-token" }] },
//! ]
//! ```
//! A secret comes from the user's environment (or the file named) into that step's
//! environment only. A project file naming one is asking for something of the host's, so it
//! counts as host access (refused until `sandbox trust`).

use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::config::error::ConfigError;

/// One setup step as the TOML has it: a string or a table. Not `#[serde(untagged)]`, which
/// buffers the value and loses the spans errors point with.
pub(super) enum RawStep {
    Command(String),
    Table(RawStepTable),
}

impl<'de> Deserialize<'de> for RawStep {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StepVisitor;
        impl<'de> serde::de::Visitor<'de> for StepVisitor {
            type Value = RawStep;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a command (a string) or a table with `run`, or `copy` and `to`")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<RawStep, E> {
                Ok(RawStep::Command(text.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawStep, A::Error> {
                RawStepTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(RawStep::Table)
            }
        }
        deserializer.deserialize_any(StepVisitor)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStepTable {
    run: Option<Spanned<String>>,
    copy: Option<Spanned<String>>,
    to: Option<Spanned<String>>,
    secrets: Option<Vec<Spanned<RawSecret>>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawSecret {
    Name(String),
    Table { name: String, file: String },
}

/// A secret a step's command gets as the variable `name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secret {
    pub name: String,
    /// Read from this file (`~/` is the home); else from the user's variable `name`.
    pub file: Option<PathBuf>,
}

/// A validated setup step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetupStep {
    /// A shell command run as root.
    Run {
        command: String,
        secrets: Vec<Secret>,
    },
    /// Project files (`from`, relative to the project dir) put at `to` in the image, owned by
    /// root, modes kept.
    Copy { from: PathBuf, to: String },
}

impl SetupStep {
    /// The step in one line: the command itself (as sandbox.lock has always recorded it), with
    /// the secrets' names; `copy FROM to TO`.
    pub fn describe(&self) -> String {
        match self {
            SetupStep::Run { command, secrets } if secrets.is_empty() => command.clone(),
            SetupStep::Run { command, secrets } => {
                let names: Vec<&str> = secrets.iter().map(|s| s.name.as_str()).collect();
                format!("{command} (secrets: {})", names.join(", "))
            }
            SetupStep::Copy { from, to } => format!("copy {} to {to}", from.display()),
        }
    }
}

pub(super) type ErrorAt<'a> = &'a dyn Fn(Range<usize>, String, Option<String>) -> ConfigError;

/// The most setup steps: each is a layer, and overlayfs stacks at most 500 (with the image's).
pub const MAX_STEPS: usize = 200;

/// A variable name a shell takes.
pub fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Validates the steps; `host_access` gets each secret (a project asking for the user's).
pub(super) fn parse(
    steps: Spanned<Vec<Spanned<RawStep>>>,
    home: &Path,
    error: ErrorAt<'_>,
    host_access: &mut Vec<crate::config::diagnostic::Located<String>>,
) -> Result<Vec<SetupStep>, ConfigError> {
    if steps.get_ref().len() > MAX_STEPS {
        return Err(error(
            steps.span(),
            format!(
                "{} setup steps; at most {MAX_STEPS} (each is a layer)",
                steps.get_ref().len()
            ),
            Some("join steps that belong together with `&&`".into()),
        ));
    }
    let mut out = Vec::new();
    for step in steps.into_inner() {
        let span = step.span();
        out.push(match step.into_inner() {
            RawStep::Command(command) => run_step(command, Vec::new(), span, error)?,
            RawStep::Table(table) => table_step(table, span, home, error, host_access)?,
        });
    }
    Ok(out)
}

fn run_step(
    command: String,
    secrets: Vec<Secret>,
    span: Range<usize>,
    error: ErrorAt<'_>,
) -> Result<SetupStep, ConfigError> {
    if command.trim().is_empty() {
        return Err(error(span, "a setup step is empty".into(), None));
    }
    Ok(SetupStep::Run { command, secrets })
}

fn table_step(
    table: RawStepTable,
    span: Range<usize>,
    home: &Path,
    error: ErrorAt<'_>,
    host_access: &mut Vec<crate::config::diagnostic::Located<String>>,
) -> Result<SetupStep, ConfigError> {
    match (table.run, table.copy) {
        (Some(run), None) => {
            if let Some(to) = &table.to {
                return Err(error(
                    to.span(),
                    "`to` belongs to a copy step".into(),
                    Some("a step is either { run = \"...\" } or { copy = \"...\", to = \"...\" }".into()),
                ));
            }
            let mut secrets = Vec::new();
            for secret in table.secrets.unwrap_or_default() {
                let secret_span = secret.span();
                let secret = match secret.into_inner() {
                    RawSecret::Name(name) => Secret { name, file: None },
                    RawSecret::Table { name, file } => Secret {
                        name,
                        file: Some(expand_home(&file, home).ok_or_else(|| {
                            error(
                                secret_span.clone(),
                                format!("the secret file `{file}` is not an absolute path or one in your home (`~/...`)"),
                                None,
                            )
                        })?),
                    },
                };
                if !is_variable_name(&secret.name) {
                    return Err(error(
                        secret_span,
                        format!("`{}` is not a variable name", secret.name),
                        Some("a secret reaches the step as a variable: letters, digits and underscores, e.g. NPM_TOKEN".into()),
                    ));
                }
                host_access.push(crate::config::diagnostic::Located {
                    value: format!(
                        "a setup step reads your secret {} (from {})",
                        secret.name,
                        secret
                            .file
                            .as_ref()
                            .map_or_else(|| "your environment".to_owned(), |f| f.display().to_string())
                    ),
                    span: secret_span,
                });
                secrets.push(secret);
            }
            run_step(run.into_inner(), secrets, span, error)
        }
        (None, Some(copy)) => {
            if let Some(secrets) = table.secrets.as_ref().and_then(|s| s.first()) {
                return Err(error(
                    secrets.span(),
                    "a copy step takes no secrets".into(),
                    None,
                ));
            }
            let from = project_relative(copy.get_ref()).ok_or_else(|| {
                error(
                    copy.span(),
                    format!("`{}` is not a path inside the project", copy.get_ref()),
                    Some("name a file or dir relative to the project dir, without `..`".into()),
                )
            })?;
            let Some(to) = table.to else {
                return Err(error(
                    span,
                    "a copy step needs `to`, where the files go in the image".into(),
                    Some("for example { copy = \"ci/ca.crt\", to = \"/usr/local/share/ca-certificates/ca.crt\" }".into()),
                ));
            };
            if !is_image_path(to.get_ref()) {
                return Err(error(
                    to.span(),
                    format!("`{}` is not an absolute path in the image", to.get_ref()),
                    Some("start it with `/`, without `..`, e.g. \"/usr/local/share/ca-certificates/ca.crt\"".into()),
                ));
            }
            Ok(SetupStep::Copy {
                from,
                to: to.into_inner(),
            })
        }
        (Some(run), Some(_)) => Err(error(
            run.span(),
            "a step has both `run` and `copy`".into(),
            Some("make them two steps".into()),
        )),
        (None, None) => Err(error(
            span,
            "a setup step table needs `run` or `copy`".into(),
            Some("{ run = \"npm ci\" } or { copy = \"ci/ca.crt\", to = \"/usr/local/share/ca-certificates/ca.crt\" }".into()),
        )),
    }
}

/// `~/x` in `home`, or an absolute path.
fn expand_home(path: &str, home: &Path) -> Option<PathBuf> {
    if let Some(rest) = path.strip_prefix("~/") {
        return Some(home.join(rest));
    }
    Path::new(path).is_absolute().then(|| PathBuf::from(path))
}

/// A relative path with no `..`: it cannot leave the dir it is relative to (by name; links
/// are refused where it is read).
fn project_relative(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    let parts: Vec<Component> = p.components().collect();
    let ok = !path.is_empty()
        && !path.contains('\0')
        && parts
            .iter()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        && parts.iter().any(|c| matches!(c, Component::Normal(_)));
    ok.then(|| {
        parts
            .iter()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect()
    })
}

/// An absolute path in the image, without `..`.
fn is_image_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.contains('\0')
        && Path::new(path).components().all(|c| {
            matches!(
                c,
                Component::RootDir | Component::Normal(_) | Component::CurDir
            )
        })
        && !path.trim_end_matches('/').is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_paths_stay_in_the_project_and_land_at_absolute_paths() {
        assert_eq!(
            project_relative("ci/ca.crt"),
            Some(PathBuf::from("ci/ca.crt"))
        );
        assert_eq!(project_relative("./ci/"), Some(PathBuf::from("ci")));
        for bad in ["", "/etc/passwd", "../x", "ci/../../x", ".", "a\0b"] {
            assert_eq!(project_relative(bad), None, "{bad:?}");
        }
        assert!(is_image_path("/usr/local/share/ca.crt"));
        assert!(is_image_path("/opt/app/"));
        for bad in ["usr/x", "/", "/usr/../etc", ""] {
            assert!(!is_image_path(bad), "{bad:?}");
        }
        assert!(is_variable_name("NPM_TOKEN") && is_variable_name("_x1"));
        assert!(!is_variable_name("1X") && !is_variable_name("A-B") && !is_variable_name(""));
    }

    #[test]
    fn a_step_is_described_as_the_lock_records_it() {
        let run = SetupStep::Run {
            command: "npm ci".into(),
            secrets: vec![Secret {
                name: "NPM_TOKEN".into(),
                file: None,
            }],
        };
        assert_eq!(run.describe(), "npm ci (secrets: NPM_TOKEN)");
        let plain = SetupStep::Run {
            command: "make".into(),
            secrets: Vec::new(),
        };
        assert_eq!(plain.describe(), "make");
        let copy = SetupStep::Copy {
            from: "ci/ca.crt".into(),
            to: "/etc/ca.crt".into(),
        };
        assert_eq!(copy.describe(), "copy ci/ca.crt to /etc/ca.crt");
    }
}
