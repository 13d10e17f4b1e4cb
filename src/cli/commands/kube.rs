//! `sandbox kube --job|--pod -- CMD`: prints the project's prepared sandbox as a Kubernetes
//! Job or Pod running CMD (`project::mobility::kube`).

use crate::cli::args::{GlobalArgs, KubeArgs};
use crate::cli::errors::CliError;
use crate::project::mobility::kube::{self, KubeAsked};

#[allow(clippy::print_stdout)]
pub fn run(global: &GlobalArgs, args: &KubeArgs) -> Result<(), CliError> {
    let asked = KubeAsked {
        command: args.command.clone(),
        pod: args.pod,
        volume_claim: args.volume_claim.clone(),
    };
    print!("{}", kube::manifest(&global.locations(), &asked)?);
    Ok(())
}
