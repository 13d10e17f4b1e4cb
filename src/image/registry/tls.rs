//! Extra CA certificates per registry host, read as podman does from `certs.d/HOST[:PORT]/*.crt`
//! under `/etc/containers`, `/etc/docker` and the user's `~/.config/containers`.

use std::path::PathBuf;

use crate::image::error::ImageError;

/// The directories searched for `HOST/*.crt`, user first.
pub fn cert_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(config) = dirs::config_dir() {
        dirs.push(config.join("containers/certs.d"));
    }
    dirs.push(PathBuf::from("/etc/containers/certs.d"));
    dirs.push(PathBuf::from("/etc/docker/certs.d"));
    dirs
}

/// The extra root certificates for `host` (as contacted, with port).
pub fn extra_roots(host: &str) -> Result<Vec<reqwest::Certificate>, ImageError> {
    let mut out = Vec::new();
    for dir in cert_dirs() {
        let dir = dir.join(host);
        let Ok(entries) = fs_err::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            if path.extension().is_none_or(|e| e != "crt") {
                continue;
            }
            let pem = fs_err::read(&path)?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ImageError::BadCertificate {
                    path: path.clone(),
                    source: e.into(),
                }
            })?;
            if certs.is_empty() {
                return Err(ImageError::BadCertificate {
                    path,
                    source: "no PEM certificate in it".into(),
                });
            }
            out.extend(certs);
        }
    }
    Ok(out)
}
