//! Image config JSON (Env, User, WorkingDir, diff_ids).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((layers, body)) = data.split_first() else { return };
    let _ = sandbox::image::manifest::parse_config(body, usize::from(*layers % 8), "fuzz/app:1");
});
