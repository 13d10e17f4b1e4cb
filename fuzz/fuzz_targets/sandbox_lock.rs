//! sandbox.lock in the project dir, writable from inside the sandbox.
#![no_main]
libfuzzer_sys::fuzz_target!(|text: &str| {
    let file = std::path::Path::new("/nonexistent/project/sandbox.lock");
    if let Err(error) = sandbox::config::lock::parse(file, text) {
        let _ = error.to_string();
    }
});
