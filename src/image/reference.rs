//! Image references, normalised as Docker does.
//!
//! `busybox` is `docker.io/library/busybox:latest`; a first component with a `.` or `:` or equal
//! to `localhost` names the registry; `@sha256:...` pins a digest. Repository names are checked
//! against the distribution spec's grammar so that one can be put into a URL path unescaped.

use std::fmt;

use crate::image::digest::Digest;

/// The registry used when a reference names none.
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// A parsed, normalised image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a reference was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid image reference `{input}`: {reason}")]
pub struct ReferenceError {
    input: String,
    reason: String,
}

impl Reference {
    /// Parses a reference the way `docker pull` reads its argument.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        let fail = |reason: &str| ReferenceError {
            input: input.chars().take(200).collect(),
            reason: reason.to_owned(),
        };
        if input.is_empty() {
            return Err(fail("it is empty"));
        }
        if input.len() > 512 {
            return Err(fail("it is longer than 512 characters"));
        }
        let (name_and_tag, digest) = match input.split_once('@') {
            Some((rest, digest)) => (
                rest,
                Some(Digest::parse(digest).map_err(|e| fail(&e.to_string()))?),
            ),
            None => (input, None),
        };
        let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(colon) => {
                let at = last_slash + colon;
                (&name_and_tag[..at], Some(&name_and_tag[at + 1..]))
            }
            None => (name_and_tag, None),
        };
        if let Some(tag) = tag {
            if !valid_tag(tag) {
                return Err(fail(
                    "a tag is 1 to 128 characters of letters, digits, `_`, `.` and `-`, not starting with `.` or `-`",
                ));
            }
        }
        let (registry, mut repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_owned(), rest.to_owned())
            }
            _ => (DEFAULT_REGISTRY.to_owned(), name.to_owned()),
        };
        if !valid_registry(&registry) {
            return Err(fail(
                "the registry part is not a host name with an optional port",
            ));
        }
        let registry = if registry == "index.docker.io" || registry == "registry-1.docker.io" {
            DEFAULT_REGISTRY.to_owned()
        } else {
            registry
        };
        if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        if !valid_repository(&repository) {
            return Err(fail(
                "repository names are lowercase letters and digits, separated by `.`, `_`, `__`, `-` or `/`",
            ));
        }
        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_owned()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_owned()),
        };
        Ok(Self {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The registry as written in references, e.g. `docker.io` or `127.0.0.1:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry, e.g. `library/busybox`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The pinned digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository`, the name registries' config prefixes are matched against.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What to ask the registry's manifest endpoint for: the digest if pinned, else the tag.
    pub fn manifest_selector(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_owned(),
        }
    }

    /// The same reference on another registry and repository (a mirror or a rewritten location).
    pub fn relocated(&self, registry: &str, repository: &str) -> Result<Self, ReferenceError> {
        let mut text = format!("{registry}/{repository}");
        if let Some(tag) = &self.tag {
            text.push(':');
            text.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            text.push('@');
            text.push_str(&digest.to_string());
        }
        Self::parse(&text)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn valid_registry(registry: &str) -> bool {
    let (host, port) = match registry.strip_prefix('[') {
        // An IPv6 literal, `[::1]:5000`.
        Some(rest) => match rest.split_once(']') {
            Some((addr, port)) => {
                if addr.parse::<std::net::Ipv6Addr>().is_err() {
                    return false;
                }
                ("ok", port.strip_prefix(':'))
            }
            None => return false,
        },
        None => match registry.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (registry, None),
        },
    };
    let host_ok = host == "ok"
        || (!host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            }));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    host_ok && port_ok
}

fn valid_repository(repository: &str) -> bool {
    repository.len() <= 255 && repository.split('/').all(valid_path_component)
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    if bytes.is_empty()
        || !bytes[0].is_ascii_alphanumeric()
        || !bytes[bytes.len() - 1].is_ascii_alphanumeric()
    {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_digit() || b.is_ascii_lowercase() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && matches!(bytes[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok || start == i {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(parsed("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(
            parsed("eclipse-temurin:17-jdk"),
            "docker.io/library/eclipse-temurin:17-jdk"
        );
        assert_eq!(parsed("user/app:v1"), "docker.io/user/app:v1");
        assert_eq!(
            parsed("index.docker.io/library/php:8.2-cli"),
            "docker.io/library/php:8.2-cli"
        );
        assert_eq!(
            parsed("127.0.0.1:5000/library/busybox"),
            "127.0.0.1:5000/library/busybox:latest"
        );
        assert_eq!(parsed("localhost/a/b/c:t"), "localhost/a/b/c:t");
        assert_eq!(parsed("[::1]:5000/x"), "[::1]:5000/x:latest");
        let pinned =
            "quay.io/a/b@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let r = Reference::parse(pinned).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.to_string(), pinned);
        assert_eq!(r.manifest_selector(), &pinned[pinned.len() - 71..]);
    }

    #[test]
    fn refuses_bad_names() {
        for bad in [
            "",
            "Busybox",
            "busybox:",
            "busybox:.x",
            "a//b",
            "reg.example/../etc",
            "reg.example/a/..",
            "busybox@sha256:abc",
            "host:99999/x",
            "a/b:t@md5:x",
            "-a",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn relocates_to_a_mirror() {
        let r = Reference::parse("busybox:1.36").unwrap();
        let m = r.relocated("127.0.0.1:5000", r.repository()).unwrap();
        assert_eq!(m.to_string(), "127.0.0.1:5000/library/busybox:1.36");
    }
}
