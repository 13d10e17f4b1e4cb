//! sandbox.toml from a cloned project: errors must point into the file, never panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|text: &str| {
    let file = std::path::Path::new("/nonexistent/project/sandbox.toml");
    if let Err(error) = sandbox::config::project::parse(file, text.to_owned()) {
        let _ = error.to_string();
        let _ = error.hint();
    }
});
