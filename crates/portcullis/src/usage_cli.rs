//! `portcullis usage`: requests the upstream served, per consumer and route, over a month or a
//! day, read straight from the store the config names (`identity.store`). Counts reach the store
//! every `traffic.usage.flush_interval` (and at shutdown), so a running gateway's last few seconds
//! may be missing; `GET /v1/usage` on the admin API flushes that node first.

use std::path::Path;

use anyhow::Context;
use clap::ValueEnum;
use portcullis_store::{Store, StoreConfig, UsageFilter, UsageLine};

/// Output format.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum UsageFormat {
    Csv,
    Json,
}

pub(crate) async fn usage(
    config: &Path,
    period: String,
    consumer: Option<String>,
    route: Option<String>,
    format: UsageFormat,
) -> anyhow::Result<()> {
    let cfg = portcullis_config::load(config).map_err(|e| anyhow::anyhow!("{} is not valid\n{e}", config.display()))?;
    let identity =
        cfg.identity.as_deref().context("usage is stored per consumer: the config has no `identity` section")?;
    let store_config = match &identity.store {
        portcullis_config::StoreSettings::Sqlite { path } => StoreConfig::Sqlite { path: path.clone() },
        portcullis_config::StoreSettings::Postgres { url, pool_size, schema } => {
            StoreConfig::Postgres { url: url.clone(), pool_size: *pool_size, schema: schema.clone() }
        }
    };
    let store = Store::open(&store_config).await.context("cannot open the store")?;
    let lines = store
        .usage_report(&UsageFilter { period: period.clone(), consumer_id: consumer, route })
        .await
        .context("cannot read usage")?;
    match format {
        UsageFormat::Csv => print!("{}", UsageLine::csv(&lines)),
        UsageFormat::Json => println!("{:#}", serde_json::json!({ "period": period, "usage": lines })),
    }
    Ok(())
}
