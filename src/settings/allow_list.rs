//! The egress allow-list: names (or `*.domain` wildcards), each with a port or the web's two
//! (80 and 443). Decided by name, never by address: on many networks every name resolves to
//! one proxy's address, and an address says nothing of who is behind it.

use std::fmt;

/// A name the list allows, exactly or as every name under a domain.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NamePattern {
    Exact(String),
    /// `*.example.com`: any name ending in `.example.com` (not `example.com` itself).
    Under(String),
}

/// One entry of the list.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rule {
    pub name: NamePattern,
    /// `None`: 80 and 443.
    pub port: Option<u16>,
}

/// The ports an entry without one allows.
pub const WEB_PORTS: [u16; 2] = [80, 443];

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            NamePattern::Exact(name) => write!(f, "{name}")?,
            NamePattern::Under(domain) => write!(f, "*.{domain}")?,
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

/// A name as compared: lower case, without a final dot.
pub fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether `name` is a DNS name (letters, digits, `-` and `_`, dot-separated labels of at most
/// 63, 253 in all), not an address.
pub fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.parse::<std::net::IpAddr>().is_err()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        // A name of digits and dots only would be read as an address by some tools.
        && !name.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

impl Rule {
    /// Parses `name`, `*.domain`, either with `:port`. The error says what is wrong.
    pub fn parse(text: &str) -> Result<Rule, String> {
        let text = text.trim();
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("`{port}` is not a port (1-65535)"))?;
                (host, Some(port))
            }
            None => (text, None),
        };
        let host = normalize(host);
        if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
            return Err(format!(
                "`{host}` is an address: the list names hosts (an address can stand for any of them)"
            ));
        }
        let name = match host.strip_prefix("*.") {
            Some(domain) => NamePattern::Under(domain.to_owned()),
            None => NamePattern::Exact(host.clone()),
        };
        let bare = match &name {
            NamePattern::Exact(n) | NamePattern::Under(n) => n,
        };
        if !is_dns_name(bare) {
            return Err(format!(
                "`{host}` is not a host name (letters, digits, `-` and dots; `*.` only in front)"
            ));
        }
        if matches!(name, NamePattern::Under(_)) && !bare.contains('.') {
            return Err(format!(
                "`{host}` is too wide: a wildcard needs a domain of two labels at least"
            ));
        }
        Ok(Rule { name, port })
    }

    fn matches_name(&self, name: &str) -> bool {
        match &self.name {
            NamePattern::Exact(exact) => exact == name,
            NamePattern::Under(domain) => name
                .strip_suffix(domain.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        }
    }

    fn matches_port(&self, port: u16) -> bool {
        match self.port {
            Some(own) => own == port,
            None => WEB_PORTS.contains(&port),
        }
    }

    /// Whether this entry allows everything `other` does (a user's floor covering a
    /// project's entry).
    pub fn covers(&self, other: &Rule) -> bool {
        let ports = match (self.port, other.port) {
            (None, None) => true,
            (Some(a), Some(b)) => a == b,
            (None, Some(b)) => WEB_PORTS.contains(&b),
            (Some(_), None) => false,
        };
        ports
            && match &other.name {
                NamePattern::Exact(name) => self.matches_name(name),
                NamePattern::Under(domain) => match &self.name {
                    NamePattern::Exact(_) => false,
                    NamePattern::Under(own) => domain == own || self.matches_name(domain),
                },
            }
    }
}

/// The whole list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList {
    pub rules: Vec<Rule>,
}

impl AllowList {
    /// Whether a connection to `name` on `port` is allowed.
    pub fn allows(&self, name: &str, port: u16) -> bool {
        let name = normalize(name);
        self.rules
            .iter()
            .any(|r| r.matches_name(&name) && r.matches_port(port))
    }

    /// Whether `name` may be looked up (some entry names it, on any port).
    pub fn allows_name(&self, name: &str) -> bool {
        let name = normalize(name);
        self.rules.iter().any(|r| r.matches_name(&name))
    }

    /// The ports some entry allows: where the sandbox's forwarder listens.
    pub fn ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .rules
            .iter()
            .flat_map(|r| match r.port {
                Some(p) => vec![p],
                None => WEB_PORTS.to_vec(),
            })
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> AllowList {
        AllowList {
            rules: entries.iter().map(|e| Rule::parse(e).unwrap()).collect(),
        }
    }

    #[test]
    fn names_wildcards_and_ports_are_matched() {
        let allow = list(&[
            "pypi.org",
            "*.internal.example:8443",
            "Files.PythonHosted.org.",
        ]);
        assert!(allow.allows("pypi.org", 443));
        assert!(allow.allows("PYPI.org.", 80));
        assert!(!allow.allows("pypi.org", 22));
        assert!(!allow.allows("evilpypi.org", 443));
        assert!(!allow.allows("pypi.org.evil.example", 443));
        assert!(allow.allows("files.pythonhosted.org", 443));
        assert!(allow.allows("a.internal.example", 8443));
        assert!(allow.allows("b.a.internal.example", 8443));
        assert!(!allow.allows("internal.example", 8443));
        assert!(!allow.allows("a.internal.example", 443));
        assert!(!allow.allows("xinternal.example", 8443));
        assert!(allow.allows_name("a.internal.example"));
        assert!(!allow.allows_name("example"));
        assert_eq!(allow.ports(), vec![80, 443, 8443]);
    }

    #[test]
    fn addresses_and_bad_names_are_refused_with_the_reason() {
        assert!(Rule::parse("10.0.0.1").unwrap_err().contains("an address"));
        assert!(Rule::parse("[::1]:443").unwrap_err().contains("an address"));
        assert!(Rule::parse("pypi.org:0")
            .unwrap_err()
            .contains("not a port"));
        assert!(Rule::parse("pypi.org:http")
            .unwrap_err()
            .contains("not a port"));
        assert!(Rule::parse("*.com").unwrap_err().contains("too wide"));
        assert!(Rule::parse("a..b").unwrap_err().contains("not a host name"));
        assert!(Rule::parse("a/b").unwrap_err().contains("not a host name"));
        assert!(Rule::parse("ex*mple.org").is_err());
        assert!(Rule::parse("").is_err());
        assert_eq!(
            Rule::parse("*.Example.org:8080").unwrap().to_string(),
            "*.example.org:8080"
        );
    }

    #[test]
    fn a_floor_covers_what_it_allows_and_no_more() {
        let r = |t: &str| Rule::parse(t).unwrap();
        assert!(r("*.example.org").covers(&r("a.example.org")));
        assert!(r("*.example.org").covers(&r("*.a.example.org")));
        assert!(r("*.example.org").covers(&r("*.example.org")));
        assert!(r("*.example.org").covers(&r("a.example.org:443")));
        assert!(!r("*.example.org").covers(&r("a.example.org:22")));
        assert!(!r("*.example.org").covers(&r("example.org")));
        assert!(!r("a.example.org").covers(&r("*.example.org")));
        assert!(!r("a.example.org:443").covers(&r("a.example.org")));
        assert!(r("a.example.org:22").covers(&r("a.example.org:22")));
    }
}
