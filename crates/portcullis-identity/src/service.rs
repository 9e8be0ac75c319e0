//! The identity service: one per gateway process, shared by every worker and every configuration
//! generation. It owns the store, the shared (cluster) state, the in-memory credential cache and
//! the snapshots of active suspensions and run-time shaping policies, and runs all their I/O on its own small runtime so a slow
//! database never stalls a worker's event loop.
//!
//! Freshness: every write through the admin API publishes a change on the shared state (Redis
//! pub/sub in cluster mode) and every node also polls the store's change counter twice a second,
//! so a revocation or suspension made on one node applies on all of them within a second, even if
//! a pub/sub message is lost.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use portcullis_config::{IdentityConfig, StoreSettings};
use portcullis_store::shared::{Change, ChangeKind, SharedState};
use portcullis_store::{
    Consumer, Credential, CredentialKind, Organization, Status, Store, StoreConfig, Suspension, SuspensionTarget,
};
use tokio::sync::broadcast;

use crate::apikey::{KeyError, KeyHash, KeyHasher};

/// How often each node polls the store's change counter (the backstop for lost pub/sub messages).
pub const CHANGE_POLL_INTERVAL: Duration = Duration::from_millis(400);
/// Upper bound on cached credential lookups; past it the cache is emptied and refilled on demand.
const CACHE_CAPACITY: usize = 100_000;
/// How long "no such credential" is remembered, so a flood of made-up keys cannot hammer the store.
const NEGATIVE_TTL: Duration = Duration::from_secs(5);

/// Why the identity service could not start or answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] portcullis_store::StoreError),
    /// The shared state (Redis) failed.
    #[error("shared state: {0}")]
    Shared(#[from] portcullis_store::shared::SharedError),
    /// The key secret is unusable.
    #[error("key secret: {0}")]
    Key(#[from] KeyError),
    /// The service's I/O runtime could not start or went away.
    #[error("identity runtime: {0}")]
    Runtime(String),
    /// A JWT issuer's settings are unusable (key set, algorithm mix).
    #[error("issuer {issuer}: {message}")]
    Issuer {
        /// The issuer's name in the config.
        issuer: String,
        /// What is wrong.
        message: String,
    },
}

/// A credential with the consumer and organization it belongs to, as read from the store.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The credential.
    pub credential: Credential,
    /// Its consumer.
    pub consumer: Consumer,
    /// The consumer's organization.
    pub org: Organization,
    /// The principal built from these rows, once (a credential kind has one method).
    pub(crate) principal: std::sync::OnceLock<Arc<portcullis_core::Principal>>,
}

#[derive(Clone)]
struct CacheEntry {
    value: Option<Arc<Resolved>>,
    until: Instant,
}

/// Active suspensions, indexed for the hot path.
#[derive(Debug, Default)]
pub struct Suspensions {
    by_target: HashMap<SuspensionTarget, Suspension>,
}

impl Suspensions {
    fn from_list(list: Vec<Suspension>) -> Self {
        Self { by_target: list.into_iter().map(|s| (s.target.clone(), s)).collect() }
    }

    /// The suspension in force on `target` at `now`, if any.
    pub fn active(&self, target: &SuspensionTarget, now: i64) -> Option<&Suspension> {
        self.by_target.get(target).filter(|s| s.is_active_at(now))
    }

    /// Whether the route is suspended.
    pub fn route(&self, name: &str, now: i64) -> Option<&Suspension> {
        self.by_target
            .iter()
            .find(|(t, s)| matches!(t, SuspensionTarget::Route(r) if r == name) && s.is_active_at(now))
            .map(|(_, s)| s)
    }

    /// The first suspension that stops this credential, its consumer or its organization.
    pub fn blocking(&self, r: &Resolved, now: i64) -> Option<&Suspension> {
        self.active(&SuspensionTarget::Credential(r.credential.id.clone()), now)
            .or_else(|| self.active(&SuspensionTarget::Consumer(r.consumer.id.clone()), now))
            .or_else(|| self.active(&SuspensionTarget::Organization(r.org.id.clone()), now))
    }
}

/// A dedicated runtime for store and network I/O. Dropping it never blocks (it may be dropped
/// from inside another runtime).
struct IoRuntime(Option<tokio::runtime::Runtime>);

impl Drop for IoRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// A cached subject lookup and when it goes stale.
type SubjectEntry = (Option<Arc<SubjectMapping>>, Instant);

struct Inner {
    config: Arc<IdentityConfig>,
    issuers: HashMap<String, Arc<crate::jwt::Verifier>>,
    introspectors: HashMap<String, Arc<crate::introspect::Introspector>>,
    subjects: RwLock<HashMap<String, SubjectEntry>>,
    failures: crate::bruteforce::FailureTracker,
    store: Store,
    shared: SharedState,
    hasher: KeyHasher,
    cache: RwLock<HashMap<(CredentialKind, String), CacheEntry>>,
    suspensions: ArcSwap<Suspensions>,
    /// Run-time shaping policies, compiled; the exposure stage holds the same `Arc`.
    overrides: portcullis_exposure::SharedOverrides,
    last_seq: std::sync::atomic::AtomicI64,
    handle: tokio::runtime::Handle,
    _io: IoRuntime,
}

/// The identity service. Cheap to clone.
#[derive(Clone)]
pub struct IdentityService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for IdentityService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityService").finish_non_exhaustive()
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl IdentityService {
    /// Opens the store (running migrations), connects the shared state, loads suspensions and
    /// starts the background refresh. Call from any async context.
    pub async fn start(config: Arc<IdentityConfig>) -> Result<Self, ServiceError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(8)
            .thread_name("pc-identity")
            .enable_all()
            .build()
            .map_err(|e| ServiceError::Runtime(e.to_string()))?;
        let handle = rt.handle().clone();
        let io = IoRuntime(Some(rt));
        let store_config = match &config.store {
            StoreSettings::Sqlite { path } => StoreConfig::Sqlite { path: path.clone() },
            StoreSettings::Postgres { url, pool_size, schema } => {
                StoreConfig::Postgres { url: url.clone(), pool_size: *pool_size, schema: schema.clone() }
            }
        };
        let cluster = config.cluster.clone();
        let (store, shared) = handle
            .spawn(async move {
                let store = Store::open(&store_config).await?;
                let shared = match cluster {
                    Some(c) => SharedState::Redis(
                        portcullis_store::shared::RedisShared::connect(&c.redis_url, &c.namespace).await?,
                    ),
                    None => SharedState::Local(portcullis_store::shared::LocalShared::new()),
                };
                Ok::<_, ServiceError>((store, shared))
            })
            .await
            .map_err(|e| ServiceError::Runtime(e.to_string()))??;
        let hasher = KeyHasher::new(&config.key_secret)?;
        let (issuers, introspectors) = {
            // Background JWKS refreshers run on the identity runtime.
            let _enter = handle.enter();
            (build_issuers(&config)?, build_introspectors(&config)?)
        };
        let failures = crate::bruteforce::FailureTracker::new(failure_policies(&config.brute_force));
        let inner = Arc::new(Inner {
            config,
            issuers,
            introspectors,
            subjects: RwLock::new(HashMap::new()),
            failures,
            store,
            shared,
            hasher,
            cache: RwLock::new(HashMap::new()),
            suspensions: ArcSwap::from_pointee(Suspensions::default()),
            overrides: Arc::new(ArcSwap::from_pointee(portcullis_exposure::ShapingOverrides::default())),
            last_seq: std::sync::atomic::AtomicI64::new(i64::MIN),
            handle,
            _io: io,
        });
        let svc = Self { inner };
        svc.refresh().await?;
        svc.spawn_watchers();
        Ok(svc)
    }

    /// The identity configuration the service runs with.
    pub fn config(&self) -> &Arc<IdentityConfig> {
        &self.inner.config
    }

    /// The store, for the admin API.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The shared state (nonces, failure counters, change bus).
    pub fn shared(&self) -> &SharedState {
        &self.inner.shared
    }

    /// The API key hasher.
    pub fn hasher(&self) -> &KeyHasher {
        &self.inner.hasher
    }

    /// Runs `fut` on the service's I/O runtime and waits for it.
    pub async fn io<T, F>(&self, fut: F) -> Result<T, ServiceError>
    where
        F: std::future::Future<Output = Result<T, ServiceError>> + Send + 'static,
        T: Send + 'static,
    {
        self.inner.handle.spawn(fut).await.map_err(|e| ServiceError::Runtime(e.to_string()))?
    }

    /// A handle to the I/O runtime (for background tasks of other components).
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.inner.handle
    }

    /// The current snapshot of active suspensions.
    pub fn suspensions(&self) -> Arc<Suspensions> {
        self.inner.suspensions.load_full()
    }

    /// The run-time shaping policies in force, compiled: a handle the exposure stage keeps and
    /// loads (lock-free) on every response; [`IdentityService::refresh`] swaps its content.
    pub fn shaping_overrides(&self) -> portcullis_exposure::SharedOverrides {
        self.inner.overrides.clone()
    }

    /// Drops every cached lookup and reloads suspensions and shaping policies now.
    pub async fn refresh(&self) -> Result<(), ServiceError> {
        let store = self.inner.store.clone();
        let (list, policies, seq) = self
            .io(async move {
                let seq = store.change_seq().await?;
                let now = unix_now();
                let list = store.active_suspensions(now).await?;
                let policies = store.active_shaping_policies(now).await?;
                Ok((list, policies, seq))
            })
            .await?;
        self.clear_cache();
        self.inner.suspensions.store(Arc::new(Suspensions::from_list(list)));
        self.inner.overrides.store(Arc::new(crate::policies::compile_overrides(&policies)));
        self.inner.last_seq.store(seq, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    fn clear_cache(&self) {
        if let Ok(mut c) = self.inner.cache.write() {
            c.clear();
        }
        if let Ok(mut c) = self.inner.subjects.write() {
            c.clear();
        }
    }

    /// Failed-authentication counters (per node).
    pub fn failures(&self) -> &crate::bruteforce::FailureTracker {
        &self.inner.failures
    }

    /// The JWT verifier of a configured issuer.
    pub fn issuer(&self, name: &str) -> Option<&Arc<crate::jwt::Verifier>> {
        self.inner.issuers.get(name)
    }

    /// The introspection client of a configured endpoint.
    pub fn introspector(&self, name: &str) -> Option<&Arc<crate::introspect::Introspector>> {
        self.inner.introspectors.get(name)
    }

    /// The consumer (and organization) an external subject (JWT `sub`, certificate subject) maps
    /// to, cached like credentials.
    pub async fn resolve_subject(&self, subject: &str) -> Result<Option<Arc<SubjectMapping>>, ServiceError> {
        let now = Instant::now();
        if let Ok(c) = self.inner.subjects.read()
            && let Some((v, until)) = c.get(subject)
            && *until > now
        {
            return Ok(v.clone());
        }
        let found =
            self.consumer_by_subject(subject).await?.map(|(consumer, org)| Arc::new(SubjectMapping { consumer, org }));
        let ttl = if found.is_some() { self.inner.config.cache_ttl } else { NEGATIVE_TTL };
        if let Ok(mut c) = self.inner.subjects.write() {
            if c.len() >= CACHE_CAPACITY {
                c.clear();
            }
            c.insert(subject.to_owned(), (found.clone(), now + ttl));
        }
        Ok(found)
    }

    /// Tells every node (this one included) that something changed.
    pub async fn publish_change(&self, kind: ChangeKind, id: Option<String>) {
        let change = match id {
            Some(id) => Change::of(kind, id),
            None => Change::any(),
        };
        let shared = self.inner.shared.clone();
        let published = self.io(async move { Ok(shared.publish(&change).await?) }).await;
        if let Err(e) = published {
            tracing::warn!(error = %e, "could not publish an identity change; other nodes will see it by polling");
        }
        if let Err(e) = self.refresh().await {
            tracing::warn!(error = %e, "identity refresh after a change failed");
        }
    }

    fn spawn_watchers(&self) {
        // Pub/sub: the fast path for changes made on other nodes.
        let weak = Arc::downgrade(&self.inner);
        let mut rx = self.inner.shared.subscribe();
        self.inner.handle.spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
                let Some(inner) = weak.upgrade() else { return };
                let svc = IdentityService { inner };
                if let Err(e) = svc.refresh().await {
                    tracing::warn!(error = %e, "identity refresh failed");
                }
            }
        });
        // Polling the change counter: the backstop.
        let weak = Arc::downgrade(&self.inner);
        self.inner.handle.spawn(async move {
            let mut tick = tokio::time::interval(CHANGE_POLL_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let seq = match inner.store.change_seq().await {
                    Ok(s) => s,
                    Err(e) => {
                        metrics::counter!("portcullis_identity_store_errors_total").increment(1);
                        tracing::warn!(error = %e, "identity store poll failed; serving from cache");
                        continue;
                    }
                };
                let svc = IdentityService { inner };
                let now = unix_now();
                let expired = svc.suspensions().by_target.values().any(|s| !s.is_active_at(now))
                    || svc.inner.overrides.load().any_lapsed_at(now);
                if (seq != svc.inner.last_seq.load(std::sync::atomic::Ordering::Acquire) || expired)
                    && let Err(e) = svc.refresh().await
                {
                    tracing::warn!(error = %e, "identity refresh failed");
                }
            }
        });
    }

    /// Looks up a credential by kind and lookup value, through the cache. `Ok(None)`: no such
    /// credential. Errors mean the store could not be asked (the caller fails closed).
    pub async fn resolve(&self, kind: CredentialKind, lookup: &str) -> Result<Option<Arc<Resolved>>, ServiceError> {
        let now = Instant::now();
        if let Ok(c) = self.inner.cache.read()
            && let Some(e) = c.get(&(kind, lookup.to_owned()))
            && e.until > now
        {
            return Ok(e.value.clone());
        }
        let store = self.inner.store.clone();
        let key = lookup.to_owned();
        let value = self
            .io(async move {
                let Some(credential) = store.credential_by_lookup(kind, &key).await? else { return Ok(None) };
                let Some(consumer) = store.consumer(&credential.consumer_id).await? else { return Ok(None) };
                let Some(org) = store.org(&consumer.org_id).await? else { return Ok(None) };
                Ok(Some(Arc::new(Resolved { credential, consumer, org, principal: std::sync::OnceLock::new() })))
            })
            .await?;
        let ttl = if value.is_some() { self.inner.config.cache_ttl } else { NEGATIVE_TTL };
        if let Ok(mut c) = self.inner.cache.write() {
            if c.len() >= CACHE_CAPACITY {
                c.clear();
            }
            c.insert((kind, lookup.to_owned()), CacheEntry { value: value.clone(), until: now + ttl });
        }
        Ok(value)
    }

    /// Resolves an API key: checks its format and checksum offline, hashes it, looks it up and
    /// compares the stored hash in constant time.
    pub async fn resolve_api_key(&self, key: &str) -> Result<Option<Arc<Resolved>>, ServiceError> {
        if crate::apikey::parse(key).is_err() {
            return Ok(None);
        }
        let hash = self.inner.hasher.hash(key);
        let found = self.resolve(CredentialKind::ApiKey, &hash.to_hex()).await?;
        // The lookup found the row by this hash; the stored value is still compared in constant time.
        Ok(found.filter(|r| KeyHash::from_hex(&r.credential.lookup).is_some_and(|stored| stored.ct_eq(&hash))))
    }

    /// Finds the consumer (with its organization) mapped to an external subject (a JWT `sub` or
    /// certificate subject). Not cached by credential; cached by subject under a synthetic key.
    pub async fn consumer_by_subject(&self, subject: &str) -> Result<Option<(Consumer, Organization)>, ServiceError> {
        let store = self.inner.store.clone();
        let subject = subject.to_owned();
        self.io(async move {
            let Some(consumer) = store.consumer_by_subject(&subject).await? else { return Ok(None) };
            let Some(org) = store.org(&consumer.org_id).await? else { return Ok(None) };
            Ok(Some((consumer, org)))
        })
        .await
    }
}

/// A consumer found by its external subject.
#[derive(Debug, Clone)]
pub struct SubjectMapping {
    /// The consumer.
    pub consumer: Consumer,
    /// Its organization.
    pub org: Organization,
}

impl Suspensions {
    /// The first suspension that stops this consumer or its organization.
    pub fn blocking_consumer(&self, consumer: &Consumer, now: i64) -> Option<&Suspension> {
        self.active(&SuspensionTarget::Consumer(consumer.id.clone()), now)
            .or_else(|| self.active(&SuspensionTarget::Organization(consumer.org_id.clone()), now))
    }
}

fn failure_policies(c: &portcullis_config::BruteForceSettings) -> crate::bruteforce::Policies {
    let mut p = crate::bruteforce::Policies::default();
    p.client_ip.window = c.window;
    p.client_ip.delay_after = c.ip_threshold;
    p.client_ip.lockout_after = c.lockout_after.saturating_mul(5);
    p.client_ip.lockout = c.lockout_for;
    for k in [&mut p.credential_prefix, &mut p.username] {
        k.window = c.window;
        k.delay_after = c.credential_threshold;
        k.lockout_after = c.lockout_after;
        k.lockout = c.lockout_for;
    }
    p
}

fn build_issuers(config: &IdentityConfig) -> Result<HashMap<String, Arc<crate::jwt::Verifier>>, ServiceError> {
    use crate::jwt::{Alg, IssuerPolicy, Jwk, JwkSet, KeySource, SystemClock, Verifier};
    let mut out = HashMap::new();
    for (name, s) in &config.issuers {
        let err = |message: String| ServiceError::Issuer { issuer: name.clone(), message };
        let algorithms = s
            .algorithms
            .iter()
            .map(|a| Alg::from_name(a).ok_or_else(|| err(format!("unsupported algorithm {a}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let mut keys = Vec::new();
        if let Some(text) = &s.jwks_static {
            keys.push(KeySource::Static(JwkSet::from_json(text).map_err(|e| err(e.to_string()))?));
        }
        if let Some(secret) = &s.hmac_secret {
            let jwk = Jwk::hmac(None, None, secret).map_err(|e| err(e.to_string()))?;
            keys.push(KeySource::Static(JwkSet::from_keys(vec![jwk]).map_err(|e| err(e.to_string()))?));
        }
        if let Some(url) = &s.jwks_url {
            keys.push(KeySource::Jwks { url: url.clone() });
        } else if let Some(url) = &s.discovery_url {
            keys.push(KeySource::Discovery { issuer_url: url.clone() });
        }
        let mut policy = IssuerPolicy::new(&s.issuer, s.audiences.clone(), algorithms, keys);
        policy.leeway = s.leeway;
        policy.fetch.refresh_interval = s.refresh_interval;
        policy.fetch.http.danger_allow_http = s.danger_allow_http;
        let verifier = Arc::new(Verifier::new(policy).map_err(|e| err(e.to_string()))?);
        if let Some(jwks) = verifier.jwks() {
            jwks.spawn_refresher(Arc::new(SystemClock));
        }
        out.insert(name.clone(), verifier);
    }
    Ok(out)
}

fn build_introspectors(
    config: &IdentityConfig,
) -> Result<HashMap<String, Arc<crate::introspect::Introspector>>, ServiceError> {
    use crate::introspect::{IntrospectionConfig, Introspector};
    let mut out = HashMap::new();
    for (name, s) in &config.introspection {
        let mut c = IntrospectionConfig::new(&s.endpoint, &s.client_id, s.client_secret.clone());
        c.label = name.clone();
        c.max_ttl = s.cache_max_ttl;
        c.negative_ttl = s.negative_ttl;
        let i =
            Introspector::new(c).map_err(|e| ServiceError::Issuer { issuer: name.clone(), message: e.to_string() })?;
        out.insert(name.clone(), Arc::new(i));
    }
    Ok(out)
}

/// Why an otherwise valid credential is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// Revoked or expired: indistinguishable from an unknown credential to the caller.
    Unusable,
    /// The consumer, organization or credential is suspended (by status or kill switch).
    Suspended,
}

/// Checks status, expiry, revocation and kill switches for a resolved credential at `now`.
pub fn check_usable(r: &Resolved, suspensions: &Suspensions, now: i64) -> Result<(), Refusal> {
    if !r.credential.is_usable_at(now) {
        return Err(Refusal::Unusable);
    }
    if r.consumer.status != Status::Active || r.org.status != Status::Active {
        return Err(Refusal::Suspended);
    }
    if suspensions.blocking(r, now).is_some() {
        return Err(Refusal::Suspended);
    }
    Ok(())
}
