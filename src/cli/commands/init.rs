//! `sandbox init [TOOLCHAIN[@VERSION]]` writes sandbox.toml from a template; `sandbox trust`
//! allows a sandbox.toml's requests for host access.

use crate::cli::args::{GlobalArgs, InitArgs};
use crate::cli::errors::CliError;
use crate::cli::progress::Progress;
use crate::config::project::FILE_NAME;
use crate::config::templates::{self, Template};
use crate::config::{trust as trust_list, ConfigError};
use crate::fsutil::atomic::write_file_atomic;
use crate::project::files;

/// The template and version asked for (`java`, `java@21`), or guessed from the project's files.
fn choose(
    asked: Option<&str>,
    dir: &std::path::Path,
    progress: &Progress,
) -> Result<(Template, String), CliError> {
    let Some(asked) = asked else {
        let found = templates::detect_all(dir)?;
        let mut found = found.into_iter();
        let (template, file) = found.next().ok_or_else(|| CliError::Usage {
            message: format!(
                "cannot guess the toolchain: {} has none of the files the templates look for",
                dir.display()
            ),
            hint: Some(format!(
                "name one: `sandbox init java@21`; the templates are {}",
                templates::names().join(", ")
            )),
        })?;
        progress.line(&format!(
            "found {file}: using the {} template ({})",
            template.name, template.description
        ));
        for (other, file) in found {
            progress.line(&format!(
                "found {file} too: `sandbox init --force {}` writes the {} template instead",
                other.name, other.name
            ));
        }
        let version = hinted_version(&template, dir, progress)?;
        return Ok((template, version));
    };
    let (name, version) = match asked.split_once('@') {
        Some((name, version)) => (name, Some(version)),
        None => (asked, None),
    };
    let template = templates::find(name)?.ok_or_else(|| CliError::Usage {
        message: format!("unknown toolchain `{name}`"),
        hint: Some(format!(
            "the templates are {}",
            templates::names().join(", ")
        )),
    })?;
    let version = match version {
        Some(version) => version.to_owned(),
        None => hinted_version(&template, dir, progress)?,
    };
    if !template.versions.contains_key(&version) {
        return Err(CliError::Usage {
            message: format!("{} has no version `{version}`", template.name),
            hint: Some(format!(
                "the {} template has versions {}",
                template.name,
                template.versions_sorted().join(", ")
            )),
        });
    }
    Ok((template, version))
}

/// The version the project's own files ask for (`.nvmrc`, `requires-python`, ...), said with
/// the file that decided; else the template's default. One newer than the template's newest
/// is an error: never an older toolchain than the project asks for.
fn hinted_version(
    template: &Template,
    dir: &std::path::Path,
    progress: &Progress,
) -> Result<String, CliError> {
    use crate::config::version_hints;
    let Some(hint) = version_hints::find(dir, &template.name) else {
        return Ok(template.default.clone());
    };
    if let Some(version) = version_hints::matching(template, &hint.asked) {
        progress.line(&format!(
            "{} asks for {} `{}`: version {version}",
            hint.file, template.name, hint.asked
        ));
        return Ok(version);
    }
    let versions = template.versions_sorted().join(", ");
    if let Some(image) = version_hints::image_beyond(template, &hint.asked) {
        return Err(CliError::Usage {
            message: format!(
                "{} asks for {} `{}`, newer than the template's versions ({versions})",
                hint.file, template.name, hint.asked
            ),
            hint: Some(format!(
                "name an image of that version: `image = \"{image}\"` under [toolchain] (after `sandbox init {}@{}`), or pick one of the template's: `sandbox init {}@{}`",
                template.name, template.default, template.name, template.default
            )),
        });
    }
    progress.line(&format!(
        "{} asks for {} `{}`, which names no version the template has ({versions}); using {}",
        hint.file, template.name, hint.asked, template.default
    ));
    Ok(template.default.clone())
}

/// The sandbox.toml text for `template` at `version`, with every key explained.
pub fn render(template: &Template, version: &str) -> String {
    let version_line = format!(
        "version = \"{version}\"          # {} versions: {}",
        template.name,
        template.versions_sorted().join(", ")
    );
    format!(
        r#"# sandbox.toml: this project's sandbox, for `sandbox enter` and `sandbox run -- CMD`.
{init}
#
# setup = ["..."]        shell steps run once as root, with network; each step's result is a
#                        layer, rebuilt from the first step that changed (or env or image);
#                        {{ copy = "FILE", to = "/PATH" }} brings a project file in
# workdir = "."          where commands start, relative to this directory

[toolchain]
name = "{name}"
{version_line}
# image = "REF"          any image, e.g. {image}: alone, or with name for this
#                        template's caches, and its env where the image leaves a variable
#                        unset; `version` is then ignored (the image decides it)

[env]
# NAME = "value"         set inside, after the image's and the template's own

[network]
# mode = "relay"         relay (the default) | pasta | slirp4netns | none | host (host
#                        needs `sandbox trust`)
# ports = ["8080:8080"]  [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp], on 127.0.0.1 by default
# host_loopback = false  reach the host's 127.0.0.1 services (needs `sandbox trust`)
# allow = ["@toolchain"]  only these names are reachable: @toolchain is this template's
#                        package registries; add hosts ("git.example.org", "*.corp.example:8443")
#                        or @debian, @ubuntu, @alpine; a dependency can then send nothing elsewhere
# setup_allow = ["@toolchain", "@debian"]  the same for setup steps (default: allow)

[limits]                 # through a cgroup delegated to you (`sandbox doctor` says how)
# memory = "2g"
# cpus = 1.5
# pids = 512
"#,
        init = template.init.trim_end(),
        name = template.name,
        image = template
            .versions
            .get(version)
            .map_or("docker.io/library/debian:bookworm", String::as_str),
    )
}

#[allow(clippy::print_stdout)]
pub fn run(global: &GlobalArgs, args: &InitArgs) -> Result<(), CliError> {
    let progress = Progress::new(global.quiet).verbose(global.verbose);
    let cwd = std::env::current_dir()?;
    let file = global.config.clone().unwrap_or_else(|| cwd.join(FILE_NAME));
    if file.symlink_metadata().is_ok() && !args.force {
        return Err(CliError::Usage {
            message: format!("{} exists already", file.display()),
            hint: Some("edit it, or replace it with `sandbox init --force`".into()),
        });
    }
    let dir = file.parent().unwrap_or(&cwd).to_owned();
    let (template, version) = choose(args.toolchain.as_deref(), &dir, &progress)?;
    let text = render(&template, &version);
    // Checked before it is written: a template that renders a broken file is our bug.
    crate::config::project::parse(&file, text.clone())?;
    write_file_atomic(&file, text.as_bytes(), 0o644)?;
    println!(
        "wrote {} for {} {version} ({}); `sandbox enter` opens a shell",
        file.display(),
        template.name,
        template.versions.get(&version).map_or("", String::as_str)
    );
    Ok(())
}

#[allow(clippy::print_stdout)]
pub fn trust(global: &GlobalArgs) -> Result<(), CliError> {
    let cwd = std::env::current_dir()?;
    let project = files::load(&global.locations(), &cwd)?;
    // As a run compares it: the reference's normal form.
    let prepared = crate::config::lock::read(&project)?
        .and_then(|l| l.resolved.prepared)
        .map(|p| {
            crate::image::Reference::parse(&p)
                .map(|r| r.to_string())
                .unwrap_or(p)
        });
    trust_list::trust(&project, prepared.as_deref()).map_err(|e| match e {
        ConfigError::Io(io) => CliError::Io(io),
        other => other.into(),
    })?;
    let what = if project.host_access.is_empty() {
        "it asks for no host access now".to_owned()
    } else {
        project
            .host_access
            .iter()
            .map(|a| a.value.clone())
            .collect::<Vec<_>>()
            .join("; ")
    };
    println!("trusted {} as it is now ({what})", project.file.display());
    if let Some(prepared) = prepared {
        println!("trusted the prepared sandbox sandbox.lock pins: {prepared}");
    }
    Ok(())
}
