//! Traffic control for portcullis: exact rate limits (GCRA), quotas per day or month in a time
//! zone, per-key and global in-flight limits, usage metering — in one process or shared by a
//! cluster through Redis, with an explicit, tested behaviour when Redis is slow or down.
//!
//! ```
//! use std::time::Duration;
//! use portcullis_traffic::{
//!     Clock, FakeClock, KeySpec, LimitSpec, Limiter, LocalLimiter, OnStoreFailure, RequestKeys, RouteLimits,
//! };
//!
//! // 100 per minute per consumer, 10 at once; headers on every response.
//! let spec = LimitSpec::new("per-consumer", KeySpec::Consumer, 100, Duration::from_secs(60), 10, OnStoreFailure::Open)
//!     .unwrap();
//! let limits = RouteLimits::new(vec![spec], true).unwrap();
//! let limiter = Limiter::Local(LocalLimiter::default());
//! let clock = FakeClock::new(jiff::Timestamp::UNIX_EPOCH);
//! let req = RequestKeys { consumer: Some("c-42"), route: "orders.list", ..Default::default() };
//!
//! let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
//! let admitted = (0..50).filter(|_| rt.block_on(limits.check(&limiter, &req, 1, clock.now())).decision.is_allow()).count();
//! assert_eq!(admitted, 10); // the burst, all at one instant
//! let denied = rt.block_on(limits.check(&limiter, &req, 1, clock.now()));
//! let headers = limits.headers(&denied); // RateLimit-Policy, RateLimit, Retry-After
//! assert_eq!(headers[0].1, "\"per-consumer\";q=100;w=60");
//! assert_eq!(headers[1].1, "\"per-consumer\";r=0;t=1");
//! ```

mod breaker;
mod clock;
mod concurrency;
mod error;
mod gcra;
mod limiter;
mod local;
mod plan;
mod quota;
mod redis_limiter;
mod route;
mod shard;
mod spec;
mod stage;
mod store;
mod target;
mod usage;

pub use breaker::CircuitBreaker;
pub use clock::{Clock, FakeClock, Nanos, SystemClock};
pub use concurrency::{
    ConcurrencyDenied, ConcurrencyLimiter, ConcurrencyPermit, InflightGate, InflightPermit, LoadShed, Priority,
};
pub use error::{ConfigError, StoreError};
pub use gcra::{Decision, Gcra};
pub use limiter::Limiter;
pub use local::{DEFAULT_MAX_KEYS, LocalLimiter};
pub use plan::{AllowedRoutes, Plan};
pub use quota::{
    LocalQuotas, QuotaDecision, QuotaOutcome, QuotaPeriod, QuotaSet, QuotaSpec, QuotaStore, QuotaWindow, RedisQuotas,
};
pub use redis_limiter::{BatchConfig, RedisLimiter};
pub use route::{LimitResult, RATELIMIT, RATELIMIT_POLICY, RouteLimits, RouteOutcome};
pub use spec::{KeySource, KeySpec, LimitSpec, OnStoreFailure, RequestKeys};
pub use stage::{
    ClaimLookup, ClusterSettings, RateLimitStage, RouteTraffic, ServiceError, ServiceSettings, TrafficPolicy,
    TrafficService,
};
pub use store::{RedisStore, RedisStoreConfig};
pub use target::{Auth, RedisTarget, TargetError};
pub use usage::{UsageMeter, UsageRow, day_in};
