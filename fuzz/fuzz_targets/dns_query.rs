//! A DNS query from inside the sandbox, as the allow-list's resolver reads it: it is read as
//! one question or dropped, and the answer to it echoes that question whole.
#![no_main]
use sandbox::runtime::net::egress::dns::parse_query;
use sandbox::runtime::net::egress::dns::response;
use sandbox::runtime::net::egress::dns::Answer;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some(question) = parse_query(data) else {
        return;
    };
    // Names are what the resolver matches against the allow-list: printable ASCII, as long as
    // DNS allows.
    assert!(question.name.len() <= 255, "{:?}", question.name);
    assert!(
        question.name.bytes().all(|b| (0x21..=0x7e).contains(&b)),
        "{:?}",
        question.name
    );
    for answer in [
        Answer::Addresses(vec![std::net::Ipv4Addr::new(10, 0, 0, 1)]),
        Answer::Addresses(Vec::new()),
        Answer::NoSuchName,
        Answer::Failed,
    ] {
        let reply = response(&question, &answer);
        assert!(reply.len() >= 12 && reply.len() <= 512, "{} bytes", reply.len());
        assert_eq!(reply[..2], data[..2], "the reply has the query's id");
    }
});
