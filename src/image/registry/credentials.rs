//! Registry credentials: where they are read from, and `sandbox login`'s own file.
//!
//! Order, as the design says: sandbox's own file (`$XDG_CONFIG_HOME/sandbox/auth.json`, written by
//! `sandbox login` with mode 0600), then containers' `$XDG_RUNTIME_DIR/containers/auth.json`, then
//! `~/.docker/config.json`. All three share Docker's format: `{"auths": {"host": {"auth":
//! base64("user:password")}}}`. Credentials are looked up by the exact host contacted, so a
//! mirror never receives the upstream registry's secret.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::fsutil::atomic::write_file_atomic;
use crate::image::error::ImageError;

/// A secret string whose `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A user name and password for one registry host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub password: Secret,
}

#[derive(Default, Deserialize, Serialize)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize, Serialize)]
struct AuthEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth: Option<String>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

/// The files credentials are read from, in order of preference.
#[derive(Clone, Debug)]
pub struct CredentialFiles {
    /// sandbox's own file; `None` when neither XDG_CONFIG_HOME nor HOME is set.
    pub own: Option<PathBuf>,
    pub others: Vec<PathBuf>,
}

impl CredentialFiles {
    /// The standard locations for the current user.
    pub fn standard() -> Self {
        let config = dirs::config_dir();
        let mut others = Vec::new();
        if let Some(runtime) = dirs::runtime_dir() {
            others.push(runtime.join("containers/auth.json"));
        }
        if let Some(home) = dirs::home_dir() {
            others.push(home.join(".docker/config.json"));
        }
        Self {
            own: config.map(|c| c.join("sandbox/auth.json")),
            others,
        }
    }

    /// The credential for `host` (as contacted, e.g. `127.0.0.1:5000`), if any file has one.
    pub fn lookup(&self, host: &str) -> Result<Option<Credential>, ImageError> {
        for path in self.own.iter().chain(&self.others) {
            if let Some(found) = lookup_in(path, host)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Stores a credential in sandbox's own file (mode 0600, written atomically).
    pub fn store(&self, host: &str, credential: &Credential) -> Result<(), ImageError> {
        let mut file = read_auth_file(self.own_path()?)?.unwrap_or_default();
        let token = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            credential.username,
            credential.password.expose()
        ));
        file.auths.insert(
            host.to_owned(),
            AuthEntry {
                auth: Some(token),
                other: BTreeMap::new(),
            },
        );
        self.write_own(&file)
    }

    /// Removes `host` from sandbox's own file; `false` when it was not there.
    pub fn remove(&self, host: &str) -> Result<bool, ImageError> {
        let Some(mut file) = read_auth_file(self.own_path()?)? else {
            return Ok(false);
        };
        let removed = file.auths.remove(host).is_some();
        if removed {
            self.write_own(&file)?;
        }
        Ok(removed)
    }

    /// sandbox's own file, which `login` writes.
    pub fn own_path(&self) -> Result<&Path, ImageError> {
        self.own.as_deref().ok_or(ImageError::NoHome {
            what: "sandbox's credentials",
        })
    }

    fn write_own(&self, file: &AuthFile) -> Result<(), ImageError> {
        let own = self.own_path()?;
        let text = serde_json::to_vec_pretty(file).map_err(|source| ImageError::Encode {
            what: "the credentials file",
            source,
        })?;
        if let Some(dir) = own.parent() {
            fs_err::create_dir_all(dir)?;
        }
        write_file_atomic(own, &text, 0o600)?;
        Ok(())
    }
}

/// Docker Hub credentials are often stored under the legacy index URL.
fn keys_for(host: &str) -> Vec<String> {
    let mut keys = vec![
        host.to_owned(),
        format!("https://{host}"),
        format!("http://{host}"),
    ];
    if host == "docker.io" || host == "registry-1.docker.io" {
        keys.push("https://index.docker.io/v1/".to_owned());
        keys.push("index.docker.io".to_owned());
        keys.push("docker.io".to_owned());
    }
    keys
}

fn read_auth_file(path: &Path) -> Result<Option<AuthFile>, ImageError> {
    let text = match fs_err::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| ImageError::BadCredentialsFile {
            path: path.to_owned(),
            source: e.into(),
        })
}

fn lookup_in(path: &Path, host: &str) -> Result<Option<Credential>, ImageError> {
    let Some(file) = read_auth_file(path)? else {
        return Ok(None);
    };
    for key in keys_for(host) {
        let Some(entry) = file.auths.get(&key) else {
            continue;
        };
        let Some(auth) = &entry.auth else { continue };
        let bad = || ImageError::BadCredentialsFile {
            path: path.to_owned(),
            source: format!("the `auth` value for `{key}` is not base64 of `user:password`").into(),
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| bad())?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
        let (username, password) = decoded.split_once(':').ok_or_else(bad)?;
        return Ok(Some(Credential {
            username: username.to_owned(),
            password: Secret::new(password.to_owned()),
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let c = Credential {
            username: "me".into(),
            password: Secret::new("hunter2".into()),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn without_a_home_login_is_refused_and_nothing_is_written_here() {
        let files = CredentialFiles {
            own: None,
            others: Vec::new(),
        };
        let credential = Credential {
            username: "me".into(),
            password: Secret::new("pw".into()),
        };
        let err = files.store("registry.example", &credential).unwrap_err();
        assert!(matches!(err, ImageError::NoHome { .. }), "{err}");
        assert!(err.hint().is_some_and(|h| h.contains("HOME")));
        assert!(matches!(files.lookup("registry.example"), Ok(None)));
    }

    #[test]
    fn stores_reads_and_removes_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let files = CredentialFiles {
            own: Some(dir.path().join("sandbox/auth.json")),
            others: vec![dir.path().join("docker.json")],
        };
        fs_err::write(
            dir.path().join("docker.json"),
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"aHViOnNlY3JldA=="}},"credsStore":"x"}"#,
        )
        .unwrap();
        let hub = files.lookup("docker.io").unwrap().unwrap();
        assert_eq!(
            (hub.username.as_str(), hub.password.expose()),
            ("hub", "secret")
        );
        assert_eq!(files.lookup("127.0.0.1:5000").unwrap(), None);
        let cred = Credential {
            username: "u".into(),
            password: Secret::new("p:w".into()),
        };
        files.store("127.0.0.1:5000", &cred).unwrap();
        assert_eq!(files.lookup("127.0.0.1:5000").unwrap(), Some(cred));
        let mode = fs_err::metadata(files.own.as_ref().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(files.remove("127.0.0.1:5000").unwrap());
        assert!(!files.remove("127.0.0.1:5000").unwrap());
        assert_eq!(files.lookup("127.0.0.1:5000").unwrap(), None);
    }
}
