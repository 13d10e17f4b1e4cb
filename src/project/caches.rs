//! The caches projects share (`~/.m2`, `~/.npm`, ...), one dir per toolchain and name.

use std::path::PathBuf;

use crate::project::locations::Locations;

/// Every cache as (`toolchain/name`, path).
pub fn list(locations: &Locations) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let Some(Ok(groups)) = locations.caches_root().map(fs_err::read_dir) else {
        return out;
    };
    for group in groups.flatten() {
        let Ok(names) = fs_err::read_dir(group.path()) else {
            continue;
        };
        // `.NAME.removing`: one an interrupted `cache rm` moved aside.
        for name in names
            .flatten()
            .filter(|n| !n.file_name().to_string_lossy().starts_with('.'))
        {
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
