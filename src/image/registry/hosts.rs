//! Where to fetch a reference from: mirrors first, then the upstream (possibly relocated), with
//! the same field names as containers' registries.conf (v2) so a podman user can copy theirs.

use crate::image::error::ImageError;
use crate::image::reference::Reference;

/// One `[[registry]]` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistryRule {
    /// `host[:port][/namespace]` matched at path-component boundaries; longest match wins.
    pub prefix: String,
    /// Where the prefix really lives (replaces the prefix), if elsewhere.
    pub location: Option<String>,
    /// Plain HTTP allowed, TLS not verified.
    pub insecure: bool,
    /// Pulls matching this prefix are refused.
    pub blocked: bool,
    pub mirrors: Vec<MirrorRule>,
}

/// One `[[registry.mirror]]` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MirrorRule {
    pub location: String,
    pub insecure: bool,
}

/// All registry rules, own config first, then containers' files.
#[derive(Clone, Debug, Default)]
pub struct RegistryConfig {
    pub rules: Vec<RegistryRule>,
}

/// One place to try for an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullSource {
    /// The reference rewritten onto this source's registry and repository.
    pub reference: Reference,
    pub insecure: bool,
    pub mirror: bool,
}

impl RegistryConfig {
    fn rule_for(&self, name: &str) -> Option<&RegistryRule> {
        self.rules
            .iter()
            .filter(|r| prefix_matches(&r.prefix, name))
            .max_by_key(|r| r.prefix.len())
    }

    /// The sources to try for `reference`, in order.
    pub fn sources(&self, reference: &Reference) -> Result<Vec<PullSource>, ImageError> {
        let name = reference.name();
        let Some(rule) = self.rule_for(&name) else {
            return Ok(vec![PullSource {
                reference: reference.clone(),
                insecure: false,
                mirror: false,
            }]);
        };
        if rule.blocked {
            return Err(ImageError::Internal(format!(
                "pulling {reference} is blocked by the [[registry]] entry for `{}`",
                rule.prefix
            )));
        }
        let mut out = Vec::new();
        for mirror in &rule.mirrors {
            out.push(PullSource {
                reference: rewrite(reference, &rule.prefix, &mirror.location)?,
                insecure: mirror.insecure,
                mirror: true,
            });
        }
        let upstream = match &rule.location {
            Some(location) => rewrite(reference, &rule.prefix, location)?,
            None => reference.clone(),
        };
        out.push(PullSource {
            reference: upstream,
            insecure: rule.insecure,
            mirror: false,
        });
        Ok(out)
    }

    /// Whether plain HTTP / unverified TLS is allowed for `host` by configuration.
    pub fn is_insecure(&self, host: &str) -> bool {
        self.rules.iter().any(|r| {
            (r.insecure && prefix_host(&r.prefix) == host)
                || r.mirrors
                    .iter()
                    .any(|m| m.insecure && prefix_host(&m.location) == host)
        })
    }
}

fn prefix_host(prefix: &str) -> &str {
    prefix.split('/').next().unwrap_or(prefix)
}

fn prefix_matches(prefix: &str, name: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    name == prefix || (name.starts_with(prefix) && name.as_bytes().get(prefix.len()) == Some(&b'/'))
}

fn rewrite(reference: &Reference, prefix: &str, location: &str) -> Result<Reference, ImageError> {
    let name = reference.name();
    let rest = &name[prefix.trim_end_matches('/').len()..];
    let new_name = format!("{}{rest}", location.trim_end_matches('/'));
    let (registry, repository) = new_name.split_once('/').ok_or_else(|| {
        ImageError::Internal(format!(
            "registry location `{location}` leaves no repository"
        ))
    })?;
    Ok(reference.relocated(registry, repository)?)
}

/// Loopback registries may fall back to plain HTTP without configuration, as Docker does.
pub fn is_loopback(host: &str) -> bool {
    let bare = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(host),
    };
    bare == "localhost"
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RegistryConfig {
        RegistryConfig {
            rules: vec![RegistryRule {
                prefix: "docker.io".into(),
                mirrors: vec![MirrorRule {
                    location: "127.0.0.1:5000".into(),
                    insecure: false,
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn mirrors_come_first_then_upstream() {
        let r = Reference::parse("eclipse-temurin:17-jdk").unwrap();
        let s = config().sources(&r).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0].reference.to_string(),
            "127.0.0.1:5000/library/eclipse-temurin:17-jdk"
        );
        assert!(s[0].mirror);
        assert_eq!(s[1].reference, r);
    }

    #[test]
    fn prefixes_match_whole_components() {
        assert!(prefix_matches("docker.io", "docker.io/library/x"));
        assert!(!prefix_matches("docker.io", "docker.iox/library/x"));
        assert!(prefix_matches("quay.io/team", "quay.io/team/app"));
        assert!(!prefix_matches("quay.io/team", "quay.io/teams/app"));
    }

    #[test]
    fn loopback_hosts() {
        for h in ["127.0.0.1:5000", "localhost", "[::1]:80", "127.9.9.9"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["registry-1.docker.io", "10.0.0.1:5000", "localhost.example"] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
