//! What a project's sandbox is made from, each with a digest: sandbox.toml, sandbox.lock and
//! the files its setup steps copy. A running sandbox records them, so that a command joining
//! it can say what changed since it started (it runs in the old sandbox all the same).
//!
//! Built from what is read anyway: sandbox.toml's text as parsed, the lock through the config
//! reader (a regular file, size-capped), and copied files through the same digest the setup
//! key uses (beneath the project, no link followed, no FIFO opened).

use sha2::{Digest as _, Sha256};

use crate::config::files;
use crate::config::project::Project;
use crate::config::setup::SetupStep;

/// (what, digest) for sandbox.toml, sandbox.lock and each file or dir a setup step copies.
pub fn of(config: &Project) -> Vec<(String, String)> {
    let lock = config.dir.join(crate::config::lock::FILE_NAME);
    let mut sources = vec![
        ("sandbox.toml".to_owned(), text_digest(Some(&config.text))),
        (
            crate::config::lock::FILE_NAME.to_owned(),
            match files::read_optional(&lock, files::SMALL) {
                Ok(text) => text_digest(text.as_deref()),
                Err(_) => "unreadable".to_owned(),
            },
        ),
    ];
    for step in &config.setup {
        if let SetupStep::Copy { from, .. } = step {
            let digest = crate::image::copy_layer::content_digest(&config.dir, from)
                .unwrap_or_else(|_| "unreadable".to_owned());
            sources.push((
                format!("{} (copied by a setup step)", from.display()),
                digest,
            ));
        }
    }
    sources
}

fn text_digest(text: Option<&str>) -> String {
    text.map_or_else(
        || "absent".to_owned(),
        |t| format!("sha256:{:x}", Sha256::digest(t.as_bytes())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_and_copied_files_are_told_apart_by_content() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("ca.crt"), "one").unwrap();
        let text = "setup = [{ copy = \"ca.crt\", to = \"/opt/ca.crt\" }]\n[toolchain]\nimage = \"docker.io/library/debian:12\"\n";
        let file = dir.path().join("sandbox.toml");
        fs_err::write(&file, text).unwrap();
        let project = crate::config::project::parse(&file, text.into()).unwrap();
        let first = of(&project);
        assert_eq!(first[1], ("sandbox.lock".into(), "absent".into()));
        fs_err::write(dir.path().join("ca.crt"), "two").unwrap();
        fs_err::write(dir.path().join("sandbox.lock"), "version = 2\n").unwrap();
        let second = of(&project);
        assert_eq!(first[0], second[0], "sandbox.toml is the same");
        assert_ne!(first[1], second[1]);
        assert_ne!(first[2], second[2]);
        assert!(second[2].0.starts_with("ca.crt"), "{second:?}");
    }
}
