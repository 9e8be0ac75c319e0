//! SSRF guard for URL-typed fields (`format: uri`, or a field marked by an extension): a URL a
//! client hands the API, which the upstream may later fetch, must not point inside the network.
//!
//! Two steps, both fail closed:
//!
//! - [`check_syntax`] (sync, no I/O): the URL parses (WHATWG rules, the `url` crate), its scheme
//!   is allowed ([`SsrfPolicy::allowed_schemes`], default `https`, `http`), it carries no
//!   userinfo (`https://trusted.example@127.0.0.1/`), no text the parsers of the world disagree
//!   on (backslashes, whitespace, control characters, a missing `//`, percent-encoded hosts,
//!   IPv4 written in decimal, octal or hex such as `http://2130706433/` or `http://0x7f.1/`), its
//!   host is not a refused name ([`SsrfPolicy::denied_hosts`]: `localhost`,
//!   `metadata.google.internal`, …) and, when the host is an IP literal, the address is not in a
//!   refused range ([`classify`]: loopback, private and unique-local, link-local, cloud metadata,
//!   CGNAT, unspecified, multicast, broadcast, documentation and reserved; IPv4-mapped,
//!   IPv4-translated, NAT64 and 6to4 IPv6 addresses are judged by the IPv4 address they carry).
//! - [`check`] (async): [`check_syntax`], then the host name is resolved (`tokio::net::lookup_host`,
//!   bounded by [`SsrfPolicy::resolve_timeout`]) and the URL is refused if **any** resolved address
//!   is in a refused range, or if resolution fails, times out or yields nothing.
//!
//! ```
//! use portcullis_contract::ssrf::{check_syntax, RefusedRange, SsrfError, SsrfPolicy};
//!
//! let policy = SsrfPolicy::default();
//! assert!(check_syntax("https://api.example.com/hook", &policy).is_ok());
//! assert!(matches!(
//!     check_syntax("http://169.254.169.254/latest/meta-data/", &policy),
//!     Err(SsrfError::DeniedAddress { range: RefusedRange::CloudMetadata, .. })
//! ));
//! assert!(matches!(
//!     check_syntax("http://0x7f.1/", &policy),
//!     Err(SsrfError::DeniedAddress { range: RefusedRange::Loopback, .. })
//! ));
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! // Resolution: `localhost` is refused by name, and also by what it resolves to.
//! let by_address = SsrfPolicy { denied_hosts: Vec::new(), ..SsrfPolicy::default() };
//! assert!(portcullis_contract::ssrf::check("http://localhost:8080/", &by_address).await.is_err());
//! # });
//! ```
//!
//! Limit: the gateway checks what the name resolves to now; the upstream resolves again when it
//! fetches. A name whose records change in between (DNS rebinding) is the upstream's fetcher to
//! pin; the gateway's check removes the direct and literal forms and every name that already
//! points inside.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use url::{Host, Url};

/// What the guard allows. The default is the secure one; config may narrow or extend it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsrfPolicy {
    /// Lower-case schemes accepted. Default `https`, `http`.
    pub allowed_schemes: Vec<String>,
    /// Host names refused, each with all its subdomains (`internal` refuses
    /// `metadata.google.internal`). Compared after lower-casing, IDNA and trailing-dot removal.
    pub denied_hosts: Vec<String>,
    /// Further networks refused, on top of the built-in ranges (an operator's own address space
    /// reachable from the upstream, for instance).
    pub denied_networks: Vec<IpNet>,
    /// Longest URL accepted, in bytes. Default 2048.
    pub max_len: usize,
    /// Bound on name resolution in [`check`]; past it the URL is refused. Default 2 s.
    pub resolve_timeout: Duration,
}

impl Default for SsrfPolicy {
    fn default() -> Self {
        Self {
            allowed_schemes: vec!["https".to_owned(), "http".to_owned()],
            denied_hosts: DEFAULT_DENIED_HOSTS.iter().map(|h| (*h).to_owned()).collect(),
            denied_networks: Vec::new(),
            max_len: 2048,
            resolve_timeout: Duration::from_secs(2),
        }
    }
}

/// Names that reach the machine itself, the local network or a cloud metadata service.
const DEFAULT_DENIED_HOSTS: &[&str] =
    &["localhost", "localdomain", "local", "internal", "home.arpa", "metadata", "metadata.goog", "instance-data"];

/// The address range a refused address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusedRange {
    /// `0.0.0.0/8`, `::`.
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918 (`10/8`, `172.16/12`, `192.168/16`), IPv6 unique-local `fc00::/7`, site-local
    /// `fec0::/10`, local-use NAT64 `64:ff9b:1::/48`.
    Private,
    /// `100.64.0.0/10` (RFC 6598, carrier-grade NAT; also Alibaba Cloud's metadata address).
    SharedAddressSpace,
    /// `169.254.0.0/16`, `fe80::/10`.
    LinkLocal,
    /// Cloud metadata services: `169.254.169.254` (AWS, GCP, Azure, OpenStack, …),
    /// `168.63.129.16` (Azure wire server), `fd00:ec2::254` (AWS IPv6).
    CloudMetadata,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// Other special-purpose ranges: `192.0.0/24`, `192.88.99/24`, `198.18/15`, `240/4`,
    /// IPv4-compatible `::/96`, discard `100::/64`, Teredo `2001::/32`, ORCHID.
    Reserved,
    /// One of [`SsrfPolicy::denied_networks`].
    Denied,
}

impl fmt::Display for RefusedRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unspecified => "unspecified",
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::SharedAddressSpace => "shared address space (CGNAT)",
            Self::LinkLocal => "link-local",
            Self::CloudMetadata => "cloud metadata",
            Self::Multicast => "multicast",
            Self::Broadcast => "broadcast",
            Self::Documentation => "documentation",
            Self::Reserved => "reserved",
            Self::Denied => "denied by policy",
        })
    }
}

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SsrfError {
    /// Longer than [`SsrfPolicy::max_len`].
    #[error("URL longer than {max} bytes")]
    TooLong { max: usize },
    /// Not a URL.
    #[error("not a valid URL: {0}")]
    Invalid(url::ParseError),
    /// Text that URL parsers disagree on (backslash, whitespace or control character, no `//`
    /// after the scheme, percent-encoded host).
    #[error("ambiguous URL syntax")]
    Ambiguous,
    /// Scheme not in [`SsrfPolicy::allowed_schemes`].
    #[error("scheme {scheme:?} not allowed")]
    Scheme { scheme: String },
    /// A user name or password in the URL.
    #[error("URL carries userinfo")]
    Userinfo,
    /// No host.
    #[error("URL has no host")]
    NoHost,
    /// An IPv4 address not written as four decimal octets (`2130706433`, `0x7f.1`, `010.0.0.1`).
    #[error("IPv4 address not in dotted-decimal form")]
    NonCanonicalIp,
    /// A host name in [`SsrfPolicy::denied_hosts`].
    #[error("host {host:?} is refused")]
    DeniedHost { host: String },
    /// The literal or a resolved address is in a refused range.
    #[error("address {address} is {range}")]
    DeniedAddress { address: IpAddr, range: RefusedRange },
    /// Resolution failed, timed out or gave no address: refused (fail closed).
    #[error("host {host:?} could not be resolved: {reason}")]
    Resolve { host: String, reason: String },
}

/// Checks `input` without I/O; returns the parsed URL when it passes. See the module doc.
///
/// # Errors
/// The first reason the URL is refused.
pub fn check_syntax(input: &str, policy: &SsrfPolicy) -> Result<Url, SsrfError> {
    if input.len() > policy.max_len {
        return Err(SsrfError::TooLong { max: policy.max_len });
    }
    // WHATWG parsing strips tabs, newlines and surrounding spaces and reads `\` as `/`; other
    // parsers do not, so the host we check could differ from the one fetched.
    if input.bytes().any(|b| b.is_ascii_control() || b == b' ' || b == b'\\') {
        return Err(SsrfError::Ambiguous);
    }
    let url = Url::parse(input).map_err(SsrfError::Invalid)?;
    let scheme = url.scheme();
    if !policy.allowed_schemes.iter().any(|s| s == scheme) {
        return Err(SsrfError::Scheme { scheme: scheme.to_owned() });
    }
    let raw_host = raw_host(input, scheme).ok_or(SsrfError::Ambiguous)?;
    if !url.username().is_empty() || url.password().is_some() || raw_host.userinfo {
        return Err(SsrfError::Userinfo);
    }
    if raw_host.host.contains('%') {
        return Err(SsrfError::Ambiguous);
    }
    match url.host() {
        None => return Err(SsrfError::NoHost),
        Some(Host::Domain(domain)) => {
            if raw_host.host.is_empty() {
                return Err(SsrfError::Ambiguous);
            }
            let name = domain.trim_end_matches('.');
            if name.is_empty() {
                return Err(SsrfError::NoHost);
            }
            if is_denied_host(name, &policy.denied_hosts) {
                return Err(SsrfError::DeniedHost { host: name.to_owned() });
            }
        }
        Some(Host::Ipv4(v4)) => {
            refuse_address(IpAddr::V4(v4), policy)?;
            if raw_host.host != v4.to_string() {
                return Err(SsrfError::NonCanonicalIp);
            }
        }
        Some(Host::Ipv6(v6)) => refuse_address(IpAddr::V6(v6), policy)?,
    }
    Ok(url)
}

/// [`check_syntax`], then resolves a host name and refuses the URL if any address it resolves
/// to is refused, or if resolution fails or exceeds [`SsrfPolicy::resolve_timeout`].
///
/// # Errors
/// The first reason the URL is refused.
pub async fn check(input: &str, policy: &SsrfPolicy) -> Result<(), SsrfError> {
    let url = check_syntax(input, policy)?;
    let Some(Host::Domain(domain)) = url.host() else {
        // IP literals were judged in full by `check_syntax`.
        return Ok(());
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let resolve_error = |reason: String| SsrfError::Resolve { host: domain.to_owned(), reason };
    let addresses = tokio::time::timeout(policy.resolve_timeout, tokio::net::lookup_host((domain, port)))
        .await
        .map_err(|_| resolve_error("timed out".to_owned()))?
        .map_err(|err| resolve_error(err.to_string()))?;
    let mut any = false;
    for address in addresses {
        any = true;
        refuse_address(address.ip(), policy)?;
    }
    if any { Ok(()) } else { Err(resolve_error("no address".to_owned())) }
}

/// The refused range `address` falls in, if any (built-in ranges only; see
/// [`SsrfPolicy::denied_networks`] for the operator's own).
#[must_use]
pub fn classify(address: IpAddr) -> Option<RefusedRange> {
    match address {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn refuse_address(address: IpAddr, policy: &SsrfPolicy) -> Result<(), SsrfError> {
    let range = classify(address).or_else(|| {
        let mapped = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        policy
            .denied_networks
            .iter()
            .any(|net| net.contains(&address) || mapped.is_some_and(|m| net.contains(&m)))
            .then_some(RefusedRange::Denied)
    });
    match range {
        Some(range) => Err(SsrfError::DeniedAddress { address, range }),
        None => Ok(()),
    }
}

/// First match wins: the specific entries come before the ranges that contain them.
const V4_RANGES: &[(Ipv4Net, RefusedRange)] = &[
    (v4(169, 254, 169, 254, 32), RefusedRange::CloudMetadata),
    (v4(168, 63, 129, 16, 32), RefusedRange::CloudMetadata),
    (v4(255, 255, 255, 255, 32), RefusedRange::Broadcast),
    (v4(0, 0, 0, 0, 8), RefusedRange::Unspecified),
    (v4(10, 0, 0, 0, 8), RefusedRange::Private),
    (v4(100, 64, 0, 0, 10), RefusedRange::SharedAddressSpace),
    (v4(127, 0, 0, 0, 8), RefusedRange::Loopback),
    (v4(169, 254, 0, 0, 16), RefusedRange::LinkLocal),
    (v4(172, 16, 0, 0, 12), RefusedRange::Private),
    (v4(192, 0, 0, 0, 24), RefusedRange::Reserved),
    (v4(192, 0, 2, 0, 24), RefusedRange::Documentation),
    (v4(192, 88, 99, 0, 24), RefusedRange::Reserved),
    (v4(192, 168, 0, 0, 16), RefusedRange::Private),
    (v4(198, 18, 0, 0, 15), RefusedRange::Reserved),
    (v4(198, 51, 100, 0, 24), RefusedRange::Documentation),
    (v4(203, 0, 113, 0, 24), RefusedRange::Documentation),
    (v4(224, 0, 0, 0, 4), RefusedRange::Multicast),
    (v4(240, 0, 0, 0, 4), RefusedRange::Reserved),
];

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)
}

#[expect(clippy::too_many_arguments, reason = "eight segments of an IPv6 address")]
const fn v6(a: u16, b: u16, c: u16, d: u16, e: u16, f: u16, g: u16, h: u16, p: u8) -> Ipv6Net {
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), p)
}

/// How an IPv6 range is judged.
#[derive(Clone, Copy)]
enum V6Rule {
    Refuse(RefusedRange),
    /// The range carries an IPv4 address in its last 32 bits (IPv4-mapped and -translated,
    /// NAT64).
    EmbeddedLow32,
    /// 6to4: the IPv4 address is bits 16..48.
    SixToFour,
}

const V6_RANGES: &[(Ipv6Net, V6Rule)] = &[
    (v6(0, 0, 0, 0, 0, 0, 0, 0, 128), V6Rule::Refuse(RefusedRange::Unspecified)),
    (v6(0, 0, 0, 0, 0, 0, 0, 1, 128), V6Rule::Refuse(RefusedRange::Loopback)),
    (v6(0, 0, 0, 0, 0, 0xffff, 0, 0, 96), V6Rule::EmbeddedLow32),
    // IPv4-translated (SIIT, RFC 2765): `::ffff:0:a.b.c.d`.
    (v6(0, 0, 0, 0, 0xffff, 0, 0, 0, 96), V6Rule::EmbeddedLow32),
    (v6(0, 0, 0, 0, 0, 0, 0, 0, 96), V6Rule::Refuse(RefusedRange::Reserved)),
    (v6(0x64, 0xff9b, 0, 0, 0, 0, 0, 0, 96), V6Rule::EmbeddedLow32),
    (v6(0x64, 0xff9b, 1, 0, 0, 0, 0, 0, 48), V6Rule::Refuse(RefusedRange::Private)),
    (v6(0x100, 0, 0, 0, 0, 0, 0, 0, 64), V6Rule::Refuse(RefusedRange::Reserved)),
    (v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0, 32), V6Rule::Refuse(RefusedRange::Documentation)),
    (v6(0x2001, 0x10, 0, 0, 0, 0, 0, 0, 28), V6Rule::Refuse(RefusedRange::Reserved)),
    (v6(0x2001, 0x20, 0, 0, 0, 0, 0, 0, 28), V6Rule::Refuse(RefusedRange::Reserved)),
    (v6(0x2001, 0, 0, 0, 0, 0, 0, 0, 32), V6Rule::Refuse(RefusedRange::Reserved)),
    (v6(0x2002, 0, 0, 0, 0, 0, 0, 0, 16), V6Rule::SixToFour),
    (v6(0x3fff, 0, 0, 0, 0, 0, 0, 0, 20), V6Rule::Refuse(RefusedRange::Documentation)),
    (v6(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254, 128), V6Rule::Refuse(RefusedRange::CloudMetadata)),
    (v6(0xfc00, 0, 0, 0, 0, 0, 0, 0, 7), V6Rule::Refuse(RefusedRange::Private)),
    (v6(0xfe80, 0, 0, 0, 0, 0, 0, 0, 10), V6Rule::Refuse(RefusedRange::LinkLocal)),
    (v6(0xfec0, 0, 0, 0, 0, 0, 0, 0, 10), V6Rule::Refuse(RefusedRange::Private)),
    (v6(0xff00, 0, 0, 0, 0, 0, 0, 0, 8), V6Rule::Refuse(RefusedRange::Multicast)),
];

fn classify_v4(address: Ipv4Addr) -> Option<RefusedRange> {
    V4_RANGES.iter().find(|(net, _)| net.contains(&address)).map(|(_, range)| *range)
}

fn classify_v6(address: Ipv6Addr) -> Option<RefusedRange> {
    let (_, rule) = V6_RANGES.iter().find(|(net, _)| net.contains(&address))?;
    let octets = address.octets();
    match *rule {
        V6Rule::Refuse(range) => Some(range),
        V6Rule::EmbeddedLow32 => classify_v4(Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15])),
        V6Rule::SixToFour => classify_v4(Ipv4Addr::new(octets[2], octets[3], octets[4], octets[5])),
    }
}

fn is_denied_host(name: &str, denied: &[String]) -> bool {
    denied.iter().any(|entry| {
        let entry = entry.trim_end_matches('.');
        name.eq_ignore_ascii_case(entry)
            || name.len() > entry.len()
                && name
                    .get(name.len() - entry.len() - 1..)
                    .and_then(|tail| tail.strip_prefix('.'))
                    .is_some_and(|tail| tail.eq_ignore_ascii_case(entry))
    })
}

/// The host as written in the input (between `scheme://`, any userinfo and any port), so the
/// checks can see what the WHATWG parser normalised away.
struct RawHost<'a> {
    host: &'a str,
    userinfo: bool,
}

fn raw_host<'a>(input: &'a str, scheme: &str) -> Option<RawHost<'a>> {
    let head = input.get(..scheme.len())?;
    if !head.eq_ignore_ascii_case(scheme) {
        return None;
    }
    let rest = input.get(scheme.len()..)?.strip_prefix("://")?;
    let authority = rest.find(['/', '?', '#']).and_then(|end| rest.get(..end)).unwrap_or(rest);
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((_, host_port)) => (true, host_port),
        None => (false, authority),
    };
    let host = if host_port.starts_with('[') {
        let end = host_port.find(']')?;
        host_port.get(..=end)?
    } else {
        host_port.rsplit_once(':').map_or(host_port, |(host, _port)| host)
    };
    Some(RawHost { host, userinfo })
}

#[cfg(test)]
mod tests;
