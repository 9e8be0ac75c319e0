//! One generation of configuration, compiled for the hot path. A reload builds a new `Runtime`
//! and swaps it in atomically; requests in flight finish on the one they started with.

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderValue;
use portcullis_config::Config;
use portcullis_identity::{AuthnStage, AuthzStage, IdentityService, route_policies};
use portcullis_observe::{AccessLogSink, AccessLogStage, MetricsStage};

use crate::pipeline::Pipeline;
use crate::upstream::UpstreamPool;

pub(crate) struct Runtime {
    pub(crate) config: Arc<Config>,
    /// The upstream pool of each route, by route index.
    pub(crate) route_pools: Vec<Arc<UpstreamPool>>,
    pub(crate) pipeline: Pipeline,
    /// The HSTS header of each TLS listener, by listener name.
    pub(crate) hsts: HashMap<Arc<str>, HeaderValue>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum RuntimeError {
    #[error("route {0} names an upstream that was not built")]
    MissingUpstream(String),
    #[error("upstream {upstream}: TLS setup failed: {source}")]
    UpstreamTls { upstream: String, source: rustls::Error },
}

impl Runtime {
    pub(crate) fn build(
        config: Config,
        sink: Option<AccessLogSink>,
        identity: Option<&IdentityService>,
        traffic: Option<&crate::traffic::TrafficGlue>,
    ) -> Result<Self, RuntimeError> {
        let mut pools: HashMap<String, Arc<UpstreamPool>> = HashMap::new();
        for (name, up) in &config.upstreams {
            let pool = UpstreamPool::new(up.clone(), config.timeouts.upstream_connect, config.workers)
                .map_err(|source| RuntimeError::UpstreamTls { upstream: name.clone(), source })?;
            pools.insert(name.clone(), Arc::new(pool));
        }
        // One pool per route, by index: the handler indexes this with the router's answer.
        let route_pools = config
            .routes
            .iter()
            .map(|r| {
                pools.get(&*r.upstream.name).cloned().ok_or_else(|| RuntimeError::MissingUpstream(r.name.to_string()))
            })
            .collect::<Result<_, _>>()?;
        let access_log = sink.map(|s| AccessLogStage::new(s, config.access_log.log_query));
        let overrides = identity.map(IdentityService::shaping_overrides);
        let identity = identity.map(|svc| {
            let routes = route_policies(&config);
            (AuthnStage::new(svc.clone(), routes.clone()), AuthzStage::new(svc, routes))
        });
        let rate_limit = crate::traffic::stage(&config, traffic);
        let contract = crate::contract::stage(&config);
        let inspect = crate::inspect::stage(&config);
        // Masking: one stage for every route with a `policy.exposure` block, and, when there is
        // an identity service, for the run-time shaping policies it keeps (any route may get one
        // through the admin API without a reload).
        let exposure_routes: HashMap<Arc<str>, _> =
            config.routes.iter().filter_map(|r| Some((r.name.clone(), r.exposure.clone()?))).collect();
        // Operations whose `x-portcullis-exposure` merges into the route's settings.
        let exposure_ops: HashMap<Arc<str>, HashMap<Arc<str>, _>> = config
            .routes
            .iter()
            .map(|r| {
                let ops = r.operations.iter().filter_map(|(id, o)| Some((id.clone(), o.exposure.clone()?))).collect();
                (r.name.clone(), ops)
            })
            .filter(|(_, ops): &(_, HashMap<_, _>)| !ops.is_empty())
            .collect();
        let idle = exposure_routes.is_empty() && exposure_ops.is_empty();
        let exposure = (overrides.is_some() || !idle).then(|| {
            let stage = portcullis_exposure::ExposureStage::new(Arc::new(exposure_routes))
                .with_operations(Arc::new(exposure_ops));
            match overrides {
                Some(o) => stage.with_overrides(o),
                None => stage,
            }
        });
        let pipeline =
            Pipeline::new(identity, rate_limit, contract, inspect, exposure, access_log, MetricsStage::default());
        let hsts = config
            .listeners
            .iter()
            .filter_map(|l| {
                let age = l.tls.as_ref()?.hsts_max_age?;
                let v = HeaderValue::from_str(&format!("max-age={}", age.as_secs())).ok()?;
                Some((l.name.clone(), v))
            })
            .collect();
        Ok(Self { config: Arc::new(config), route_pools, pipeline, hsts })
    }
}
