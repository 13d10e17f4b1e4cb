//! Errors that point into a TOML file: `path:line:column: message`, the offending line with the
//! text underlined, and a hint (the nearest known key for a typo, the accepted values).

use std::ops::Range;
use std::path::Path;

use crate::config::error::ConfigError;

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The line holding `span` with `^` under the spanned text (or under its first line's part).
fn snippet(text: &str, span: &Range<usize>, line: usize, column: usize) -> String {
    let source_line = text.lines().nth(line - 1).unwrap_or("");
    let spanned = text.get(span.clone()).unwrap_or("");
    let width = spanned
        .lines()
        .next()
        .map_or(1, |first| first.chars().count())
        .max(1)
        .min(
            source_line
                .chars()
                .count()
                .saturating_sub(column - 1)
                .max(1),
        );
    let gutter = " ".repeat(line.to_string().len());
    format!(
        "{gutter} |\n{line} | {source_line}\n{gutter} | {}{}",
        " ".repeat(column - 1),
        "^".repeat(width)
    )
}

/// An error at `span` of the file `path` whose text is `text`.
pub fn at(
    path: &Path,
    text: &str,
    span: Range<usize>,
    message: impl Into<String>,
    hint: Option<String>,
) -> ConfigError {
    let (line, column) = line_column(text, span.start);
    ConfigError::Invalid {
        path: path.to_owned(),
        line,
        column,
        message: message.into(),
        snippet: snippet(text, &span, line, column),
        hint,
    }
}

/// toml's own error (syntax, wrong type, unknown key), located the same way; an unknown key
/// gets the nearest known one as a hint.
pub fn from_toml(path: &Path, text: &str, error: &toml::de::Error) -> ConfigError {
    let message = error.message().trim().to_owned();
    let hint = error
        .span()
        .and_then(|span| top_level_key_hint(text, span.start))
        .or_else(|| unknown_key_hint(&message))
        .or_else(|| type_hint(&message));
    let message = message.lines().next().unwrap_or("").to_owned();
    match error.span() {
        Some(span) => at(path, text, span, message, hint),
        None => ConfigError::Invalid {
            path: path.to_owned(),
            line: 1,
            column: 1,
            message,
            snippet: String::new(),
            hint,
        },
    }
}

/// sandbox.toml's keys that belong before the first table.
const TOP_LEVEL_KEYS: &[&str] = &["setup", "workdir"];

/// A top-level key written below a `[table]` header belongs to that table in TOML, where it
/// is unknown or of the wrong type: say where it goes instead.
fn top_level_key_hint(text: &str, at: usize) -> Option<String> {
    let line_start = text.get(..at)?.rfind('\n').map_or(0, |i| i + 1);
    let line = text.get(line_start..)?.lines().next()?;
    let key = line.split('=').next()?.trim();
    let header = text
        .get(..line_start)?
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))?;
    // [toolchain] has a `setup` of its own.
    let own = header == "[toolchain]" && key == "setup";
    (TOP_LEVEL_KEYS.contains(&key) && !own).then(|| {
        format!(
            "`{key}` is a top-level key: below `{header}` it belongs to that table; move it above the first table"
        )
    })
}

/// For serde's "unknown field `x`, expected one of `a`, `b`": "did you mean `a`?".
fn unknown_key_hint(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (typo, rest) = rest.split_once('`')?;
    let known: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    match nearest(typo, &known) {
        Some(best) => Some(format!("did you mean `{best}`?")),
        None if !known.is_empty() => Some(format!(
            "the keys here are {}",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        None => None,
    }
}

fn type_hint(message: &str) -> Option<String> {
    message
        .contains("invalid type")
        .then(|| "check the value's type: strings are quoted (\"17\"), lists are [\"a\", \"b\"], tables are [name] sections".to_owned())
}

/// The candidate closest to `word` by edit distance, if close enough to be a typo.
pub fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| {
            // A swap of two neighbours counts as one edit (`imgae`).
            let d = strsim::osa_distance(&word.to_lowercase(), &c.to_lowercase());
            (d, *c)
        })
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// A value and where it stands in the file.
#[derive(Clone, Debug, PartialEq)]
pub struct Located<T> {
    pub value: T,
    pub span: std::ops::Range<usize>,
}

pub fn located<T: Clone>(s: &toml::Spanned<T>) -> Located<T> {
    Located {
        value: s.get_ref().clone(),
        span: s.span(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint_of(text: &str) -> Option<String> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Shape {
            setup: Option<Vec<String>>,
            workdir: Option<String>,
            #[serde(default)]
            env: std::collections::BTreeMap<String, String>,
            network: Option<Network>,
            toolchain: Option<Toolchain>,
        }
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Network {
            mode: Option<String>,
        }
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Toolchain {
            setup: Option<Vec<String>>,
        }
        let error = toml::from_str::<Shape>(text).err()?;
        match from_toml(Path::new("sandbox.toml"), text, &error) {
            ConfigError::Invalid { hint, .. } => hint,
            _ => None,
        }
    }

    #[test]
    fn a_top_level_key_below_a_table_is_told_where_it_goes() {
        let hint = hint_of("[env]\nA = \"1\"\nsetup = [\"make\"]\n").unwrap();
        assert!(
            hint.contains("`setup` is a top-level key: below `[env]`")
                && hint.contains("above the first table"),
            "{hint}"
        );
        let hint = hint_of("[network]\nmode = \"relay\"\nworkdir = \".\"\n").unwrap();
        assert!(
            hint.contains("`workdir` is a top-level key: below `[network]`"),
            "{hint}"
        );
        // [toolchain]'s own setup is not sent elsewhere; other mistakes keep their hints.
        let hint = hint_of("[toolchain]\nsetup = \"make\"\n").unwrap_or_default();
        assert!(!hint.contains("top-level"), "{hint}");
        let hint = hint_of("[network]\nmdoe = \"relay\"\n").unwrap_or_default();
        assert_eq!(hint, "did you mean `mode`?");
    }

    #[test]
    fn lines_and_columns_are_one_based() {
        let text = "a = 1\nname = \"jav\"\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 13), (2, 8));
    }

    #[test]
    fn typos_find_their_key() {
        assert_eq!(
            nearest("versoin", &["name", "version", "image"]),
            Some("version")
        );
        assert_eq!(nearest("jav", &["java", "php", "node"]), Some("java"));
        assert_eq!(nearest("zzzzzz", &["name", "version"]), None);
        assert_eq!(
            unknown_key_hint("unknown field `imgae`, expected one of `name`, `version`, `image`"),
            Some("did you mean `image`?".into())
        );
    }

    #[test]
    fn the_snippet_underlines_the_text() {
        let text = "[toolchain]\nname = \"jav\"\n";
        let e = at(Path::new("s.toml"), text, 19..24, "unknown toolchain", None);
        let shown = e.to_string();
        assert!(
            shown.starts_with("s.toml:2:8: unknown toolchain"),
            "{shown}"
        );
        assert!(
            shown.contains("2 | name = \"jav\"\n  |        ^^^^^"),
            "{shown}"
        );
    }
}
