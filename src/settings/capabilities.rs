//! Which capabilities container root holds: podman's default set, changed by `--cap-add` and
//! `--cap-drop` (or a trusted sandbox.toml's `[security]`). The user's own commands hold none.

use caps::Capability;

/// podman's default set for a container's root.
pub const CONTAINER_ROOT: [Capability; 11] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FOWNER,
    Capability::CAP_FSETID,
    Capability::CAP_KILL,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETGID,
    Capability::CAP_SETPCAP,
    Capability::CAP_SETUID,
    Capability::CAP_SYS_CHROOT,
];

/// A capability named on the command line or in sandbox.toml: `NET_ADMIN`, `cap_net_admin`,
/// or `ALL`. The error names the closest known one.
pub fn parse(name: &str) -> Result<Vec<Capability>, String> {
    let upper = name.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(caps::all().into_iter().collect());
    }
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    full.parse::<Capability>().map(|c| vec![c]).map_err(|_| {
        let known: Vec<String> = caps::all()
            .iter()
            .map(|c| c.to_string().trim_start_matches("CAP_").to_owned())
            .collect();
        let wanted = full.trim_start_matches("CAP_");
        let closest = known
            .iter()
            .min_by_key(|k| strsim::levenshtein(k, wanted))
            .cloned()
            .unwrap_or_default();
        format!("unknown capability `{name}`; did you mean `{closest}`?")
    })
}

/// Container root's set: the default, plus `add`, minus `drop` (a drop wins), sorted.
pub fn container_root(add: &[Capability], drop: &[Capability]) -> Vec<Capability> {
    let mut set: Vec<Capability> = CONTAINER_ROOT
        .iter()
        .chain(add)
        .filter(|c| !drop.contains(c))
        .copied()
        .collect();
    set.sort_by_key(|c| c.index());
    set.dedup();
    set
}

/// The set as `ps`/podman show it: `CHOWN,DAC_OVERRIDE,...`.
pub fn names(set: &[Capability]) -> String {
    set.iter()
        .map(|c| c.to_string().trim_start_matches("CAP_").to_owned())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_with_or_without_prefix_and_typos_get_a_suggestion() {
        assert_eq!(parse("net_admin").unwrap(), vec![Capability::CAP_NET_ADMIN]);
        assert_eq!(
            parse("CAP_SYS_PTRACE").unwrap(),
            vec![Capability::CAP_SYS_PTRACE]
        );
        assert!(parse("all").unwrap().len() > 30);
        let error = parse("NET_ADMN").unwrap_err();
        assert!(error.contains("did you mean `NET_ADMIN`"), "{error}");
    }

    #[test]
    fn container_root_is_podmans_set_with_adds_and_drops() {
        let set = container_root(&[Capability::CAP_NET_ADMIN], &[Capability::CAP_CHOWN]);
        assert!(set.contains(&Capability::CAP_NET_ADMIN));
        assert!(!set.contains(&Capability::CAP_CHOWN));
        assert_eq!(set.len(), 11);
        assert!(!container_root(&[], &[]).contains(&Capability::CAP_SYS_ADMIN));
    }
}
