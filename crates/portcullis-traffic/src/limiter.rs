//! [`Limiter`]: the closed choice between process-local and Redis-shared state.

use crate::clock::Nanos;
use crate::gcra::{Decision, Gcra};
use crate::local::LocalLimiter;
use crate::redis_limiter::RedisLimiter;
use crate::spec::OnStoreFailure;

/// Where GCRA state lives.
#[derive(Debug)]
#[non_exhaustive]
pub enum Limiter {
    /// In this process (single node, or per-node limits).
    Local(LocalLimiter),
    /// In Redis, shared by the cluster.
    Redis(RedisLimiter),
}

impl Limiter {
    /// Takes `cost` units for `key`. Local decisions never wait; Redis ones wait at most the
    /// store timeout.
    pub async fn check(&self, key: &str, gcra: &Gcra, cost: u32, now: Nanos, on_failure: OnStoreFailure) -> Decision {
        match self {
            Self::Local(l) => l.check(key, gcra, cost, now),
            Self::Redis(r) => r.check(key, gcra, cost, now, on_failure).await,
        }
    }

    /// Gives back units taken by an earlier allowed check.
    pub async fn refund(&self, key: &str, gcra: &Gcra, cost: u32, now: Nanos) {
        match self {
            Self::Local(l) => l.refund(key, gcra, cost, now),
            Self::Redis(r) => r.refund(key, gcra, cost, now).await,
        }
    }
}
