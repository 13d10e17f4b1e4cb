//! `[network] allow` and `setup_allow`: the names a sandbox may reach. Entries are host names
//! (`pypi.org`), wildcards (`*.internal.example`), either with a port (`:8443`; without, 80
//! and 443), or presets: `@toolchain` (the template's package registries) and a distribution's
//! package mirrors (`@debian`, `@ubuntu`, `@alpine`).

use std::ops::Range;

use toml::Spanned;

use crate::config::diagnostic::Located;
use crate::config::error::ConfigError;
use crate::settings::allow_list::AllowList;
use crate::settings::allow_list::Rule;

/// The distributions whose mirrors have a preset.
pub const DISTRIBUTIONS: [(&str, &[&str]); 3] = [
    ("@debian", &["deb.debian.org", "security.debian.org"]),
    (
        "@ubuntu",
        &[
            "archive.ubuntu.com",
            "*.archive.ubuntu.com",
            "security.ubuntu.com",
            "ports.ubuntu.com",
        ],
    ),
    ("@alpine", &["dl-cdn.alpinelinux.org"]),
];

/// One list, as written.
#[derive(Clone, Debug, PartialEq)]
pub struct AllowSetting {
    /// `[network].allow in sandbox.toml:7`: where it is written, for messages.
    pub source: String,
    /// Each rule with the span of the entry it came from.
    pub rules: Vec<Located<Rule>>,
    /// The distribution presets it names (`@debian`): the image's own mirrors join them.
    pub distributions: Vec<&'static str>,
}

impl AllowSetting {
    pub fn list(&self) -> AllowList {
        let mut rules: Vec<Rule> = self.rules.iter().map(|r| r.value.clone()).collect();
        rules.sort();
        rules.dedup();
        AllowList { rules }
    }
}

/// Parses the entries of `key` (at `span`, line `line` of `file_name`); `toolchain` is the
/// template's registries, when the project has a template.
pub fn parse(
    key: &str,
    entries: &Spanned<Vec<Spanned<String>>>,
    toolchain: Option<&[String]>,
    source: String,
    error: &dyn Fn(Range<usize>, String, Option<String>) -> ConfigError,
) -> Result<AllowSetting, ConfigError> {
    let mut rules = Vec::new();
    let mut distributions = Vec::new();
    let located = |rule: Rule, span: &Range<usize>| Located {
        value: rule,
        span: span.clone(),
    };
    for entry in entries.get_ref() {
        let text = entry.get_ref().trim();
        let span = entry.span();
        if text == "@toolchain" {
            let Some(hosts) = toolchain else {
                return Err(error(
                    span,
                    format!("`@toolchain` in `{key}` needs a template (`[toolchain] name`)"),
                    Some("with `image =` alone, list the registries' hosts by name".into()),
                ));
            };
            for host in hosts {
                let rule = Rule::parse(host).map_err(|e| {
                    error(span.clone(), format!("the template's `{host}`: {e}"), None)
                })?;
                rules.push(located(rule, &span));
            }
        } else if let Some((name, hosts)) = DISTRIBUTIONS.iter().find(|(name, _)| *name == text) {
            distributions.push(*name);
            for host in *hosts {
                let rule = Rule::parse(host).map_err(|e| error(span.clone(), e, None))?;
                rules.push(located(rule, &span));
            }
        } else if text.starts_with('@') {
            let mut names = vec!["@toolchain"];
            names.extend(DISTRIBUTIONS.iter().map(|(n, _)| *n));
            let hint = crate::config::diagnostic::nearest(text, &names)
                .map(|n| format!("did you mean `{n}`? "))
                .unwrap_or_default();
            return Err(error(
                span,
                format!("unknown preset `{text}` in `{key}`"),
                Some(format!("{hint}the presets are {}", names.join(", "))),
            ));
        } else {
            let rule = Rule::parse(text).map_err(|e| {
                error(
                    span,
                    format!("bad entry in `{key}`: {e}"),
                    Some(
                        "for example \"pypi.org\", \"*.internal.example:8443\" or \"@toolchain\""
                            .into(),
                    ),
                )
            })?;
            rules.push(located(rule, &entry.span()));
        }
    }
    Ok(AllowSetting {
        source,
        rules,
        distributions,
    })
}

/// The mirrors a package manager's sources name (apt's one-line and deb822 files, apk's
/// repositories): `http(s)://HOST[:PORT]/...` as rules, addresses and other schemes left out.
pub fn mirrors_in(text: &str) -> Vec<Rule> {
    let mut rules: Vec<Rule> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        for word in line.split_whitespace() {
            let Some(rest) = word
                .strip_prefix("http://")
                .or_else(|| word.strip_prefix("https://"))
            else {
                continue;
            };
            let authority = rest.split('/').next().unwrap_or_default();
            if authority.contains('@') {
                continue;
            }
            if let Ok(rule) = Rule::parse(authority) {
                if !rules.contains(&rule) {
                    rules.push(rule);
                }
            }
        }
    }
    rules
}

/// The line `offset` falls on in `text` (from 1).
pub fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |head| head.matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str, toolchain: Option<&[String]>) -> Result<AllowSetting, String> {
        #[derive(serde::Deserialize)]
        struct Doc {
            allow: Spanned<Vec<Spanned<String>>>,
        }
        let doc: Doc = toml::from_str(text).unwrap();
        let error = |span: Range<usize>, message: String, _: Option<String>| ConfigError::Other {
            message: format!("{}: {message}", line_of(text, span.start)),
            hint: None,
        };
        parse("allow", &doc.allow, toolchain, "here".into(), &error).map_err(|e| e.to_string())
    }

    #[test]
    fn mirrors_are_read_from_apt_and_apk_sources() {
        let apt = "# deb http://commented.example/debian\ndeb [signed-by=/k.gpg] http://deb.debian.org/debian bookworm main\ndeb https://mirror.corp.example:8443/debian bookworm main\n";
        let deb822 = "Types: deb\nURIs: http://deb.debian.org/debian http://security.debian.org/debian-security\nSuites: bookworm\n";
        let apk = "https://dl-cdn.alpinelinux.org/alpine/v3.19/main\nhttp://10.0.0.5/alpine\nhttps://user:pw@evil.example/x\n";
        let names = |t: &str| {
            mirrors_in(t)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(apt), ["deb.debian.org", "mirror.corp.example:8443"]);
        assert_eq!(names(deb822), ["deb.debian.org", "security.debian.org"]);
        assert_eq!(names(apk), ["dl-cdn.alpinelinux.org"]);
    }

    #[test]
    fn presets_expand_and_entries_are_checked_where_they_stand() {
        let hosts = vec!["pypi.org".to_owned(), "files.pythonhosted.org".to_owned()];
        let list = parse_text(
            "allow = [\"@toolchain\", \"@debian\", \"x.example:8443\"]",
            Some(&hosts),
        )
        .unwrap()
        .list();
        assert!(list.allows("files.pythonhosted.org", 443));
        assert!(list.allows("deb.debian.org", 80));
        assert!(list.allows("x.example", 8443));
        assert!(!list.allows("x.example", 443));
        let e = parse_text("allow = [\n\"pypi.org\",\n\"1.2.3.4\"]", None).unwrap_err();
        assert!(
            e.contains("3: bad entry") && e.contains("an address"),
            "{e}"
        );
        let e = parse_text("allow = [\"@toolchain\"]", None).unwrap_err();
        assert!(e.contains("needs a template"), "{e}");
        let e = parse_text("allow = [\"@debain\"]", None).unwrap_err();
        assert!(e.contains("unknown preset"), "{e}");
    }
}
