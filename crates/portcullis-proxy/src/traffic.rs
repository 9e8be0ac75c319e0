//! Glue between the config, the identity service and `portcullis-traffic`: the long-lived
//! [`TrafficService`] (built once in `Gateway::start`), the per-generation
//! [`RateLimitStage`], the token-claim lookup, and the usage flusher that drains the meter into
//! the identity store every `traffic.usage.flush_interval` (and once more at shutdown).

use std::sync::Arc;

use portcullis_config::{Config, TrafficConfig, traffic_enabled};
use portcullis_core::RequestCtx;
use portcullis_identity::{Authenticated, IdentityService};
use portcullis_traffic::{
    ClusterSettings, RateLimitStage, RedisStoreConfig, ServiceSettings, SystemClock, TrafficService, UsageMeter,
};

/// The process-wide traffic state and its flusher.
pub(crate) struct TrafficGlue {
    pub(crate) service: TrafficService,
    flusher: Option<Flusher>,
    fixed: String,
}

struct Flusher {
    meter: Arc<UsageMeter>,
    identity: IdentityService,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Drop for TrafficGlue {
    fn drop(&mut self) {
        if let Some(f) = &self.flusher {
            let _ = f.stop.send(true);
        }
    }
}

/// What of `traffic:` is fixed at start (counters' home, the in-flight cap): compared on reload.
/// The Redis URL is compared by digest, never printed.
fn fixed(config: &Config) -> String {
    let Some(t) = config.traffic.as_deref() else { return String::new() };
    let url = t.cluster.as_ref().map(|c| {
        let d = ring::digest::digest(&ring::digest::SHA256, c.redis_url.expose().as_bytes());
        d.as_ref().iter().map(|b| format!("{b:02x}")).collect::<String>()
    });
    format!("{:?}|{url:?}|{:?}|{:?}", t.cluster, t.inflight, t.usage.as_ref().map(|u| u.flush_interval))
}

/// Why the traffic service could not start.
pub(crate) fn start(
    config: &Config,
    identity: Option<&IdentityService>,
) -> Result<Option<TrafficGlue>, portcullis_traffic::ServiceError> {
    if !traffic_enabled(config) {
        return Ok(None);
    }
    let t = config.traffic.as_deref();
    let cluster = t.and_then(|t| t.cluster.as_ref()).map(|c| {
        let mut store = RedisStoreConfig::default();
        store.namespace.clone_from(&c.namespace);
        store.timeout = c.timeout;
        store.failure_threshold = c.failure_threshold;
        store.cooldown = c.cooldown;
        store.expected_nodes = c.expected_nodes;
        ClusterSettings { redis_url: c.redis_url.expose().to_owned(), store, batching: c.batching }
    });
    let settings =
        ServiceSettings { cluster, inflight: t.and_then(|t| t.inflight), clock: Arc::new(SystemClock::new()) };
    let service = TrafficService::start(settings)?;
    let flusher = match (t.and_then(|t| t.usage.as_ref()), identity) {
        (Some(u), Some(id)) => {
            let (stop, mut stopped) = tokio::sync::watch::channel(false);
            let f = Flusher { meter: service.meter().clone(), identity: id.clone(), stop };
            let (meter, store, every) = (f.meter.clone(), id.store().clone(), u.flush_interval);
            id.runtime().spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = tick.tick() => flush(&meter, &store).await,
                        _ = stopped.changed() => break,
                    }
                }
            });
            Some(f)
        }
        _ => None,
    };
    Ok(Some(TrafficGlue { service, flusher, fixed: fixed(config) }))
}

impl TrafficGlue {
    fn accepts(&self, config: &Config) -> bool {
        self.fixed == fixed(config)
    }

    /// Writes what the meter holds now (at shutdown, and for tests).
    pub(crate) async fn flush_now(&self) {
        if let Some(f) = &self.flusher {
            let (meter, store) = (f.meter.clone(), f.identity.store().clone());
            let _ = f
                .identity
                .io(async move {
                    flush(&meter, &store).await;
                    Ok(())
                })
                .await;
        }
    }
}

/// A reload may change plans and route limits, not where counters live or the in-flight cap.
pub(crate) fn reload_check(glue: Option<&TrafficGlue>, config: &Config) -> Result<(), String> {
    match glue {
        None if traffic_enabled(config) => Err("traffic (rate limits were off at start)".into()),
        Some(g) if !g.accepts(config) => Err("traffic.cluster, traffic.max_inflight or traffic.usage".into()),
        _ => Ok(()),
    }
}

/// Drains the meter into the store; on failure the rows go back into the meter (nothing is lost
/// while the store is down, within the meter's bound).
async fn flush(meter: &UsageMeter, store: &portcullis_store::Store) {
    let rows = meter.drain();
    if rows.is_empty() {
        return;
    }
    let records: Vec<portcullis_store::UsageRecord> = rows
        .iter()
        .map(|r| portcullis_store::UsageRecord {
            day: r.day.to_string(),
            consumer_id: r.consumer.clone(),
            route: r.route.clone(),
            count: r.count,
        })
        .collect();
    if let Err(e) = store.record_usage(records).await {
        tracing::warn!(error = %e, rows = rows.len(), "usage flush failed; keeping the counts for the next try");
        metrics::counter!("portcullis_usage_flush_failures_total").increment(1);
        for r in rows {
            meter.record(r.day, &r.consumer, &r.route, r.count);
        }
    }
}

/// Reads a string (or number, or boolean) claim of the authenticated token.
fn claim(ctx: &RequestCtx, name: &str) -> Option<String> {
    let v = ctx.extensions.get::<Authenticated>()?.claims()?.get(name)?;
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The stage for one config generation, if traffic control is on.
pub(crate) fn stage(config: &Config, glue: Option<&TrafficGlue>) -> Option<RateLimitStage> {
    let glue = glue?;
    Some(RateLimitStage::new(glue.service.clone(), Arc::new(TrafficConfig::policy(config))).with_claims(claim))
}
