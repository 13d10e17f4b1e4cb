//! `sandbox images [--json]`

use serde::Serialize;

use crate::cli::args::{GlobalArgs, ImagesArgs};
use crate::cli::errors::CliError;
use crate::cli::format;
use crate::project::access;

#[derive(Serialize)]
struct ImageView<'a> {
    reference: &'a str,
    digest: String,
    manifest_digest: String,
    config_digest: String,
    platform: &'a str,
    source: &'a str,
    layers: Vec<String>,
    size: u64,
    pulled: u64,
}

#[allow(clippy::print_stdout)]
pub fn run(global: &GlobalArgs, args: &ImagesArgs) -> Result<(), CliError> {
    let store = access::open_store(&global.locations())?;
    let images = store.images()?;
    if args.json {
        let views: Vec<ImageView<'_>> = images
            .iter()
            .map(|i| ImageView {
                reference: &i.reference,
                digest: i.resolved_digest.to_string(),
                manifest_digest: i.manifest_digest.to_string(),
                config_digest: i.config_digest.to_string(),
                platform: &i.platform,
                source: &i.source,
                layers: i.layers.iter().map(|l| l.diff_id.to_string()).collect(),
                size: i.size,
                pulled: i.pulled,
            })
            .collect();
        let text = format::json(&views)?;
        println!("{text}");
        return Ok(());
    }
    let mut rows = vec![vec![
        "REFERENCE".to_owned(),
        "DIGEST".into(),
        "SIZE".into(),
        "PULLED".into(),
    ]];
    for image in &images {
        rows.push(vec![
            image.reference.clone(),
            image.resolved_digest.short().to_owned(),
            format::size(image.size),
            format::ago(image.pulled),
        ]);
    }
    print!("{}", format::table(&rows));
    Ok(())
}
