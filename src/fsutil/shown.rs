//! Paths as hints show them to the user: where their config really is (`$XDG_CONFIG_HOME`
//! when set), with their home as `~`.

use std::path::Path;

/// The user's config dir (`~/.config`, or `$XDG_CONFIG_HOME`), as a hint names it.
pub fn config_dir() -> String {
    let home = dirs::home_dir();
    let config = dirs::config_dir();
    shown(config.as_deref(), home.as_deref(), "~/.config")
}

fn shown(path: Option<&Path>, home: Option<&Path>, fallback: &str) -> String {
    match (path, home) {
        (Some(path), Some(home)) => match path.strip_prefix(home) {
            Ok(rest) if rest.as_os_str().is_empty() => "~".into(),
            Ok(rest) => format!("~/{}", rest.display()),
            Err(_) => path.display().to_string(),
        },
        (Some(path), None) => path.display().to_string(),
        (None, _) => fallback.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_home_reads_as_a_tilde_and_elsewhere_as_it_is() {
        let home = Path::new("/home/dev");
        assert_eq!(
            shown(Some(Path::new("/home/dev/.config")), Some(home), "x"),
            "~/.config"
        );
        assert_eq!(
            shown(Some(Path::new("/srv/conf")), Some(home), "x"),
            "/srv/conf"
        );
        assert_eq!(shown(None, Some(home), "~/.config"), "~/.config");
    }
}
