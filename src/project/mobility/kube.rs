//! A project's prepared sandbox as a Kubernetes Job or Pod running a command (`sandbox
//! kube`). The image is the prepared sandbox that sandbox.lock pins by digest
//! (`sandbox lock --push`), so the cluster runs the same tree; the project is mounted at
//! /workspace from the volume claim named, else from this machine's project dir (hostPath),
//! which `podman kube play` runs as it is.
//!
//! The YAML is written here: block mappings and sequences, every string a double-quoted JSON
//! string (which YAML reads as the same string), so nothing in a command or a variable can
//! change the document's structure.

use crate::project::error::ProjectError;
use crate::project::files::{self, LockState};
use crate::project::locations::Locations;

/// What `sandbox kube` asks for.
pub struct KubeAsked {
    /// The command the pod runs.
    pub command: Vec<String>,
    /// A Pod rather than a Job.
    pub pod: bool,
    /// The volume claim holding the project; else this machine's project dir (hostPath).
    pub volume_claim: Option<String>,
}

/// Where the project is mounted in the pod.
pub const WORKSPACE: &str = "/workspace";

/// A YAML value.
enum Yaml {
    Str(String),
    Int(u64),
    Map(Vec<(&'static str, Yaml)>),
    List(Vec<Yaml>),
}

fn s(text: impl Into<String>) -> Yaml {
    Yaml::Str(text.into())
}

fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

/// Writes `value` at `indent`, as the value of a key or item already written.
fn emit(out: &mut String, value: &Yaml, indent: usize) {
    let pad = " ".repeat(indent);
    match value {
        Yaml::Str(text) => {
            out.push(' ');
            out.push_str(&quoted(text));
            out.push('\n');
        }
        Yaml::Int(n) => out.push_str(&format!(" {n}\n")),
        Yaml::Map(entries) if entries.is_empty() => out.push_str(" {}\n"),
        Yaml::List(items) if items.is_empty() => out.push_str(" []\n"),
        Yaml::Map(entries) => {
            out.push('\n');
            for (key, value) in entries {
                out.push_str(&format!("{pad}{key}:"));
                emit(out, value, indent + 2);
            }
        }
        Yaml::List(items) => {
            out.push('\n');
            for item in items {
                match item {
                    Yaml::Map(entries) if !entries.is_empty() => {
                        // `- key: value` then the other keys under it.
                        for (i, (key, value)) in entries.iter().enumerate() {
                            let lead = if i == 0 {
                                format!("{pad}- ")
                            } else {
                                format!("{pad}  ")
                            };
                            out.push_str(&format!("{lead}{key}:"));
                            emit(out, value, indent + 4);
                        }
                    }
                    other => {
                        out.push_str(&format!("{pad}-"));
                        emit(out, other, indent + 2);
                    }
                }
            }
        }
    }
}

fn document(entries: Vec<(&'static str, Yaml)>) -> String {
    let mut out = String::new();
    for (key, value) in entries {
        out.push_str(&format!("{key}:"));
        emit(&mut out, &value, 2);
    }
    out
}

/// A name Kubernetes takes: lower-case letters, digits and `-`.
fn kube_name(text: &str) -> String {
    let name: String = text
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let name = name.trim_matches('-');
    if name.is_empty() {
        "sandbox".into()
    } else {
        name.chars().take(50).collect()
    }
}

/// The project's Job or Pod, as YAML (with a comment first when it names this machine's dir).
pub fn manifest(locations: &Locations, asked: &KubeAsked) -> Result<String, ProjectError> {
    let cwd = std::env::current_dir()?;
    let config = files::load(locations, &cwd)?;
    let LockState::Current(lock) = files::lock_state(&config)? else {
        return Err(ProjectError::refused(
            "sandbox kube needs a current sandbox.lock that pins the prepared sandbox",
            "push it and pin it: `sandbox lock --push REGISTRY/REPO:TAG`",
        ));
    };
    let Some(image) = lock.resolved.prepared.clone() else {
        return Err(ProjectError::refused(
            "sandbox.lock pins no prepared sandbox, which a cluster could pull",
            "push it and pin it: `sandbox lock --push REGISTRY/REPO:TAG`",
        ));
    };
    let name = kube_name(
        &config
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    let env = Yaml::List(
        config
            .env
            .iter()
            .map(|(k, v)| {
                let value =
                    crate::runtime::environment::expand_home(v, std::path::Path::new("/root"));
                Yaml::Map(vec![("name", s(k.clone())), ("value", s(value))])
            })
            .collect(),
    );
    let mut limits = Vec::new();
    if let Some(memory) = config.limits.memory {
        limits.push(("memory", s(memory.to_string())));
    }
    if let Some(cpus) = config.limits.cpus {
        limits.push(("cpu", s(format!("{}m", (cpus * 1000.0).round() as u64))));
    }
    let volume = match &asked.volume_claim {
        Some(claim) => Yaml::Map(vec![
            ("name", s("project")),
            (
                "persistentVolumeClaim",
                Yaml::Map(vec![("claimName", s(claim.clone()))]),
            ),
        ]),
        None => Yaml::Map(vec![
            ("name", s("project")),
            (
                "hostPath",
                Yaml::Map(vec![
                    ("path", s(config.dir.display().to_string())),
                    ("type", s("Directory")),
                ]),
            ),
        ]),
    };
    let container = Yaml::Map(vec![
        ("name", s(name.clone())),
        ("image", s(image)),
        (
            "command",
            Yaml::List(asked.command.iter().map(|a| s(a.clone())).collect()),
        ),
        ("workingDir", s(WORKSPACE)),
        ("env", env),
        ("resources", Yaml::Map(vec![("limits", Yaml::Map(limits))])),
        (
            "volumeMounts",
            Yaml::List(vec![Yaml::Map(vec![
                ("name", s("project")),
                ("mountPath", s(WORKSPACE)),
            ])]),
        ),
    ]);
    let pod_spec = Yaml::Map(vec![
        ("restartPolicy", s("Never")),
        ("containers", Yaml::List(vec![container])),
        ("volumes", Yaml::List(vec![volume])),
    ]);
    let metadata = Yaml::Map(vec![
        ("name", s(name)),
        (
            "labels",
            Yaml::Map(vec![("app.kubernetes.io/managed-by", s("sandbox"))]),
        ),
    ]);
    let text = if !asked.pod {
        document(vec![
            ("apiVersion", s("batch/v1")),
            ("kind", s("Job")),
            ("metadata", metadata),
            (
                "spec",
                Yaml::Map(vec![
                    ("backoffLimit", Yaml::Int(0)),
                    ("template", Yaml::Map(vec![("spec", pod_spec)])),
                ]),
            ),
        ])
    } else {
        document(vec![
            ("apiVersion", s("v1")),
            ("kind", s("Pod")),
            ("metadata", metadata),
            ("spec", pod_spec),
        ])
    };
    let note = match &asked.volume_claim {
        Some(_) => String::new(),
        None => "# The project is this machine's dir (hostPath); on a cluster, name a volume claim holding it: sandbox kube --volume-claim NAME\n".into(),
    };
    Ok(format!("{note}{text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_quoted_so_they_cannot_change_the_document() {
        let text = document(vec![
            ("kind", s("Pod")),
            (
                "spec",
                Yaml::Map(vec![(
                    "command",
                    Yaml::List(vec![s("sh"), s("-c"), s("echo 'a: b'\n- evil: true")]),
                )]),
            ),
        ]);
        assert_eq!(
            text,
            "kind: \"Pod\"\nspec:\n  command:\n    - \"sh\"\n    - \"-c\"\n    - \"echo 'a: b'\\n- evil: true\"\n"
        );
        assert_eq!(kube_name("My App_2"), "my-app-2");
    }
}
