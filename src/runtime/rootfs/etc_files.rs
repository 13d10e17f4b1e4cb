//! The files sandbox writes into a container's /etc: passwd and group entries for the user,
//! hosts, resolv.conf. Pure functions over the image's own text, which is untrusted: it is read
//! with a size cap and never through a symlink (CVE-2024-9676).

use crate::runtime::plan::launch::{Identity, Network};

/// The most we read of an image's /etc/passwd or /etc/group.
pub const READ_LIMIT: u64 = 1024 * 1024;

/// The image's passwd with the user's entry added (replacing one with the same name or uid).
pub fn passwd(image_text: &str, user: &Identity) -> String {
    let mut out = String::new();
    for line in image_text.lines() {
        let mut fields = line.split(':');
        let name = fields.next().unwrap_or("");
        let uid = fields.nth(1).and_then(|u| u.parse::<u32>().ok());
        if name == user.name || uid == Some(user.uid) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !image_text.lines().any(|l| l.starts_with("root:")) {
        out.insert_str(0, "root:x:0:0:root:/root:/bin/sh\n");
    }
    out.push_str(&format!(
        "{}:x:{}:{}:{}:{}:{}\n",
        user.name,
        user.uid,
        user.gid,
        user.name,
        user.home.display(),
        user.shell.display()
    ));
    out
}

/// The image's group file with the user's primary group added if missing.
pub fn group(image_text: &str, user: &Identity) -> String {
    let mut out = String::new();
    let mut has_gid = false;
    for line in image_text.lines() {
        let gid = line.split(':').nth(2).and_then(|g| g.parse::<u32>().ok());
        has_gid |= gid == Some(user.gid);
        out.push_str(line);
        out.push('\n');
    }
    if !has_gid {
        out.push_str(&format!("{}:x:{}:\n", user.name, user.gid));
    }
    out
}

/// /etc/hosts: the sandbox's hostname, and `host.containers.internal` when host loopback is
/// allowed (`host_address` is then what reaches it).
pub fn hosts(hostname: &str, host_address: Option<&str>) -> String {
    let mut text = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
    );
    if let Some(address) = host_address {
        text.push_str(&format!(
            "{address}\thost.containers.internal host.docker.internal\n"
        ));
    }
    text
}

/// resolv.conf: the host's for `host`, the helper's forwarder for pasta and slirp4netns (so
/// names resolve whatever the host's resolver is, 127.0.0.53 included), none for `none`.
pub fn resolv_conf(network: Network, host_text: &str) -> String {
    match network {
        Network::Host => host_text.to_owned(),
        Network::Helper(helper) => format!("nameserver {}\n", helper.dns()),
        Network::None => "# sandbox: --network none has no name servers\n".to_owned(),
        Network::Relay => format!(
            "# sandbox: relayed to the host's name server\nnameserver {}\n",
            crate::runtime::net::egress::DNS_ADDRESS
        ),
        Network::Filtered => format!(
            "# sandbox: names in [network] allow resolve; others do not exist here\nnameserver {}\n",
            crate::runtime::net::egress::DNS_ADDRESS
        ),
    }
}

/// A hostname from the project dir's name: lowercase letters, digits and dashes, 1 to 63.
pub fn hostname_for(project: &std::path::Path) -> String {
    let raw = project
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let cleaned: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .trim_matches('-')
        .chars()
        .take(63)
        .collect();
    if cleaned.is_empty() {
        "sandbox".into()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Identity {
        Identity {
            uid: 1000,
            gid: 1000,
            name: "dev".into(),
            home: "/home/dev".into(),
            shell: "/bin/bash".into(),
            ids_mapped: true,
        }
    }

    #[test]
    fn passwd_gets_the_user_once() {
        let text = "root:x:0:0:root:/root:/bin/sh\ndev:x:5:5::/:/bin/false\nother:x:1000:1000::/:/bin/sh\n";
        let out = passwd(text, &me());
        assert_eq!(
            out,
            "root:x:0:0:root:/root:/bin/sh\ndev:x:1000:1000:dev:/home/dev:/bin/bash\n"
        );
        assert!(passwd("", &me()).starts_with("root:x:0:0"));
    }

    #[test]
    fn group_adds_a_missing_primary_group() {
        assert_eq!(group("root:x:0:\n", &me()), "root:x:0:\ndev:x:1000:\n");
        assert_eq!(group("staff:x:1000:\n", &me()), "staff:x:1000:\n");
    }

    #[test]
    fn hostnames_from_project_dirs() {
        assert_eq!(hostname_for("/home/me/src/My App_2".as_ref()), "my-app-2");
        assert_eq!(hostname_for("/".as_ref()), "sandbox");
    }
}
