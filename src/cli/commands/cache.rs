//! `sandbox cache ls | rm NAME`: the persistent dirs (`[caches]`) under
//! `$XDG_CACHE_HOME/sandbox/caches/<toolchain>/<name>`, shared by a toolchain's projects.

use std::path::{Path, PathBuf};

use crate::cli::args::CacheCommand;
use crate::cli::errors::CliError;
use crate::cli::format;

/// `$XDG_CACHE_HOME/sandbox/caches`; `None` when neither it nor HOME is set.
pub fn caches_root() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("sandbox").join("caches"))
}

/// Every cache as (`toolchain/name`, path).
fn all() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let Some(Ok(groups)) = caches_root().map(fs_err::read_dir) else {
        return out;
    };
    for group in groups.flatten() {
        let Ok(names) = fs_err::read_dir(group.path()) else {
            continue;
        };
        for name in names.flatten() {
            out.push((
                format!(
                    "{}/{}",
                    group.file_name().to_string_lossy(),
                    name.file_name().to_string_lossy()
                ),
                name.path(),
            ));
        }
    }
    out.sort();
    out
}

/// Bytes under `path`, not following symlinks.
fn size(path: &Path) -> u64 {
    let Ok(meta) = fs_err::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    fs_err::read_dir(path)
        .map(|entries| entries.flatten().map(|e| size(&e.path())).sum())
        .unwrap_or(0)
}

#[allow(clippy::print_stdout)]
pub fn run(command: &CacheCommand) -> Result<(), CliError> {
    match command {
        CacheCommand::Ls => {
            let mut rows = vec![vec!["CACHE".to_owned(), "SIZE".into(), "PATH".into()]];
            for (name, path) in all() {
                rows.push(vec![
                    name,
                    format::size(size(&path)),
                    path.display().to_string(),
                ]);
            }
            print!("{}", format::table(&rows));
            Ok(())
        }
        CacheCommand::Rm { names } => {
            let caches = all();
            for wanted in names {
                let matches: Vec<&(String, PathBuf)> = caches
                    .iter()
                    .filter(|(name, _)| {
                        name == wanted || name.rsplit('/').next() == Some(wanted.as_str())
                    })
                    .collect();
                let (name, path) = match matches.as_slice() {
                    [one] => *one,
                    [] => {
                        return Err(CliError::Usage {
                            message: format!("no cache `{wanted}`"),
                            hint: Some("`sandbox cache ls` lists them".into()),
                        })
                    }
                    several => {
                        return Err(CliError::Usage {
                            message: format!(
                                "`{wanted}` names several caches: {}",
                                several
                                    .iter()
                                    .map(|(n, _)| n.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                            hint: Some("name one as TOOLCHAIN/NAME".into()),
                        })
                    }
                };
                let freed = size(path);
                fs_err::remove_dir_all(path)?;
                println!("removed cache {name} ({} freed)", format::size(freed));
            }
            Ok(())
        }
    }
}
