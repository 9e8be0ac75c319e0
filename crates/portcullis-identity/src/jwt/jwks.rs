//! Remote key sets: a JWKS URL, or an OIDC issuer whose discovery document names one.
//!
//! - Fetches go through [`HttpClient`] (HTTPS, size cap, timeout).
//! - A background task refreshes the set every `refresh_interval` (default 5 min).
//! - A token with an unknown `kid` triggers a refetch, single-flighted (one request in flight;
//!   callers that queued behind it use its result) and rate limited (at most one per
//!   `min_refetch_interval`, default 10 s), so a flood of made-up `kid`s costs the identity
//!   provider at most one request per interval.
//! - A failed fetch keeps the last good set. If no set was ever fetched, callers get
//!   [`JwtError::IdpUnavailable`] (answer 503, not 401). Every failed fetch increments
//!   `portcullis_idp_fetch_errors_total{issuer}`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use serde_json::Value;

use super::JwtError;
use super::jwk::JwkSet;
use crate::http::{HttpClient, HttpError, HttpOptions, check_url};

/// Where remote keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteKeys {
    /// A JWKS document at this URL.
    Jwks {
        /// The `jwks_uri`.
        url: String,
    },
    /// `{issuer_url}/.well-known/openid-configuration`, whose `issuer` must equal `issuer_url`
    /// and whose `jwks_uri` is then fetched.
    Discovery {
        /// The OIDC issuer URL.
        issuer_url: String,
    },
}

/// Fetch and refresh settings.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Transport settings (timeout, size cap, CA file, plain-http rule).
    pub http: HttpOptions,
    /// Background refresh period. Default 5 min.
    pub refresh_interval: Duration,
    /// At most one refetch per this interval when a token names an unknown `kid` (and at most
    /// one attempt per interval while no key set was ever fetched). Default 10 s.
    pub min_refetch_interval: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            http: HttpOptions::default(),
            refresh_interval: Duration::from_secs(300),
            min_refetch_interval: Duration::from_secs(10),
        }
    }
}

/// A source of the current time, injected so tests control it.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> SystemTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

#[derive(Default)]
struct FetchState {
    last_attempt: Option<SystemTime>,
}

/// Why one fetch failed (kept for logs; callers see [`JwtError`]).
#[derive(Debug)]
enum FetchError {
    Http(HttpError),
    Document(&'static str),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Http(e) => write!(f, "{e}"),
            FetchError::Document(d) => f.write_str(d),
        }
    }
}

/// The key set of one issuer, fetched and kept fresh.
pub struct JwksCache {
    issuer: String,
    source: RemoteKeys,
    client: HttpClient,
    opts: FetchOptions,
    jwks_url: Mutex<Option<String>>,
    keys: ArcSwapOption<JwkSet>,
    generation: AtomicU64,
    completed: AtomicU64,
    fetch: tokio::sync::Mutex<FetchState>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache").field("issuer", &self.issuer).field("source", &self.source).finish()
    }
}

impl JwksCache {
    /// A cache for `source`; `issuer` labels metrics and logs. Checks the URL now; fetches
    /// nothing until asked.
    pub fn new(issuer: &str, source: RemoteKeys, opts: FetchOptions) -> Result<Self, JwtError> {
        let url = match &source {
            RemoteKeys::Jwks { url } => url,
            RemoteKeys::Discovery { issuer_url } => issuer_url,
        };
        check_url(url, &opts.http).map_err(|e| JwtError::Config(format!("key source {url}: {e}")))?;
        let client = HttpClient::new(opts.http.clone()).map_err(|e| JwtError::Config(e.to_string()))?;
        let jwks_url = match &source {
            RemoteKeys::Jwks { url } => Some(url.clone()),
            RemoteKeys::Discovery { .. } => None,
        };
        Ok(Self {
            issuer: issuer.to_owned(),
            source,
            client,
            opts,
            jwks_url: Mutex::new(jwks_url),
            keys: ArcSwapOption::empty(),
            generation: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
        })
    }

    /// The last good key set, if one was ever fetched.
    pub fn current(&self) -> Option<Arc<JwkSet>> {
        self.keys.load_full()
    }

    /// Increases whenever the set of `kid`s changes (cached verifications made before are
    /// re-checked).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Fetches now (start-up, background refresh), single-flighted but not rate limited.
    pub async fn refresh(&self, now: SystemTime) -> Result<Arc<JwkSet>, JwtError> {
        self.fetch_single_flight(now, false).await
    }

    /// A refetch because a token named a `kid` we do not have: single-flighted and rate
    /// limited. Returns the (possibly unchanged) current set, or `IdpUnavailable` if there is
    /// none.
    pub async fn refetch_for_unknown_kid(&self, now: SystemTime) -> Result<Arc<JwkSet>, JwtError> {
        self.fetch_single_flight(now, true).await
    }

    /// The current set, fetching it first if none was ever fetched (rate limited).
    pub async fn keys(&self, now: SystemTime) -> Result<Arc<JwkSet>, JwtError> {
        match self.current() {
            Some(k) => Ok(k),
            None => self.fetch_single_flight(now, true).await,
        }
    }

    /// Starts the background refresh on the current tokio runtime: one fetch right away, then
    /// one every `refresh_interval`. Abort the handle to stop it.
    pub fn spawn_refresher(self: &Arc<Self>, clock: Arc<dyn Clock>) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(this.opts.refresh_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // Failures are counted and logged inside; the last good set stays.
                let _ = this.refresh(clock.now()).await;
            }
        })
    }

    async fn fetch_single_flight(&self, now: SystemTime, rate_limited: bool) -> Result<Arc<JwkSet>, JwtError> {
        let seen = self.completed.load(Ordering::Acquire);
        let mut state = self.fetch.lock().await;
        if self.completed.load(Ordering::Acquire) != seen {
            // Someone fetched while we queued: share their outcome.
            return self.current().ok_or(JwtError::IdpUnavailable);
        }
        if rate_limited
            && let Some(last) = state.last_attempt
            && let Ok(elapsed) = now.duration_since(last)
            && elapsed < self.opts.min_refetch_interval
        {
            return self.current().ok_or(JwtError::IdpUnavailable);
        }
        state.last_attempt = Some(now);
        let outcome = self.fetch_once().await;
        let result = match outcome {
            Ok(set) => {
                let set = Arc::new(set);
                let old = self.keys.swap(Some(Arc::clone(&set)));
                let changed = old.is_none_or(|old| {
                    let mut a: Vec<&str> = old.kids().collect();
                    let mut b: Vec<&str> = set.kids().collect();
                    a.sort_unstable();
                    b.sort_unstable();
                    a != b
                });
                if changed {
                    self.generation.fetch_add(1, Ordering::AcqRel);
                }
                tracing::debug!(issuer = %self.issuer, keys = set.len(), skipped = set.skipped().len(), "fetched JWKS");
                for s in set.skipped() {
                    tracing::warn!(issuer = %self.issuer, kid = ?s.kid, reason = s.reason, "JWKS key skipped");
                }
                Ok(set)
            }
            Err(e) => {
                metrics::counter!("portcullis_idp_fetch_errors_total", "issuer" => self.issuer.clone()).increment(1);
                tracing::warn!(issuer = %self.issuer, error = %e, "JWKS fetch failed; keeping the last good key set");
                self.current().ok_or(JwtError::IdpUnavailable)
            }
        };
        self.completed.fetch_add(1, Ordering::AcqRel);
        result
    }

    async fn jwks_url(&self) -> Result<String, FetchError> {
        let known = self.jwks_url.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(url) = known {
            return Ok(url);
        }
        let RemoteKeys::Discovery { issuer_url } = &self.source else {
            return Err(FetchError::Document("no JWKS URL"));
        };
        let doc_url = format!("{}/.well-known/openid-configuration", issuer_url.trim_end_matches('/'));
        let body = self.client.get(&doc_url).await.map_err(FetchError::Http)?;
        let doc: Value =
            serde_json::from_slice(&body).map_err(|_| FetchError::Document("discovery document is not JSON"))?;
        if doc.get("issuer").and_then(Value::as_str) != Some(issuer_url.as_str()) {
            return Err(FetchError::Document("discovery document names a different issuer"));
        }
        let jwks = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or(FetchError::Document("discovery document has no jwks_uri"))?
            .to_owned();
        check_url(&jwks, self.client.options()).map_err(FetchError::Http)?;
        *self.jwks_url.lock().unwrap_or_else(|p| p.into_inner()) = Some(jwks.clone());
        Ok(jwks)
    }

    async fn fetch_once(&self) -> Result<JwkSet, FetchError> {
        let url = self.jwks_url().await?;
        let body = self.client.get(&url).await.map_err(FetchError::Http)?;
        let text = std::str::from_utf8(&body).map_err(|_| FetchError::Document("JWKS is not UTF-8"))?;
        let set = JwkSet::from_json(text).map_err(|_| FetchError::Document("not a JWK set"))?;
        if set.is_empty() {
            return Err(FetchError::Document("JWKS holds no usable key"));
        }
        Ok(set)
    }
}
