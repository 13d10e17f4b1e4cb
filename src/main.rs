//! `sandbox`: rootless per-project developer sandboxes from OCI images.
//!
//! Layers, in the one direction data flows: `cli` (parses, dispatches, prints) -> `config` (the
//! TOML files) -> `image` (references, registries, manifests, blobs, unpacking, the store) ->
//! `runtime` (namespaces and identity). Lower layers report through traits and never print.

mod cli;
mod config;
mod fsutil;
mod image;
mod runtime;

fn main() -> std::process::ExitCode {
    // The pause process re-executes us under this name, so it carries nothing of the command
    // that started it (argv, environment) that other users could read.
    if let Some(file) = runtime::pause::is_pause_exec() {
        runtime::pause::hold(&file);
    }
    cli::main()
}
