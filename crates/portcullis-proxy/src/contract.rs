//! Builds the OpenAPI contract stage from each route's `policy.contract` block.

use portcullis_config::Config;
use portcullis_contract::ContractStage;

/// The contract stage for this configuration generation, or `None` if no route has a contract.
pub(crate) fn stage(config: &Config) -> Option<ContractStage> {
    let routes: Vec<_> = config.routes.iter().filter_map(|r| Some((r.name.clone(), r.contract.clone()?))).collect();
    (!routes.is_empty()).then(|| ContractStage::new(routes))
}
