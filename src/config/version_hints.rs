//! The version a project already says it wants, for `sandbox init`: `.python-version`,
//! `requires-python`, `.nvmrc`, `engines.node`, `maven.compiler.release`/`<java.version>`,
//! composer.json's `require.php`, go.mod's `go` line, `rust-toolchain(.toml)` and
//! `.tool-versions` (asdf, mise). Files are the project's (untrusted): read size-capped, and
//! only a version-shaped string is taken from them.

use std::path::Path;

use crate::config::templates::Template;

/// The most read of a hint file.
const LIMIT: u64 = 256 * 1024;

/// A version the project asks for and the file that says so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hint {
    /// As written (`3.11.4`, `>=18`, `^8.2`).
    pub asked: String,
    pub file: String,
}

fn read(dir: &Path, name: &str) -> Option<String> {
    crate::config::files::read_optional(&dir.join(name), LIMIT)
        .ok()
        .flatten()
}

/// The first `major[.minor[.patch]]` in `text` (after any `v`, `^`, `~`, `>=`, `==`).
pub fn version_in(text: &str) -> Option<String> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let version: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let version = version.trim_end_matches('.').to_owned();
    (!version.is_empty()).then_some(version)
}

/// `.tool-versions` names for each template.
fn tool_names(template: &str) -> &'static [&'static str] {
    match template {
        "python" => &["python"],
        "node" => &["nodejs", "node"],
        "java" => &["java"],
        "php" => &["php"],
        "go" => &["golang", "go"],
        "rust" => &["rust"],
        _ => &[],
    }
}

/// The hint for `template` in the project at `dir`, the most specific file first.
pub fn find(dir: &Path, template: &str) -> Option<Hint> {
    // What the project wrote is printed back: one short line, no control characters (a
    // cloned repository's .nvmrc must not write escape sequences to the terminal).
    let hint = |asked: String, file: &str| {
        Some(Hint {
            asked: plain(&asked),
            file: file.to_owned(),
        })
    };
    let line_in = |file: &str, prefix: &str| -> Option<String> {
        read(dir, file)?
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_owned()))
    };
    let from = match template {
        "python" => read(dir, ".python-version")
            .and_then(|t| t.lines().next().map(str::to_owned))
            .and_then(|v| hint(v.trim().to_owned(), ".python-version"))
            .or_else(|| {
                line_in("pyproject.toml", "requires-python").and_then(|v| {
                    hint(
                        v.trim_start_matches([' ', '='])
                            .trim_matches('"')
                            .to_owned(),
                        "pyproject.toml (requires-python)",
                    )
                })
            }),
        "node" => [".nvmrc", ".node-version"]
            .iter()
            .find_map(|file| {
                let line = read(dir, file)?.lines().next()?.trim().to_owned();
                // nvm's `lts/iron` names a release line by its codename.
                match lts_major(&line) {
                    Some(major) => hint(major.to_owned(), &format!("{file} ({line})")),
                    None => hint(line, file),
                }
            })
            .or_else(|| {
                let json: serde_json::Value =
                    serde_json::from_str(&read(dir, "package.json")?).ok()?;
                let node = json.get("engines")?.get("node")?.as_str()?.to_owned();
                hint(node, "package.json (engines.node)")
            }),
        "java" => {
            let pom = read(dir, "pom.xml");
            let tag = |name: &str| {
                let text = pom.as_ref()?;
                let open = format!("<{name}>");
                let start = text.find(&open)? + open.len();
                let end = text[start..].find('<')? + start;
                Some(text[start..end].trim().to_owned())
            };
            [
                "maven.compiler.release",
                "java.version",
                "maven.compiler.source",
            ]
            .iter()
            .find_map(|name| tag(name).and_then(|v| hint(v, &format!("pom.xml (<{name}>)"))))
            .or_else(|| {
                ["build.gradle.kts", "build.gradle"]
                    .iter()
                    .find_map(|file| {
                        let text = read(dir, file)?;
                        let at = text
                            .find("JavaLanguageVersion.of(")
                            .map(|i| i + "JavaLanguageVersion.of(".len())
                            .or_else(|| {
                                text.find("JavaVersion.VERSION_")
                                    .map(|i| i + "JavaVersion.VERSION_".len())
                            })?;
                        hint(
                            text[at..]
                                .chars()
                                .take(8)
                                .collect::<String>()
                                .replace('_', "."),
                            file,
                        )
                    })
            })
        }
        "php" => {
            let json: serde_json::Value =
                serde_json::from_str(&read(dir, "composer.json")?).ok()?;
            let php = json.get("require")?.get("php")?.as_str()?.to_owned();
            hint(php, "composer.json (require.php)")
        }
        "go" => line_in("go.mod", "go ").and_then(|v| hint(v, "go.mod (go)")),
        "rust" => line_in("rust-toolchain.toml", "channel")
            .map(|v| {
                v.trim_start_matches([' ', '='])
                    .trim_matches('"')
                    .to_owned()
            })
            .and_then(|v| hint(v, "rust-toolchain.toml (channel)"))
            .or_else(|| {
                read(dir, "rust-toolchain")
                    .and_then(|t| t.lines().next().map(str::to_owned))
                    .and_then(|v| hint(v.trim().to_owned(), "rust-toolchain"))
            })
            .or_else(|| {
                // Cargo's `rust-version` is the oldest compiler the package builds with.
                line_in("Cargo.toml", "rust-version").and_then(|v| {
                    let v = v.trim_start_matches([' ', '=']).trim_matches('"');
                    hint(format!(">={v}"), "Cargo.toml (rust-version)")
                })
            }),
        _ => None,
    };
    from.or_else(|| {
        let text = read(dir, ".tool-versions")?;
        text.lines().find_map(|line| {
            let mut words = line.split_whitespace();
            let tool = words.next()?;
            let version = words.next()?;
            tool_names(template).contains(&tool).then(|| Hint {
                asked: plain(version),
                file: format!(".tool-versions ({tool})"),
            })
        })
    })
}

/// One short line of what a project file wrote, with no control characters.
fn plain(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// nvm's aliases (`lts/iron`, `lts/*`) for Node's release lines.
fn lts_major(line: &str) -> Option<&'static str> {
    let name = line.strip_prefix("lts/")?.to_ascii_lowercase();
    Some(match name.as_str() {
        // The active LTS line (Node 24, Krypton, since October 2025).
        "*" => "24",
        "gallium" => "16",
        "hydrogen" => "18",
        "iron" => "20",
        "jod" => "22",
        "krypton" => "24",
        _ => return None,
    })
}

/// The template version `asked` means: the same, else its `major.minor`, else its major;
/// for a minimum (`>=1.80`), the template's default when it is new enough; else the oldest
/// of the template's versions newer than asked (a newer toolchain, never an older one).
/// `None` when the template has none that new.
pub fn matching(template: &Template, asked: &str) -> Option<String> {
    let version = version_in(asked)?;
    let numbers = |v: &str| -> Vec<u64> { v.split('.').filter_map(|n| n.parse().ok()).collect() };
    let wanted = numbers(&version);
    if asked.trim_start().starts_with(">=") && numbers(&template.default) >= wanted {
        return Some(template.default.clone());
    }
    let parts: Vec<&str> = version.split('.').collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("."))
        .find(|candidate| template.versions.contains_key(candidate))
        .or_else(|| {
            template
                .versions_sorted()
                .into_iter()
                .find(|v| numbers(v) >= wanted)
                .map(str::to_owned)
        })
}

/// The image for a version newer than the template has, named as its newest one is
/// (`docker.io/library/rust:1.85` gives `docker.io/library/rust:1.90`).
pub fn image_beyond(template: &Template, asked: &str) -> Option<String> {
    let version = version_in(asked)?;
    let newest = template.versions_sorted().last().copied()?;
    let image = template.versions.get(newest)?;
    image
        .ends_with(&format!(":{newest}"))
        .then(|| format!("{}{version}", &image[..image.len() - newest.len()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            fs_err::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    /// (template, project files, version chosen, the file that decided).
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, &'a str);

    #[test]
    fn each_projects_file_names_the_version_and_the_template_maps_it() {
        let table: &[Case] = &[
            (
                "python",
                &[(".python-version", "3.11.4\n")],
                "3.11",
                ".python-version",
            ),
            (
                "python",
                &[(
                    "pyproject.toml",
                    "[project]\nrequires-python = \">=3.10\"\n",
                )],
                // A minimum the default meets: the default, as uv would pick.
                "3.12",
                "pyproject.toml (requires-python)",
            ),
            ("node", &[(".nvmrc", "v20.11.1\n")], "20", ".nvmrc"),
            (
                "node",
                &[("package.json", "{\"engines\": {\"node\": \">=18\"}}")],
                "22",
                "package.json (engines.node)",
            ),
            (
                "java",
                &[(
                    "pom.xml",
                    "<properties><maven.compiler.release>17</maven.compiler.release></properties>",
                )],
                "17",
                "pom.xml (<maven.compiler.release>)",
            ),
            (
                "java",
                &[(
                    "pom.xml",
                    "<properties><java.version>11</java.version></properties>",
                )],
                "11",
                "pom.xml (<java.version>)",
            ),
            (
                "java",
                &[(
                    "build.gradle.kts",
                    "java { toolchain { languageVersion = JavaLanguageVersion.of(21) } }",
                )],
                "21",
                "build.gradle.kts",
            ),
            (
                "php",
                &[("composer.json", "{\"require\": {\"php\": \"^8.2\"}}")],
                "8.2",
                "composer.json (require.php)",
            ),
            (
                "go",
                &[("go.mod", "module x\n\ngo 1.22.3\n")],
                "1.22",
                "go.mod (go)",
            ),
            (
                "rust",
                &[("rust-toolchain.toml", "[toolchain]\nchannel = \"1.79.0\"\n")],
                "1.79",
                "rust-toolchain.toml (channel)",
            ),
            (
                "rust",
                &[("rust-toolchain", "1.80\n")],
                "1.80",
                "rust-toolchain",
            ),
            (
                "node",
                &[(".tool-versions", "python 3.12.1\nnodejs 18.19.0\n")],
                "18",
                ".tool-versions (nodejs)",
            ),
        ];
        for (name, files, version, file) in table {
            let dir = project(files);
            let template = super::super::templates::find(name).unwrap().unwrap();
            let hint = find(dir.path(), name).unwrap_or_else(|| panic!("{name}: {files:?}"));
            assert_eq!(hint.file, *file, "{name}");
            assert_eq!(
                matching(&template, &hint.asked).as_deref(),
                Some(*version),
                "{name}: {hint:?}"
            );
        }
    }

    #[test]
    fn a_version_the_template_lacks_or_a_name_gives_none() {
        let node = super::super::templates::find("node").unwrap().unwrap();
        // Older than the template has: its oldest, a newer toolchain, never an older one.
        assert_eq!(matching(&node, "16.20.0"), Some("18".into()));
        assert_eq!(matching(&node, "lts/iron"), None);
        let rust = super::super::templates::find("rust").unwrap().unwrap();
        assert_eq!(matching(&rust, "stable"), None);
        // Newer than the template has: none, and the image by the newest one's name.
        assert_eq!(matching(&rust, "1.90"), None);
        assert_eq!(
            image_beyond(&rust, "1.90").as_deref(),
            Some("docker.io/library/rust:1.90")
        );
        // A minimum the default meets: the default.
        assert_eq!(matching(&rust, ">=1.80"), Some("1.85".into()));
        assert_eq!(find(project(&[]).path(), "go"), None);
    }

    #[test]
    fn what_a_hostile_hint_file_says_is_printed_as_plain_short_text() {
        let dir = project(&[(
            ".nvmrc",
            &format!("\x1b]0;owned\x07v20{}\n", "9".repeat(500)),
        )]);
        let hint = find(dir.path(), "node").unwrap();
        assert!(
            !hint.asked.chars().any(char::is_control),
            "{:?}",
            hint.asked
        );
        assert_eq!(hint.asked.chars().count(), 64);
    }

    #[test]
    fn nvm_codenames_node_version_and_cargos_rust_version_are_read() {
        let dir = project(&[(".nvmrc", "lts/hydrogen\n")]);
        let hint = find(dir.path(), "node").unwrap();
        assert_eq!(
            (hint.asked.as_str(), hint.file.as_str()),
            ("18", ".nvmrc (lts/hydrogen)")
        );
        let dir = project(&[(".nvmrc", "lts/iron\n")]);
        assert_eq!(find(dir.path(), "node").unwrap().asked, "20");
        let dir = project(&[(".nvmrc", "lts/*\n")]);
        assert_eq!(find(dir.path(), "node").unwrap().asked, "24");
        let dir = project(&[(".node-version", "20.11.0\n")]);
        let hint = find(dir.path(), "node").unwrap();
        assert_eq!(
            (hint.asked.as_str(), hint.file.as_str()),
            ("20.11.0", ".node-version")
        );
        let dir = project(&[(
            "Cargo.toml",
            "[package]\nname = \"app\"\nrust-version = \"1.80\"\n",
        )]);
        let hint = find(dir.path(), "rust").unwrap();
        assert_eq!(
            (hint.asked.as_str(), hint.file.as_str()),
            (">=1.80", "Cargo.toml (rust-version)")
        );
    }
}
