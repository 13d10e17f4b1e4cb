//! `sandbox login REGISTRY`, `sandbox logout REGISTRY`

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use crate::cli::args::{GlobalArgs, LoginArgs, LogoutArgs};
use crate::cli::errors::CliError;
use crate::cli::progress::Progress;
use crate::image::registry::client::{Connection, RegistryClient};
use crate::image::registry::credentials::{Credential, CredentialFiles, Secret};
use crate::image::Reference;
use crate::project::access;

/// Accepts `host`, `host:port` or a whole reference, and returns the registry part.
fn registry_of(text: &str) -> Result<String, CliError> {
    let trimmed = text
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = trimmed.split('/').next().unwrap_or(trimmed);
    let probe = format!("{host}/probe");
    let reference = Reference::parse(&probe).map_err(|e| CliError::Usage {
        message: format!("`{text}` is not a registry host: {e}"),
        hint: Some(
            "write it as `host` or `host:port`, e.g. `docker.io` or `127.0.0.1:5000`".into(),
        ),
    })?;
    Ok(reference.registry().to_owned())
}

#[allow(clippy::print_stderr)]
fn ask(prompt: &str, hidden: bool) -> Result<String, CliError> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(CliError::Usage {
            message: format!(
                "{} is needed, and standard input is not a terminal",
                prompt.trim_end_matches(": ")
            ),
            hint: Some("pass --username and --password-stdin".into()),
        });
    }
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let saved = if hidden {
        nix::sys::termios::tcgetattr(&stdin).ok().inspect(|t| {
            let mut quiet = t.clone();
            quiet
                .local_flags
                .remove(nix::sys::termios::LocalFlags::ECHO);
            let _ =
                nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, &quiet);
        })
    } else {
        None
    };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(t) = saved {
        let _ = nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, &t);
        eprintln!();
    }
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

#[allow(clippy::print_stdout)]
pub fn login(global: &GlobalArgs, args: &LoginArgs) -> Result<(), CliError> {
    let registry = registry_of(&args.registry)?;
    let username = match &args.username {
        Some(u) => u.clone(),
        None => ask("Username: ", false)?,
    };
    let password = if args.password_stdin {
        let mut text = String::new();
        std::io::stdin().lock().read_line(&mut text)?;
        text.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        ask("Password: ", true)?
    };
    if username.is_empty() || password.is_empty() {
        return Err(CliError::Usage {
            message: "the user name and password may not be empty".into(),
            hint: None,
        });
    }
    let credential = Credential {
        username,
        password: Secret::new(password),
    };
    let progress = Progress::new(global.quiet);
    let config = access::user_config(&progress)?;
    let client = RegistryClient::connect(&Connection {
        registry: registry.clone(),
        repository: String::new(),
        insecure: config.registries.is_insecure(&registry),
        credential: Some(credential.clone()),
        push: false,
    })?;
    client.check_login()?;
    let files = CredentialFiles::standard();
    files.store(&registry, &credential)?;
    println!(
        "logged in to {registry} (credentials in {})",
        files.own_path()?.display()
    );
    Ok(())
}

#[allow(clippy::print_stdout)]
pub fn logout(_global: &GlobalArgs, args: &LogoutArgs) -> Result<(), CliError> {
    let registry = registry_of(&args.registry)?;
    let files = CredentialFiles::standard();
    if files.remove(&registry)? {
        println!("removed the credentials for {registry}");
        Ok(())
    } else {
        Err(CliError::Usage {
            message: format!("not logged in to {registry} (nothing in {})", files.own_path()?.display()),
            hint: Some("credentials in ~/.docker/config.json or containers' auth.json are theirs to remove".into()),
        })
    }
}
