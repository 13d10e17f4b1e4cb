//! `sandbox stats`: running sandboxes' use, as `podman stats`: CPU %, memory (and its limit),
//! pids, network and block I/O, refreshed every second (or once with --no-stream).

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cli::args::{GlobalArgs, StatsArgs};
use crate::cli::errors::CliError;
use crate::cli::format;
use crate::runtime::cgroups::metering;
use crate::runtime::cgroups::metering::Sample;
use crate::runtime::state::{self, ContainerState};
use crate::runtime::RuntimeError;
use crate::settings::limits::human_size;

#[derive(Serialize)]
struct Row {
    id: String,
    project: String,
    cpu_percent: f64,
    #[serde(flatten)]
    sample: Sample,
}

/// The sandboxes asked for (all running ones without ids), by id prefix.
fn chosen(global: &GlobalArgs, ids: &[String]) -> Result<Vec<ContainerState>, CliError> {
    let running = state::running(&global.locations().store_root()?.join("containers"));
    if ids.is_empty() {
        return Ok(running);
    }
    ids.iter()
        .map(|id| {
            running
                .iter()
                .find(|s| s.id.starts_with(id.as_str()))
                .cloned()
                .ok_or_else(|| {
                    RuntimeError::NoSuchContainer {
                        query: format!("with id {id}"),
                    }
                    .into()
                })
        })
        .collect()
}

fn rows(
    containers: &[ContainerState],
    delegated: &[(crate::settings::limits::Controller, std::path::PathBuf)],
    before: &HashMap<String, (Instant, u64)>,
) -> Vec<Row> {
    containers
        .iter()
        .filter(|c| c.is_running())
        .map(|c| {
            let sample = metering::sample(c, delegated);
            let cpu_percent = before.get(&c.id).map_or(0.0, |(when, cpu)| {
                let wall = when.elapsed().as_micros().max(1) as f64;
                (sample.cpu_us.saturating_sub(*cpu)) as f64 / wall * 100.0
            });
            Row {
                id: c.id.clone(),
                project: c.project_dir.display().to_string(),
                cpu_percent,
                sample,
            }
        })
        .collect()
}

fn table(rows: &[Row]) -> String {
    let mut lines = vec![vec![
        "ID".to_owned(),
        "CPU %".into(),
        "MEM USAGE / LIMIT".into(),
        "PIDS".into(),
        "NET I/O".into(),
        "BLOCK I/O".into(),
        "PROJECT".into(),
    ]];
    for r in rows {
        let s = &r.sample;
        lines.push(vec![
            r.id.clone(),
            format!("{:.2}%", r.cpu_percent),
            format!(
                "{} / {}",
                human_size(s.memory),
                s.memory_limit.map_or_else(|| "-".to_owned(), human_size)
            ),
            s.pids.to_string(),
            format!("{} / {}", human_size(s.net_in), human_size(s.net_out)),
            format!(
                "{} / {}",
                human_size(s.read_bytes),
                human_size(s.written_bytes)
            ),
            r.project.clone(),
        ]);
    }
    format::table(&lines)
}

#[allow(clippy::print_stdout)]
pub fn run(global: &GlobalArgs, args: &StatsArgs) -> Result<(), CliError> {
    let delegated = crate::config::user::cgroups_v1()?;
    let containers = chosen(global, &args.ids)?;
    let first = rows(&containers, &delegated, &HashMap::new());
    let mut before: HashMap<String, (Instant, u64)> = first
        .iter()
        .map(|r| (r.id.clone(), (Instant::now(), r.sample.cpu_us)))
        .collect();
    let clear = std::io::stdout().is_terminal() && !args.no_stream && !args.json;
    loop {
        // CPU % needs two samples: the first a second ago.
        std::thread::sleep(Duration::from_secs(1));
        let containers = chosen(global, &args.ids)?;
        let now = rows(&containers, &delegated, &before);
        if args.json {
            println!("{}", format::json(&now)?);
        } else {
            if clear {
                print!("\x1b[H\x1b[2J");
            }
            print!("{}", table(&now));
        }
        if args.no_stream {
            return Ok(());
        }
        before = now
            .iter()
            .map(|r| (r.id.clone(), (Instant::now(), r.sample.cpu_us)))
            .collect();
    }
}
