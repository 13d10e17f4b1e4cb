//! The `sandbox` binary: see the library's documentation for the layers.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    // The pause process re-executes us under this name, so it carries nothing of the command
    // that started it (argv, environment) that other users could read.
    if let Some(file) = sandbox::runtime::process::pause::is_pause_exec() {
        sandbox::runtime::process::pause::hold(&file);
    }
    // So does the pool of warm networks.
    if let Some(store) = sandbox::runtime::net::warm_pool::is_pool_exec() {
        sandbox::runtime::net::warm_pool::pool_main(&store);
    }
    // So does the process that removes a sandbox's cgroups after it ended.
    if let Some(dirs) = sandbox::runtime::cgroups::is_cleaner_exec() {
        sandbox::runtime::cgroups::cleaner_main(dirs);
    }
    sandbox::cli::main()
}
