//! A netlink message from the kernel's netfilter queue, carrying a packet the sandbox sent:
//! read with bounds, whatever the lengths inside say.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let openings = sys::parse_openings(data);
    assert!(openings.len() <= data.len() / 16 + 1);
});
