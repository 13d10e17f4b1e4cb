//! Toolchain templates: the TOML files in `sandboxes/`, embedded in the binary at build time.
//! Each maps versions to Docker Hub images and names the toolchain's env, caches and the
//! comment block `sandbox init` writes.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::config::error::ConfigError;

const SOURCES: &[(&str, &str)] = &[
    ("go", include_str!("../../sandboxes/go.toml")),
    ("java", include_str!("../../sandboxes/java.toml")),
    ("node", include_str!("../../sandboxes/node.toml")),
    ("php", include_str!("../../sandboxes/php.toml")),
    ("python", include_str!("../../sandboxes/python.toml")),
    ("rust", include_str!("../../sandboxes/rust.toml")),
];

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub name: String,
    pub description: String,
    /// The version `sandbox init NAME` picks.
    pub default: String,
    /// Files whose presence in a project suggests this toolchain.
    pub detect: Vec<String>,
    /// The comment block `sandbox init` writes above `[toolchain]`.
    pub init: String,
    /// Version -> image reference.
    pub versions: BTreeMap<String, String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Cache name -> path inside (`~` is the user's home).
    #[serde(default)]
    pub caches: BTreeMap<String, String>,
    /// The hosts of its package registries: what `@toolchain` allows.
    #[serde(default)]
    pub egress: Vec<String>,
}

impl Template {
    /// Versions, oldest first (numerically: 8 before 11, 3.9 before 3.10).
    pub fn versions_sorted(&self) -> Vec<&str> {
        let mut versions: Vec<&str> = self.versions.keys().map(String::as_str).collect();
        versions.sort_by_key(|v| version_key(v));
        versions
    }
}

fn version_key(version: &str) -> Vec<u64> {
    version
        .split(['.', '-'])
        .map(|part| part.parse().unwrap_or(u64::MAX))
        .collect()
}

/// Every template, sorted by name.
pub fn all() -> Result<Vec<Template>, ConfigError> {
    SOURCES
        .iter()
        .map(|(file, text)| {
            toml::from_str::<Template>(text).map_err(|e| ConfigError::Other {
                message: format!("the built-in template sandboxes/{file}.toml is broken: {e}"),
                hint: None,
            })
        })
        .collect()
}

/// Template names, for messages and completions.
pub fn names() -> Vec<&'static str> {
    SOURCES.iter().map(|(name, _)| *name).collect()
}

pub fn find(name: &str) -> Result<Option<Template>, ConfigError> {
    Ok(all()?.into_iter().find(|t| t.name == name))
}

/// The toolchain a project's files suggest, with the file that gave it away.
pub fn detect(dir: &Path) -> Result<Option<(Template, String)>, ConfigError> {
    Ok(detect_all(dir)?.into_iter().next())
}

/// Every toolchain a project's files suggest (a Go service with a Node front end has both),
/// the one `init` picks first.
pub fn detect_all(dir: &Path) -> Result<Vec<(Template, String)>, ConfigError> {
    Ok(all()?
        .into_iter()
        .filter_map(|template| {
            let file = template
                .detect
                .iter()
                .find(|f| dir.join(f).exists())?
                .clone();
            Some((template, file))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses_and_its_default_exists() {
        let templates = all().unwrap();
        assert_eq!(templates.len(), SOURCES.len());
        for t in &templates {
            assert!(t.versions.contains_key(&t.default), "{}", t.name);
            assert!(
                t.init.lines().all(|l| l.is_empty() || l.starts_with('#')),
                "{}",
                t.name
            );
            for image in t.versions.values() {
                assert!(crate::image::Reference::parse(image).is_ok(), "{image}");
            }
        }
    }

    #[test]
    fn versions_sort_numerically() {
        let java = find("java").unwrap().unwrap();
        assert_eq!(java.versions_sorted(), ["8", "11", "17", "21"]);
        let python = find("python").unwrap().unwrap();
        assert_eq!(python.versions_sorted(), ["3.10", "3.11", "3.12", "3.13"]);
    }
}
