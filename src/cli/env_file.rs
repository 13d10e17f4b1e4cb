//! `--env-file` lines, read as docker and podman read them plus what `.env` files (dotenv,
//! Compose) are written with, so one file serves both: `KEY=VALUE`; `KEY` alone (your value
//! of it, when you have one); `export KEY=VALUE` (a file also meant for `source`); spaces
//! around `=`; a value in matching single or double quotes has them taken off. `#` starts a
//! comment line.

use crate::cli::errors::CliError;

/// One line: `Ok(None)` for a blank or comment line, else the variable and its value (`None`:
/// `KEY` alone). `Err` when the line names no variable.
pub fn parse_line(line: &str) -> Result<Option<(&str, Option<String>)>, ()> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let line = line
        .strip_prefix("export")
        .filter(|rest| rest.starts_with(char::is_whitespace))
        .map_or(line, str::trim_start);
    let (key, value) = match line.split_once('=') {
        Some((key, value)) => (key.trim_end(), Some(unquote(value.trim_start()))),
        None => (line, None),
    };
    if crate::config::setup::is_variable_name(key) {
        Ok(Some((key, value)))
    } else {
        Err(())
    }
}

fn unquote(value: &str) -> String {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner.to_owned();
        }
    }
    value.to_owned()
}

/// What the error says is accepted.
pub const RULES: &str = "KEY=VALUE per line (or KEY alone for your value of it); `export KEY=VALUE`, spaces around `=` and a quoted value are read as in .env files";

/// `--env-file` files, then `-e`.
pub fn environment_flags(
    args: &crate::cli::args::SandboxArgs,
) -> Result<Vec<(String, String)>, CliError> {
    let mut env = Vec::new();
    for file in &args.env_files {
        let text = crate::config::files::read(file, crate::config::files::SMALL)?;
        for (number, line) in text.lines().enumerate() {
            let Ok(parsed) = parse_line(line) else {
                return Err(CliError::Usage {
                    message: format!(
                        "{}:{}: `{}` is not a variable",
                        file.display(),
                        number + 1,
                        line.trim()
                    ),
                    hint: Some(RULES.into()),
                });
            };
            // KEY alone: the value it has here, if any (as docker reads an env file).
            if let Some((key, value)) = parsed {
                if let Some(value) = value.or_else(|| std::env::var(key).ok()) {
                    env.push((key.to_owned(), value));
                }
            }
        }
    }
    // `-e KEY` alone: the value it has here, if any (as podman).
    env.extend(args.env.iter().filter_map(|(key, value)| {
        value
            .clone()
            .or_else(|| std::env::var(key).ok())
            .map(|v| (key.clone(), v))
    }));
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_as_docker_and_dotenv_write_them() {
        let value = |line| parse_line(line).unwrap().unwrap().1;
        assert_eq!(
            parse_line("API=http://x:8080/a=b"),
            Ok(Some(("API", Some("http://x:8080/a=b".into()))))
        );
        assert_eq!(value("export MODE=dev"), Some("dev".into()));
        assert_eq!(value("MODE = dev"), Some("dev".into()));
        assert_eq!(value("NAME=\"two words\""), Some("two words".into()));
        assert_eq!(value("NAME='it''s'"), Some("it''s".into()));
        assert_eq!(value("EMPTY="), Some(String::new()));
        assert_eq!(parse_line("HOME"), Ok(Some(("HOME", None))));
        assert_eq!(
            parse_line("exported=1"),
            Ok(Some(("exported", Some("1".into()))))
        );
        assert_eq!(parse_line("  # a comment"), Ok(None));
        assert_eq!(parse_line(""), Ok(None));
        assert_eq!(parse_line("not a variable"), Err(()));
        assert_eq!(parse_line("export"), Ok(Some(("export", None))));
        assert_eq!(parse_line("=value"), Err(()));
    }
}
