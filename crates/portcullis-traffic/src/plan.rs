//! [`Plan`]: what a consumer bought — rate limits, quotas and the routes it may call.

use std::collections::HashSet;

use crate::error::{ConfigError, check_name};
use crate::quota::{QuotaSet, QuotaSpec};
use crate::route::RouteLimits;
use crate::spec::LimitSpec;

/// Which routes a plan allows.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AllowedRoutes {
    /// Every route.
    All,
    /// Only these route ids.
    Only(HashSet<String>),
}

/// A plan: rates, quotas and allowed routes, checked by the traffic stage for consumers on it.
#[derive(Clone, Debug)]
pub struct Plan {
    name: String,
    limits: RouteLimits,
    quotas: QuotaSet,
    routes: AllowedRoutes,
}

impl Plan {
    /// A plan. Its limit and quota names should include the plan name (e.g. `gold/burst`) so two
    /// plans never share buckets.
    ///
    /// # Errors
    /// A bad plan name, or duplicate limit or quota names.
    pub fn new(
        name: &str,
        limits: Vec<LimitSpec>,
        emit_headers: bool,
        quotas: Vec<QuotaSpec>,
        routes: AllowedRoutes,
    ) -> Result<Self, ConfigError> {
        check_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            limits: RouteLimits::new(limits, emit_headers)?,
            quotas: QuotaSet::new(quotas)?,
            routes,
        })
    }

    /// The plan's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its rate limits.
    #[must_use]
    pub fn limits(&self) -> &RouteLimits {
        &self.limits
    }

    /// Its quotas.
    #[must_use]
    pub fn quotas(&self) -> &QuotaSet {
        &self.quotas
    }

    /// Whether the plan allows `route_id` (a refusal is an authorization outcome, 403, not 429).
    #[must_use]
    pub fn permits_route(&self, route_id: &str) -> bool {
        match &self.routes {
            AllowedRoutes::All => true,
            AllowedRoutes::Only(ids) => ids.contains(route_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_routes_accept_and_reject() {
        let only = AllowedRoutes::Only(["orders.list".to_owned()].into());
        let p = Plan::new("free", vec![], false, vec![], only).unwrap();
        assert!(p.permits_route("orders.list"));
        assert!(!p.permits_route("admin.users"));
        let all = Plan::new("gold", vec![], false, vec![], AllowedRoutes::All).unwrap();
        assert!(all.permits_route("admin.users"));
        assert!(Plan::new("bad name", vec![], false, vec![], AllowedRoutes::All).is_err());
    }
}
