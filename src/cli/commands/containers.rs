//! `sandbox ps` and `sandbox stop`.

use serde::Serialize;

use crate::cli::args::{GlobalArgs, PsArgs, StopArgs};
use crate::cli::errors::CliError;
use crate::cli::format;
use crate::runtime::process::join;
use crate::runtime::state;
use crate::runtime::RuntimeError;

#[derive(Serialize)]
struct Row<'a> {
    id: &'a str,
    project: String,
    image: &'a str,
    pid: i32,
    started: u64,
    command: &'a [String],
    ports: &'a [String],
}

/// The command as `ps` shows it: the login shell of `enter`, else the words, shortened as
/// podman does (`--json` has them whole).
fn command_column(command: &[String]) -> String {
    if command.is_empty() {
        return "(shell)".into();
    }
    let joined = command.join(" ");
    match joined.char_indices().nth(30) {
        Some((at, _)) => format!("{}...", &joined[..at]),
        None => joined,
    }
}

#[allow(clippy::print_stdout)]
pub fn ps(global: &GlobalArgs, args: &PsArgs) -> Result<(), CliError> {
    let running = state::running(&global.locations().store_root()?.join("containers"));
    if args.json {
        let rows: Vec<Row<'_>> = running
            .iter()
            .map(|s| Row {
                id: &s.id,
                project: s.project_dir.display().to_string(),
                image: &s.image,
                pid: s.pid,
                started: s.started,
                command: &s.command,
                ports: &s.ports,
            })
            .collect();
        let text = format::json(&rows)?;
        println!("{text}");
        return Ok(());
    }
    let mut rows = vec![vec![
        "ID".to_owned(),
        "PROJECT".into(),
        "IMAGE".into(),
        "PID".into(),
        "STARTED".into(),
        "COMMAND".into(),
        "PORTS".into(),
    ]];
    for s in &running {
        rows.push(vec![
            s.id.clone(),
            s.project_dir.display().to_string(),
            s.image.clone(),
            s.pid.to_string(),
            format::ago(s.started),
            command_column(&s.command),
            s.ports.join(", "),
        ]);
    }
    print!("{}", format::table(&rows));
    Ok(())
}

#[allow(clippy::print_stdout)]
pub fn stop(global: &GlobalArgs, args: &StopArgs) -> Result<(), CliError> {
    let running = state::running(&global.locations().store_root()?.join("containers"));
    let target = match &args.id {
        Some(id) => running.iter().find(|s| s.id.starts_with(id.as_str())),
        None => {
            let cwd = std::env::current_dir()?;
            let project = crate::project::inputs::project_dir(&cwd);
            running.iter().rev().find(|s| s.project_dir == project)
        }
    };
    let Some(target) = target else {
        let query = args.id.as_ref().map_or_else(
            || "for this project".to_owned(),
            |id| format!("with id {id}"),
        );
        return Err(RuntimeError::NoSuchContainer { query }.into());
    };
    join::enter_user_namespace(target)?;
    let graceful = state::stop(target, std::time::Duration::from_secs(args.time));
    println!(
        "stopped {}{}",
        target.id,
        if graceful {
            ""
        } else {
            " (killed after the grace period)"
        }
    );
    Ok(())
}
