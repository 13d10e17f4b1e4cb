//! Image references from sandbox.toml, sandbox.lock and the command line.
#![no_main]
libfuzzer_sys::fuzz_target!(|text: &str| {
    if let Ok(reference) = sandbox::image::Reference::parse(text) {
        // What parsed prints and parses back the same.
        let again = sandbox::image::Reference::parse(&reference.to_string());
        assert!(again.is_ok(), "{reference} does not parse back");
    }
});
