//! Builds the attack-detection stage from each route's `policy.inspect` block.

use portcullis_config::{Config, FileOverCap};
use portcullis_inspect::{InspectStage, Inspector, OverCap, RouteInspection};

/// The inspection stage for this configuration generation, or `None` if no route inspects.
pub(crate) fn stage(config: &Config) -> Option<InspectStage> {
    let routes: Vec<_> = config
        .routes
        .iter()
        .filter_map(|r| {
            let i = r.inspect.as_ref()?;
            let over_cap = match i.on_body_over_cap {
                FileOverCap::Pass => OverCap::Pass,
                _ => OverCap::Reject,
            };
            let ri =
                RouteInspection::new(&i.policy, Inspector::new(i.compiled.clone()), over_cap, r.max_request_body_bytes);
            Some((r.name.clone(), ri))
        })
        .collect();
    (!routes.is_empty()).then(|| InspectStage::new(routes))
}
