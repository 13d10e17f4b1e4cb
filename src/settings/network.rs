//! Network modes and published ports, as `--network`, `-p` and sandbox.toml's `[network]`
//! name them; parsed once, where the text is read.

use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
}

/// `[HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortMapping {
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl std::fmt::Display for PortMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let proto = if self.protocol == Protocol::Tcp {
            "tcp"
        } else {
            "udp"
        };
        write!(
            f,
            "{}:{}:{}/{proto}",
            self.host_ip, self.host_port, self.container_port
        )
    }
}

fn port(text: &str, whole: &str) -> Result<u16, String> {
    if text.contains('-') {
        return Err(format!(
            "`{whole}`: port ranges are not supported; publish each port with its own -p"
        ));
    }
    text.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("`{whole}`: `{text}` is not a port number (1-65535)"))
}

/// Parses a published port; the host address defaults to 127.0.0.1 (never all interfaces
/// unless asked).
pub fn parse_port(spec: &str) -> Result<PortMapping, String> {
    let (rest, protocol) = match spec.rsplit_once('/') {
        Some((rest, "tcp")) => (rest, Protocol::Tcp),
        Some((rest, "udp")) => (rest, Protocol::Udp),
        Some((_, other)) => return Err(format!("`{spec}`: protocol `{other}` is not tcp or udp")),
        None => (spec, Protocol::Tcp),
    };
    let parts: Vec<&str> = rest.rsplitn(3, ':').collect();
    let (ip, host, container) = match parts.as_slice() {
        [container, host] => ("127.0.0.1", *host, *container),
        [container, host, ip] => (*ip, *host, *container),
        _ => {
            return Err(format!(
                "`{spec}`: write it as [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp], e.g. 8080:80"
            ))
        }
    };
    let host_ip = ip
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .map_err(|_| format!("`{spec}`: `{ip}` is not an IP address"))?;
    Ok(PortMapping {
        host_ip,
        host_port: port(host, spec)?,
        container_port: port(container, spec)?,
        protocol,
    })
}

/// How a container reaches the network, as `--network` and sandbox.toml's `[network] mode`
/// name it; parsed once, where the text is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkMode {
    Relay,
    Pasta,
    Slirp4netns,
    None,
    Host,
}

impl NetworkMode {
    pub const ALL: [NetworkMode; 5] = [
        NetworkMode::Relay,
        NetworkMode::Pasta,
        NetworkMode::Slirp4netns,
        NetworkMode::None,
        NetworkMode::Host,
    ];

    pub fn name(self) -> &'static str {
        match self {
            NetworkMode::Relay => "relay",
            NetworkMode::Pasta => "pasta",
            NetworkMode::Slirp4netns => "slirp4netns",
            NetworkMode::None => "none",
            NetworkMode::Host => "host",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_published_ports() {
        let p = parse_port("8080:80").unwrap();
        assert_eq!(
            (
                p.host_ip.to_string(),
                p.host_port,
                p.container_port,
                p.protocol
            ),
            ("127.0.0.1".into(), 8080, 80, Protocol::Tcp)
        );
        let p = parse_port("0.0.0.0:5432:5432/tcp").unwrap();
        assert_eq!(p.host_ip.to_string(), "0.0.0.0");
        assert_eq!(parse_port("5353:53/udp").unwrap().protocol, Protocol::Udp);
        assert!(parse_port("8000-8010:80")
            .unwrap_err()
            .contains("ranges are not supported"));
        assert!(parse_port("80").is_err());
        assert!(parse_port("x:80").is_err());
        assert!(parse_port("8080:80/sctp").unwrap_err().contains("sctp"));
        assert!(parse_port("999999:80").is_err());
    }
}
