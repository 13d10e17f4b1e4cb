//! `[forward]`: what of the host's a sandbox may use, off unless asked for: the ssh agent's
//! socket, `~/.gitconfig` read-only, and named files or dirs read-only. The user's config may
//! ask; a project's sandbox.toml may ask too, but only after `sandbox trust` (each is host
//! access).
//!
//! ```toml
//! [forward]
//! ssh_agent = true
//! gitconfig = true
//! paths = ["~/.npmrc", "~/.m2/settings.xml"]
//! ```

use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawForward {
    pub ssh_agent: Option<Spanned<bool>>,
    pub gitconfig: Option<Spanned<bool>>,
    #[serde(default)]
    pub paths: Vec<Spanned<String>>,
}

/// What to forward: paths as written (`~/` is the home, on the host and inside alike).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Forward {
    pub ssh_agent: bool,
    pub gitconfig: bool,
    pub paths: Vec<String>,
}

impl Forward {
    /// Both asked for.
    pub fn merged(&self, other: &Forward) -> Forward {
        let mut paths = self.paths.clone();
        paths.extend(
            other
                .paths
                .iter()
                .filter(|p| !self.paths.contains(p))
                .cloned(),
        );
        Forward {
            ssh_agent: self.ssh_agent || other.ssh_agent,
            gitconfig: self.gitconfig || other.gitconfig,
            paths,
        }
    }

    pub fn is_empty(&self) -> bool {
        !self.ssh_agent && !self.gitconfig && self.paths.is_empty()
    }
}

/// A forwarded path must be in the home (`~/...`) or absolute, without `..`.
pub fn valid_path(path: &str) -> bool {
    let rest = path.strip_prefix("~/").unwrap_or(path);
    (path.starts_with("~/") || path.starts_with('/'))
        && !rest.is_empty()
        && !path.contains('\0')
        && !std::path::Path::new(rest)
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
}

/// What in a file asks for something of the host's, and where.
pub(super) type Asks = Vec<(String, std::ops::Range<usize>)>;

impl RawForward {
    /// The forward, with each part that asks for something of the host's (for trust).
    pub(super) fn into_forward(
        self,
        error: &dyn Fn(
            std::ops::Range<usize>,
            String,
            Option<String>,
        ) -> crate::config::error::ConfigError,
    ) -> Result<(Forward, Asks), crate::config::error::ConfigError> {
        let mut asks = Vec::new();
        let mut forward = Forward::default();
        if let Some(agent) = self.ssh_agent.filter(|a| *a.get_ref()) {
            forward.ssh_agent = true;
            asks.push((
                "forward.ssh_agent lets the sandbox use your ssh agent's keys".into(),
                agent.span(),
            ));
        }
        if let Some(git) = self.gitconfig.filter(|g| *g.get_ref()) {
            forward.gitconfig = true;
            asks.push((
                "forward.gitconfig shows your ~/.gitconfig inside".into(),
                git.span(),
            ));
        }
        for path in self.paths {
            if !valid_path(path.get_ref()) {
                return Err(error(
                    path.span(),
                    format!(
                        "`{}` is not a path in your home (`~/...`) or an absolute one",
                        path.get_ref()
                    ),
                    Some("for example \"~/.npmrc\"".into()),
                ));
            }
            asks.push((
                format!("forward.paths shows your {} inside", path.get_ref()),
                path.span(),
            ));
            forward.paths.push(path.into_inner());
        }
        Ok((forward, asks))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_paths_are_in_the_home_or_absolute_without_dot_dot() {
        assert!(valid_path("~/.npmrc") && valid_path("/etc/app.conf"));
        for bad in ["~/../x", "relative", "~/", "~user/x", "/a/../b"] {
            assert!(!valid_path(bad), "{bad}");
        }
    }
}
