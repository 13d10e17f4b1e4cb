//! `WWW-Authenticate` challenges and the checks a token realm must pass before we call it.

use std::net::IpAddr;

/// What a registry asked for in its 401 answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// Docker Hub's token flow: get a token from `realm`, then send `Bearer <token>`.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
    /// Plain HTTP basic authentication.
    Basic,
}

/// Parses one `WWW-Authenticate` header value; unknown schemes give `None`.
pub fn parse(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => {
            let params = parse_params(rest);
            let get = |key: &str| {
                params
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(key))
                    .map(|(_, v)| v.clone())
            };
            Some(Challenge::Bearer {
                realm: get("realm")?,
                service: get("service"),
                scope: get("scope"),
            })
        }
        _ => None,
    }
}

/// Splits `a="x, y",b=z` into pairs, honouring quotes and backslash escapes.
fn parse_params(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
        }
        out.push((key.trim().to_owned(), value.trim().to_owned()));
    }
    out
}

/// Checks that a bearer realm is a place we may send the user's credentials to.
///
/// As oras-go's fix for CVE-2026-48978: the realm must be http(s); an https registry may not send
/// us to a plain-http realm; and an IP literal in a loopback, private, link-local or unspecified
/// range is only allowed when it is the registry's own host (a registry must not be able to aim
/// our credentials at a metadata service or a host-local port). Cross-host realms on public names
/// stay allowed, as Docker Hub needs (`registry-1.docker.io` -> `auth.docker.io`).
pub fn check_realm(realm: &str, registry_url: &reqwest::Url) -> Result<reqwest::Url, String> {
    let url =
        reqwest::Url::parse(realm).map_err(|e| format!("realm `{realm}` is not a URL: {e}"))?;
    match url.scheme() {
        "https" => {}
        "http" if registry_url.scheme() == "http" => {}
        "http" => {
            return Err(format!(
                "realm `{realm}` is plain http but the registry uses https"
            ))
        }
        other => {
            return Err(format!(
                "realm `{realm}` has scheme `{other}`; only http(s) is allowed"
            ))
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("realm `{realm}` carries user information"));
    }
    let same_host = url.host_str() == registry_url.host_str();
    if let Some(host) = url.host_str() {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            if is_internal(ip) && !same_host {
                return Err(format!(
                    "realm `{realm}` points at internal address {ip}, which is not the registry's host"
                ));
            }
        }
    }
    Ok(url)
}

fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_internal(IpAddr::V4(v4)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_hub_challenge() {
        let h = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#;
        assert_eq!(
            parse(h),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            })
        );
        assert_eq!(parse(r#"Basic realm="x""#), Some(Challenge::Basic));
        assert_eq!(parse("Negotiate"), None);
    }

    #[test]
    fn realm_rules() {
        let https = reqwest::Url::parse("https://registry-1.docker.io/v2/").unwrap();
        let local = reqwest::Url::parse("http://127.0.0.1:5000/v2/").unwrap();
        assert!(check_realm("https://auth.docker.io/token", &https).is_ok());
        assert!(check_realm("http://auth.docker.io/token", &https).is_err());
        assert!(check_realm("file:///etc/passwd", &https).is_err());
        assert!(check_realm("https://169.254.169.254/latest", &https).is_err());
        assert!(check_realm("https://10.0.0.1/token", &https).is_err());
        assert!(check_realm("http://127.0.0.1:6000/token", &local).is_ok());
        assert!(check_realm("http://127.0.0.2/token", &local).is_err());
        assert!(check_realm("https://u:p@auth.docker.io/token", &https).is_err());
    }
}
