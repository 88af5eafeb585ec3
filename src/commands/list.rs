//! `rdsiam list`: proxies, clusters and instances in the region, with IAM
//! auth on or off.

use anyhow::Result;

use crate::aws;
use crate::cli::{ListArgs, TableOutput};
use crate::endpoint::{self, Endpoint};
use crate::output::{print, print_json, table};

use super::runtime;

pub fn run(args: ListArgs) -> Result<u8> {
    let settings = crate::flags::aws_only(&args.aws)?;
    let endpoints = runtime()?.block_on(async {
        let aws = aws::load(&settings).await?;
        let rds = aws.rds()?;
        let (proxies, clusters, instances) = tokio::try_join!(
            endpoint::list_proxies(&rds),
            endpoint::list_clusters(&rds),
            endpoint::list_instances(&rds),
        )
        .map_err(|err| endpoint::naming_endpoint(err, &aws.rds_endpoint()))?;
        anyhow::Ok([proxies, clusters, instances].concat())
    })?;
    match args.output {
        TableOutput::Json => print_json(&endpoints)?,
        TableOutput::Table => print(&format!("{}\n", render(&endpoints)))?,
    }
    Ok(0)
}

fn yes_no(value: Option<bool>) -> &'static str {
    match value {
        Some(true) => "on",
        Some(false) => "off",
        None => "-",
    }
}

fn render(endpoints: &[Endpoint]) -> String {
    if endpoints.is_empty() {
        return "no proxies, clusters or instances in this region".to_owned();
    }
    let mut t = table(&[
        "kind",
        "name",
        "endpoint",
        "port",
        "engine",
        "status",
        "iam auth",
        "tls required",
    ]);
    for e in endpoints {
        t.add_row(vec![
            e.kind.to_string(),
            e.name.clone(),
            e.host.clone(),
            e.port.to_string(),
            e.engine.clone().unwrap_or_default(),
            e.status.clone().unwrap_or_default(),
            yes_no(e.iam).to_owned(),
            yes_no(e.require_tls).to_owned(),
        ]);
    }
    t.to_string()
}
