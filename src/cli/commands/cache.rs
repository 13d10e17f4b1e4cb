//! `sandbox cache ls | rm NAME`: the persistent dirs (`[caches]`) under
//! `$XDG_CACHE_HOME/sandbox/caches/<toolchain>/<name>` (with `--root DIR`, `DIR/caches/...`),
//! shared by a toolchain's projects.

use std::path::{Path, PathBuf};

use crate::cli::args::{CacheCommand, GlobalArgs};
use crate::cli::errors::CliError;
use crate::cli::format;

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
pub fn run(global: &GlobalArgs, command: &CacheCommand) -> Result<(), CliError> {
    match command {
        CacheCommand::Ls => {
            let mut rows = vec![vec!["CACHE".to_owned(), "SIZE".into(), "PATH".into()]];
            for (name, path) in crate::project::caches::list(&global.locations()) {
                rows.push(vec![
                    name,
                    format::size(size(&path)),
                    path.display().to_string(),
                ]);
            }
            print!("{}", format::table(&rows));
            if let Some(dir) = global.locations().caches_root() {
                println!(
                    "caches: {}{}",
                    dir.display(),
                    if global.root.is_some() {
                        " (in the store --root names)"
                    } else {
                        ""
                    }
                );
            }
            Ok(())
        }
        CacheCommand::Rm { names } => {
            remove_leftovers(global)?;
            let caches = crate::project::caches::list(&global.locations());
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
                remove_cache(path).map_err(|e| {
                    let aside = path.with_file_name(format!(
                        ".{}.removing",
                        path.file_name().unwrap_or_default().to_string_lossy()
                    ));
                    CliError::Usage {
                        message: format!(
                            "removing cache {name} stopped: {e}; what remains ({}) is in {}, out of use",
                            format::size(size(&aside)),
                            aside.display()
                        ),
                        hint: Some(
                            "the next `sandbox cache rm` finishes it once the cause is fixed"
                                .into(),
                        ),
                    }
                })?;
                println!("removed cache {name} ({} freed)", format::size(freed));
            }
            Ok(())
        }
    }
}

/// Removes a cache whole. Toolchains make theirs read-only (Go's module cache: 0555 dirs), so
/// its dirs are made writable first; it is moved aside before, so an interrupted removal
/// leaves no half cache in use (`ls` skips the hidden name, the next `rm` of it finishes).
fn remove_cache(path: &std::path::Path) -> std::io::Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let aside = path.with_file_name(format!(".{name}.removing"));
    fs_err::rename(path, &aside)?;
    open_up_and_remove(&aside)
}

/// What interrupted removals moved aside.
fn remove_leftovers(global: &GlobalArgs) -> std::io::Result<()> {
    let Some(Ok(groups)) = global.locations().caches_root().map(fs_err::read_dir) else {
        return Ok(());
    };
    for group in groups.flatten() {
        for entry in fs_err::read_dir(group.path())?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(".removing") {
                open_up_and_remove(&entry.path())?;
            }
        }
    }
    Ok(())
}

fn open_up_and_remove(aside: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut stack = vec![aside.to_owned()];
    while let Some(dir) = stack.pop() {
        // Links are never followed: only dirs of the cache itself are opened up.
        let meta = fs_err::symlink_metadata(&dir)?;
        if !meta.is_dir() {
            continue;
        }
        fs_err::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        for entry in fs_err::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    fs_err::remove_dir_all(aside)
}
