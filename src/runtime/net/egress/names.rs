//! Names sniffed from the sandbox (a TLS server name, an HTTP Host, a CONNECT target) are
//! checked before they are matched, logged or dialed: code inside writes them, and a name such
//! as `localhost:18932 http/1.1\r\nx: a.rt.test` once matched `*.rt.test` (only the suffix was
//! compared) and went verbatim into the CONNECT line sent to the host's proxy.

use std::net::Ipv4Addr;

/// The name as it is matched and dialed (lowercased, one trailing dot gone), or why it is
/// malformed. `raw` has no port: the sniffer split it off (a TLS server name has none).
pub fn checked(raw: &str) -> Result<String, &'static str> {
    if raw.is_empty() {
        return Err("an empty name");
    }
    if !raw.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err("a byte that is not printable ASCII");
    }
    let bare = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
    if bare.parse::<Ipv4Addr>().is_ok() || crate::settings::allow_list::is_dns_name(&bare) {
        Ok(bare)
    } else {
        Err("not a host name (labels of letters, digits, `-` and `_`) or an IPv4 address")
    }
}

/// `raw` as it may be shown: escaped, and cut to a length a line can hold.
pub fn shown(raw: &str) -> String {
    let escaped: String = raw.chars().take(80).flat_map(char::escape_debug).collect();
    if raw.chars().count() > 80 {
        format!("\"{escaped}...\"")
    } else {
        format!("\"{escaped}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_and_ipv4_literals_pass_lowercased_without_the_trailing_dot() {
        assert_eq!(checked("PyPI.org.").as_deref(), Ok("pypi.org"));
        assert_eq!(
            checked("files_1.example-cdn.net").as_deref(),
            Ok("files_1.example-cdn.net")
        );
        assert_eq!(checked("10.1.2.3").as_deref(), Ok("10.1.2.3"));
    }

    #[test]
    fn smuggled_ports_spaces_line_ends_and_odd_bytes_are_malformed() {
        for raw in [
            "localhost:18932 http/1.1\r\nx: a.rt.test",
            "a.rt.test\nx",
            "evil.example:443",
            "a b.rt.test",
            "a.rt.test..",
            "",
            ".",
            "[::1]",
            "caf\u{e9}.example",
            "a..b",
            &"a".repeat(64),
            &format!("{}.example", "a.".repeat(126)),
            "a.rt.test\0",
            "-lead.example",
        ] {
            assert!(checked(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn a_malformed_name_is_shown_escaped_and_cut() {
        assert_eq!(shown("a\r\nb"), "\"a\\r\\nb\"");
        assert!(shown(&"x".repeat(200)).ends_with("...\""));
    }
}
