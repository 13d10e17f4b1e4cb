//! A connection's first bytes, from inside the sandbox, as the forwarder reads them: the TLS
//! server name or HTTP Host it names passes the name check or is refused, never a byte the
//! check does not allow, and a proxy request is rewritten to origin form or refused, never a panic.
#![no_main]
use sandbox::runtime::net::egress::names::checked;
use sandbox::runtime::net::egress::sniff::opening;
use sandbox::runtime::net::egress::sniff::origin_form;
use sandbox::runtime::net::egress::sniff::Opening;

fn assert_clean(name: &str) {
    if let Ok(name) = checked(name) {
        assert!(
            !name.is_empty()
                && name.len() <= 253
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b)),
            "{name:?}"
        );
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    match opening(data) {
        Opening::Tls(Some(sni)) => assert_clean(&sni),
        Opening::Http { host, head_len, .. } => {
            assert_clean(&host);
            assert!(head_len <= data.len());
            let _ = origin_form(data, head_len);
        }
        _ => {}
    }
});
