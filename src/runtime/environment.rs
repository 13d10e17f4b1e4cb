//! The environment a sandbox's command gets, built in one order for `run`, `enter` and setup
//! steps: a default PATH, the image's `Env`, then sandbox.toml's (the template's, then the
//! project's, with `~/` as the home inside); callers then add their own on top.

use std::path::Path;

/// Ordered `KEY=VALUE` pairs; a later `set` of a key replaces the earlier one.
#[derive(Default)]
pub struct Environment(Vec<(String, String)>);

impl Environment {
    /// PATH, the image's variables, then the project's (`~/` expanded against `home`).
    pub fn base(
        image_env: &[String],
        defaults: &[(String, String)],
        project_env: &[(String, String)],
        home: &Path,
    ) -> Self {
        let mut env = Self::default();
        env.set(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        );
        for pair in image_env {
            if let Some((k, v)) = pair.split_once('=') {
                env.set(k, v);
            }
        }
        // A template's env on the user's own image fills only what the image leaves unset:
        // the image's JAVA_HOME is where its JDK is.
        // A value that names its own key (`PATH = "~/go/bin:$PATH"`) extends the image's.
        for (key, value) in defaults {
            let set_by_image = image_env
                .iter()
                .any(|pair| pair.split_once('=').is_some_and(|(k, _)| k == key));
            if !set_by_image || refers_to_itself(key, value) {
                env.extend(key, value, home);
            }
        }
        for (key, value) in project_env {
            env.extend(key, value, home);
        }
        env
    }

    /// Sets `key` to `value` with `~/` expanded at its start (for a `...PATH` list, at the
    /// start of each `:`-separated part) and `$KEY` (or `${KEY}`) replaced by the value it had.
    fn extend(&mut self, key: &str, value: &str, home: &Path) {
        let expanded = if key.ends_with("PATH") {
            let parts: Vec<String> = value.split(':').map(|p| expand_home(p, home)).collect();
            parts.join(":")
        } else {
            expand_home(value, home)
        };
        let before = self.get(key).unwrap_or_default().to_owned();
        let value = expanded
            .replace(&format!("${{{key}}}"), &before)
            .replace(&format!("${key}"), &before);
        self.set(key, &value);
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.0.retain(|(k, _)| k != key);
        self.0.push((key.to_owned(), value.to_owned()));
    }

    pub fn remove(&mut self, key: &str) {
        self.0.retain(|(k, _)| k != key);
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn into_vec(self) -> Vec<(String, String)> {
        self.0
    }
}

fn refers_to_itself(key: &str, value: &str) -> bool {
    value.contains(&format!("${key}")) || value.contains(&format!("${{{key}}}"))
}

/// `~/x` as `home/x`, `~` as `home`; anything else as it is.
pub fn expand_home(value: &str, home: &Path) -> String {
    match value.strip_prefix("~/") {
        Some(rest) => home.join(rest).display().to_string(),
        None if value == "~" => home.display().to_string(),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_sources_win_and_home_is_expanded() {
        let env = Environment::base(
            &["PATH=/image/bin".into(), "LANG=C".into()],
            &[],
            &[
                ("CARGO_HOME".into(), "~/.cargo".into()),
                ("LANG".into(), "C.UTF-8".into()),
            ],
            Path::new("/home/dev"),
        )
        .into_vec();
        assert_eq!(
            env,
            [
                ("PATH".to_owned(), "/image/bin".to_owned()),
                ("CARGO_HOME".into(), "/home/dev/.cargo".into()),
                ("LANG".into(), "C.UTF-8".into()),
            ]
        );
    }

    #[test]
    fn a_path_that_names_itself_extends_the_images() {
        let env = Environment::base(
            &["PATH=/usr/local/go/bin:/usr/bin".into()],
            &[("PATH".into(), "~/go/bin:$PATH".into())],
            &[("PATH".into(), "${PATH}:~/tools".into())],
            Path::new("/home/dev"),
        );
        assert_eq!(
            env.get("PATH"),
            Some("/home/dev/go/bin:/usr/local/go/bin:/usr/bin:/home/dev/tools")
        );
        // Another key's `$NAME` stays as written; only a PATH list has a home in each part.
        let env = Environment::base(
            &[],
            &[],
            &[
                ("URL".into(), "http://x:8080/$PATH".into()),
                ("REPO".into(), "ssh://host:~/repo".into()),
            ],
            Path::new("/home/dev"),
        );
        assert_eq!(env.get("URL"), Some("http://x:8080/$PATH"));
        assert_eq!(env.get("REPO"), Some("ssh://host:~/repo"));
    }

    #[test]
    fn a_templates_defaults_fill_only_what_the_image_leaves_unset() {
        let env = Environment::base(
            &["JAVA_HOME=/usr/lib/jvm/image-jdk".into()],
            &[
                ("JAVA_HOME".into(), "/opt/java/openjdk".into()),
                ("MAVEN_CONFIG".into(), "~/.m2".into()),
            ],
            &[("MAVEN_OPTS".into(), "-Xmx1g".into())],
            Path::new("/home/dev"),
        )
        .into_vec();
        let get = |k: &str| {
            env.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("JAVA_HOME"), Some("/usr/lib/jvm/image-jdk"));
        assert_eq!(get("MAVEN_CONFIG"), Some("/home/dev/.m2"));
        assert_eq!(get("MAVEN_OPTS"), Some("-Xmx1g"));
    }
}
