//! What a limit counts: [`LimitSpec`] (name, key, rate, burst, failure mode), [`KeySpec`] and the
//! request facts a key is built from ([`KeySource`]).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use http::HeaderName;

use crate::error::{ConfigError, check_name};
use crate::gcra::Gcra;

/// Values longer than this are hashed before they become part of a key.
const MAX_PLAIN_VALUE: usize = 128;

/// What a limit or quota is counted per.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeySpec {
    /// The consumer's organization.
    Org,
    /// The authenticated consumer.
    Consumer,
    /// The credential (its stable id, never the secret).
    Credential,
    /// The client IP address; IPv6 addresses count per /64 (one host usually owns a whole /64),
    /// IPv4-mapped IPv6 addresses as IPv4.
    ClientIp,
    /// The route.
    Route,
    /// A request header's value (hashed: header values may be secrets).
    Header(HeaderName),
    /// A claim of the authenticated token (hashed).
    Claim(String),
}

impl KeySpec {
    /// A header-keyed spec from a configured name.
    ///
    /// # Errors
    /// The name is not a valid header name.
    pub fn header(name: &str) -> Result<Self, ConfigError> {
        HeaderName::from_bytes(name.as_bytes())
            .map(Self::Header)
            .map_err(|_| ConfigError::BadHeader { name: name.chars().take(80).collect() })
    }

    fn tag(&self) -> &'static str {
        match self {
            Self::Org => "org",
            Self::Consumer => "consumer",
            Self::Credential => "cred",
            Self::ClientIp => "ip",
            Self::Route => "route",
            Self::Header(_) => "hdr",
            Self::Claim(_) => "claim",
        }
    }
}

/// The request facts keys are built from; the pipeline stage implements it on its context (or
/// uses [`RequestKeys`]).
/// `Sync` so a decision that awaits the store can hold it across the await.
pub trait KeySource: Sync {
    /// The organization id, if known.
    fn org(&self) -> Option<&str>;
    /// The consumer id, if authenticated.
    fn consumer(&self) -> Option<&str>;
    /// The credential id, if authenticated.
    fn credential(&self) -> Option<&str>;
    /// The client address.
    fn client_ip(&self) -> Option<IpAddr>;
    /// The route id.
    fn route(&self) -> &str;
    /// A request header value.
    fn header(&self, name: &HeaderName) -> Option<&[u8]>;
    /// A claim value of the authenticated token.
    fn claim(&self, name: &str) -> Option<&str>;
}

/// A plain [`KeySource`] for callers that have the values at hand.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestKeys<'a> {
    /// Organization id.
    pub org: Option<&'a str>,
    /// Consumer id.
    pub consumer: Option<&'a str>,
    /// Credential id.
    pub credential: Option<&'a str>,
    /// Client address.
    pub client_ip: Option<IpAddr>,
    /// Route id.
    pub route: &'a str,
    /// Request headers.
    pub headers: Option<&'a http::HeaderMap>,
    /// Token claims as name/value pairs.
    pub claims: &'a [(&'a str, &'a str)],
}

impl KeySource for RequestKeys<'_> {
    fn org(&self) -> Option<&str> {
        self.org
    }
    fn consumer(&self) -> Option<&str> {
        self.consumer
    }
    fn credential(&self) -> Option<&str> {
        self.credential
    }
    fn client_ip(&self) -> Option<IpAddr> {
        self.client_ip
    }
    fn route(&self) -> &str {
        self.route
    }
    fn header(&self, name: &HeaderName) -> Option<&[u8]> {
        self.headers.and_then(|h| h.get(name)).map(http::HeaderValue::as_bytes)
    }
    fn claim(&self, name: &str) -> Option<&str> {
        self.claims.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}

/// What to do with a shared-store limit when the store is slow or down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnStoreFailure {
    /// Keep serving, limited locally to this node's share (`limit / expected_nodes`).
    #[default]
    Open,
    /// Answer [`crate::Decision::StoreUnavailable`].
    Closed,
}

/// One rate limit: a GCRA counted per key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitSpec {
    name: String,
    key: KeySpec,
    gcra: Gcra,
    on_store_failure: OnStoreFailure,
}

impl LimitSpec {
    /// `rate` per `period`, `burst` at once, counted per `key`. `name` is the stable id of the
    /// limit: it names the policy in the headers and prefixes every key, so two routes given the
    /// same limit name share buckets.
    ///
    /// # Errors
    /// A bad name or GCRA values (see [`Gcra::new`]).
    pub fn new(
        name: &str,
        key: KeySpec,
        rate: u32,
        period: Duration,
        burst: u32,
        on_store_failure: OnStoreFailure,
    ) -> Result<Self, ConfigError> {
        check_name(name)?;
        Ok(Self { name: name.to_owned(), key, gcra: Gcra::new(rate, period, burst)?, on_store_failure })
    }

    /// The limit's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it counts per.
    #[must_use]
    pub fn key(&self) -> &KeySpec {
        &self.key
    }

    /// Its GCRA.
    #[must_use]
    pub fn gcra(&self) -> &Gcra {
        &self.gcra
    }

    /// Its failure mode.
    #[must_use]
    pub fn on_store_failure(&self) -> OnStoreFailure {
        self.on_store_failure
    }

    /// The state key for this request: `rl:{name}:{tag}:{value}`.
    #[must_use]
    pub fn state_key(&self, src: &dyn KeySource) -> String {
        build_key("rl", &self.name, &self.key, src)
    }
}

/// Builds `{kind}:{name}:{tag}:{value}` from stable ids only. A missing value (no consumer, no
/// such header) maps to one shared `-` bucket per limit, so leaving a header out never escapes a
/// limit. Header and claim values, and any value over 128 bytes, are hashed (SHA-256, 128 bits)
/// so secrets never reach the store and keys stay short.
pub(crate) fn build_key(kind: &str, name: &str, spec: &KeySpec, src: &dyn KeySource) -> String {
    let mut key = String::with_capacity(kind.len() + name.len() + 48);
    key.push_str(kind);
    key.push(':');
    key.push_str(name);
    key.push(':');
    key.push_str(spec.tag());
    key.push(':');
    match spec {
        KeySpec::Org => push_plain(&mut key, src.org()),
        KeySpec::Consumer => push_plain(&mut key, src.consumer()),
        KeySpec::Credential => push_plain(&mut key, src.credential()),
        KeySpec::Route => push_plain(&mut key, Some(src.route())),
        KeySpec::ClientIp => match src.client_ip() {
            Some(ip) => push_ip(&mut key, ip),
            None => key.push('-'),
        },
        KeySpec::Header(h) => push_hashed(&mut key, src.header(h)),
        KeySpec::Claim(c) => push_hashed(&mut key, src.claim(c).map(str::as_bytes)),
    }
    key
}

fn push_plain(key: &mut String, value: Option<&str>) {
    match value {
        None | Some("") => key.push('-'),
        Some(v) if v.len() > MAX_PLAIN_VALUE => push_hashed(key, Some(v.as_bytes())),
        Some(v) => key.push_str(v),
    }
}

fn push_hashed(key: &mut String, value: Option<&[u8]>) {
    match value {
        None => key.push('-'),
        Some(v) => {
            key.push('#');
            let digest = ring::digest::digest(&ring::digest::SHA256, v);
            for b in &digest.as_ref()[..16] {
                let _ = write!(key, "{b:02x}");
            }
        }
    }
}

fn push_ip(key: &mut String, ip: IpAddr) {
    let ip = match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                let _ = write!(key, "{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]);
                return;
            }
        },
        v4 @ IpAddr::V4(_) => v4,
    };
    let _ = write!(key, "{ip}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(key: KeySpec) -> LimitSpec {
        LimitSpec::new("per-x", key, 10, Duration::from_secs(1), 10, OnStoreFailure::Open).unwrap()
    }

    #[test]
    fn keys_use_stable_ids() {
        let src = RequestKeys {
            org: Some("acme"),
            consumer: Some("c-42"),
            credential: Some("cred-7"),
            client_ip: Some("203.0.113.9".parse().unwrap()),
            route: "orders.list",
            ..RequestKeys::default()
        };
        assert_eq!(spec(KeySpec::Org).state_key(&src), "rl:per-x:org:acme");
        assert_eq!(spec(KeySpec::Consumer).state_key(&src), "rl:per-x:consumer:c-42");
        assert_eq!(spec(KeySpec::Credential).state_key(&src), "rl:per-x:cred:cred-7");
        assert_eq!(spec(KeySpec::ClientIp).state_key(&src), "rl:per-x:ip:203.0.113.9");
        assert_eq!(spec(KeySpec::Route).state_key(&src), "rl:per-x:route:orders.list");
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let a = RequestKeys { client_ip: Some("2001:db8:1:2:aaaa::1".parse().unwrap()), ..Default::default() };
        let b = RequestKeys { client_ip: Some("2001:db8:1:2:bbbb::9".parse().unwrap()), ..Default::default() };
        let m = RequestKeys { client_ip: Some("::ffff:198.51.100.1".parse().unwrap()), ..Default::default() };
        let s = spec(KeySpec::ClientIp);
        assert_eq!(s.state_key(&a), s.state_key(&b));
        assert_eq!(s.state_key(&a), "rl:per-x:ip:2001:db8:1:2::/64");
        assert_eq!(s.state_key(&m), "rl:per-x:ip:198.51.100.1");
    }

    #[test]
    fn header_and_claim_values_are_hashed_and_missing_values_share_a_bucket() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-api-key", "secret-value".parse().unwrap());
        let with = RequestKeys { headers: Some(&headers), claims: &[("tenant", "t1")], ..Default::default() };
        let without = RequestKeys::default();
        let h = spec(KeySpec::header("X-Api-Key").unwrap());
        let key = h.state_key(&with);
        assert!(key.starts_with("rl:per-x:hdr:#") && !key.contains("secret"), "{key}");
        assert_eq!(key.len(), "rl:per-x:hdr:#".len() + 32);
        assert_eq!(h.state_key(&without), "rl:per-x:hdr:-");
        let c = spec(KeySpec::Claim("tenant".into()));
        assert!(!c.state_key(&with).contains("t1"));
        assert_eq!(spec(KeySpec::Consumer).state_key(&without), "rl:per-x:consumer:-");
    }

    #[test]
    fn long_values_are_hashed() {
        let long = "x".repeat(500);
        let src = RequestKeys { consumer: Some(&long), ..Default::default() };
        assert!(spec(KeySpec::Consumer).state_key(&src).len() < 64);
    }

    #[test]
    fn names_are_checked() {
        let bad = LimitSpec::new("a\"b", KeySpec::Route, 1, Duration::from_secs(1), 1, OnStoreFailure::Open);
        assert!(matches!(bad, Err(ConfigError::BadName { .. })));
        assert!(KeySpec::header("bad header").is_err());
    }
}
