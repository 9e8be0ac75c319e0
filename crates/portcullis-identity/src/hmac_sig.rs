//! HMAC request signing for machine-to-machine clients (`PC-HMAC-SHA256`).
//!
//! # The scheme (what a client implements)
//!
//! A client holds a key id and a 32-byte signing secret, given to it once (base64url without
//! padding) when the credential is issued. It sends:
//!
//! ```text
//! Authorization: PC-HMAC-SHA256 keyId="pchk_…", ts="1767225600", nonce="…", headers="host;content-type", sig="…"
//! ```
//!
//! - `keyId`: 1–128 characters of `A-Z a-z 0-9 . _ -`.
//! - `ts`: the signing time in whole seconds since the Unix epoch. The gateway accepts it within
//!   ±300 s of its own clock by default ([`DEFAULT_WINDOW`]).
//! - `nonce`: 16–128 characters of `A-Z a-z 0-9 . _ ~ -`, unique per request for this key (e.g.
//!   22 random base64url characters). A nonce seen twice within the window is a replay.
//! - `headers`: the signed header names, lower case, separated by `;`, no repeats, at most 32.
//!   `host` must be one of them.
//! - `sig`: standard base64 (with padding) of HMAC-SHA256(signing secret, canonical string).
//! - Parameters are separated by `,` with optional spaces; values are always in double quotes and
//!   contain no quote or backslash; every parameter appears exactly once; no other parameters.
//!
//! The canonical string is these lines joined by `\n` (no trailing newline):
//!
//! ```text
//! PC-HMAC-SHA256
//! <method, as sent, e.g. POST>
//! <canonical path>
//! <canonical query>
//! <name>:<value>          one line per signed header, in the order of `headers`
//! <the headers parameter, e.g. host;content-type>
//! <lower-case hex SHA-256 of the body; of the empty string when there is none>
//! <ts>
//! <nonce>
//! ```
//!
//! - Canonical path: the request path as sent, split on `/`; in each segment every `%XX` is
//!   decoded, then every byte outside `A-Z a-z 0-9 - . _ ~` is written as `%XX` with upper-case
//!   hex. An empty path is `/`. Dot segments and repeated slashes are kept as they are (the gateway
//!   normalises paths before this stage: send normalised paths).
//! - Canonical query: the query string split on `&` (empty pieces dropped), each piece split at the
//!   first `=` into name and value (no `=`: empty value), both encoded like a path segment (`+` is
//!   a literal plus and becomes `%2B`), sorted by name then value (byte order), joined as
//!   `name=value` with `&`. No query: an empty line.
//! - Header values: every value of that header, each with leading and trailing spaces and tabs
//!   removed, joined by `,`. `host` is the `Host` header or, in HTTP/2, the `:authority`.
//!
//! The gateway keeps only a salt per credential: the signing secret is
//! `HMAC-SHA256(server secret, "pc-hmac-v1:" + keyId + ":" + salt)` ([`derive_signing_secret`]),
//! recomputed per request, so a leaked credential table does not let anyone sign.
//!
//! # Verifying (gateway side)
//!
//! Parse the header, look up the credential's salt by key id, derive the secret, hash the body
//! (chunk by chunk with [`BodyDigest`]), [`verify`], and only then record the nonce with
//! [`NonceCache::check_and_insert`], so unauthenticated requests cannot fill the cache.
//!
//! ```
//! use std::time::Duration;
//! use portcullis_identity::hmac_sig::{self, BodyDigest, NonceCache, RequestParts, SigningSecret};
//! # let dir = std::env::temp_dir();
//! # std::fs::write(dir.join("pc-doc-hmac-secret"), "a server secret of 32 bytes or more").unwrap();
//! let server = portcullis_config::resolve_secret("${file:pc-doc-hmac-secret}", &dir).unwrap();
//!
//! // Issuing: store key id and salt; hand the client its signing secret once.
//! let key_id = hmac_sig::new_key_id().unwrap();
//! let salt = hmac_sig::new_salt().unwrap();
//! let for_client = hmac_sig::derive_signing_secret(&server, &key_id, &salt).unwrap().to_base64();
//!
//! // Client: sign a request.
//! let client_secret = SigningSecret::from_base64(&for_client).unwrap();
//! let req = http::Request::post("/orders?b=2&a=1")
//!     .header("host", "api.example.com")
//!     .header("content-type", "application/json")
//!     .body(())
//!     .unwrap();
//! let (mut parts, ()) = req.into_parts();
//! let body = br#"{"sku":"x"}"#;
//! let now = 1_767_225_600;
//! let nonce = hmac_sig::new_nonce().unwrap();
//! let params = hmac_sig::sign(
//!     &client_secret, &key_id, now, &nonce, &["host", "content-type"],
//!     RequestParts::from(&parts), &BodyDigest::of(body),
//! ).unwrap();
//! parts.headers.insert(http::header::AUTHORIZATION, params.to_header_value().unwrap());
//!
//! // Gateway: verify, then reject replays.
//! let got = hmac_sig::parse_authorization(&parts.headers[http::header::AUTHORIZATION]).unwrap();
//! let secret = hmac_sig::derive_signing_secret(&server, &got.key_id, &salt).unwrap();
//! let mut digest = BodyDigest::new();
//! digest.update(body); // chunk by chunk
//! hmac_sig::verify(&secret, &got, RequestParts::from(&parts), &digest.finish(), now + 3, hmac_sig::DEFAULT_WINDOW)
//!     .unwrap();
//! let nonces = NonceCache::new(100_000, hmac_sig::DEFAULT_WINDOW);
//! assert!(nonces.check_and_insert(&got.key_id, &got.nonce, now + 3));
//! assert!(!nonces.check_and_insert(&got.key_id, &got.nonce, now + 4), "a replay");
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use portcullis_config::Secret;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac};

use crate::apikey::MIN_SECRET_BYTES;

/// The `Authorization` scheme name.
pub const SCHEME: &str = "PC-HMAC-SHA256";
/// How far `ts` may be from the gateway's clock, either way, by default.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(300);
/// At most this many signed headers.
pub const MAX_SIGNED_HEADERS: usize = 32;
const MAX_KEY_ID: usize = 128;
const MIN_NONCE: usize = 16;
const MAX_NONCE: usize = 128;
const MAX_HEADER_LEN: usize = 4096;
const DERIVATION_LABEL: &str = "pc-hmac-v1:";

/// Why a signed request is refused. Never carries the signature, a secret or header values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HmacError {
    /// The `Authorization` header is not a well-formed `PC-HMAC-SHA256` header.
    #[error("malformed PC-HMAC-SHA256 authorization header: {0}")]
    Malformed(&'static str),
    /// `host` is not among the signed headers.
    #[error("the host header must be signed")]
    HostNotSigned,
    /// A header named in `headers` is not in the request.
    #[error("signed header {0} is missing from the request")]
    MissingSignedHeader(String),
    /// The request target cannot be put in canonical form (bad percent-encoding).
    #[error("request target cannot be canonicalised")]
    BadTarget,
    /// `ts` is outside the accepted window around the gateway's clock.
    #[error("signature timestamp outside the accepted window")]
    Expired,
    /// The signature does not match (wrong key, or the request was changed).
    #[error("signature mismatch")]
    BadSignature,
    /// The server secret used for derivation is too short.
    #[error("the HMAC server secret must be at least {MIN_SECRET_BYTES} bytes")]
    WeakServerSecret,
    /// A signing secret given in base64 is not 32 bytes of base64url.
    #[error("malformed signing secret")]
    MalformedSecret,
    /// The system random generator failed.
    #[error("the system random generator failed")]
    Random,
}

/// A client's 32-byte signing secret. `Debug` prints `***`.
#[derive(Clone)]
pub struct SigningSecret {
    raw: [u8; 32],
    key: hmac::Key,
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(***)")
    }
}

impl SigningSecret {
    fn from_raw(raw: [u8; 32]) -> Self {
        Self { raw, key: hmac::Key::new(hmac::HMAC_SHA256, &raw) }
    }

    /// The secret as base64url without padding: what the client is given, once.
    pub fn to_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.raw)
    }

    /// A secret from its base64url form (client side).
    pub fn from_base64(s: &str) -> Result<Self, HmacError> {
        let bytes = URL_SAFE_NO_PAD.decode(s.trim()).map_err(|_| HmacError::MalformedSecret)?;
        let raw: [u8; 32] = bytes.try_into().map_err(|_| HmacError::MalformedSecret)?;
        Ok(Self::from_raw(raw))
    }
}

/// Derives a client's signing secret from the server secret, its key id and its stored salt:
/// `HMAC-SHA256(server, "pc-hmac-v1:" + key_id + ":" + salt)`. The key id must be well formed
/// (as [`parse_authorization`] guarantees).
pub fn derive_signing_secret(server: &Secret, key_id: &str, salt: &str) -> Result<SigningSecret, HmacError> {
    if server.expose().len() < MIN_SECRET_BYTES {
        return Err(HmacError::WeakServerSecret);
    }
    // Key ids never contain ':', so "key_id:salt" cannot be split two ways.
    if !valid_key_id(key_id) {
        return Err(HmacError::Malformed("keyId"));
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, server.expose().as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(DERIVATION_LABEL.as_bytes());
    ctx.update(key_id.as_bytes());
    ctx.update(b":");
    ctx.update(salt.as_bytes());
    let tag = ctx.sign();
    let mut raw = [0u8; 32];
    raw.copy_from_slice(tag.as_ref());
    Ok(SigningSecret::from_raw(raw))
}

fn random_b64(n: usize) -> Result<String, HmacError> {
    let mut buf = [0u8; 32];
    let bytes = buf.get_mut(..n).ok_or(HmacError::Random)?;
    SystemRandom::new().fill(bytes).map_err(|_| HmacError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// A new key id: `pchk_` and 16 random bytes in base64url (27 characters in all).
pub fn new_key_id() -> Result<String, HmacError> {
    Ok(format!("pchk_{}", random_b64(16)?))
}

/// A new salt to store with a credential: 16 random bytes, base64url.
pub fn new_salt() -> Result<String, HmacError> {
    random_b64(16)
}

/// A new nonce for a request (client side): 16 random bytes, base64url (22 characters).
pub fn new_nonce() -> Result<String, HmacError> {
    random_b64(16)
}

/// SHA-256 of a request body, fed chunk by chunk.
#[derive(Clone)]
pub struct BodyDigest(digest::Context);

impl Default for BodyDigest {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for BodyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BodyDigest")
    }
}

impl BodyDigest {
    /// An empty digest.
    pub fn new() -> Self {
        Self(digest::Context::new(&digest::SHA256))
    }

    /// Adds the next chunk.
    pub fn update(&mut self, chunk: &[u8]) {
        self.0.update(chunk);
    }

    /// The hash of everything fed so far.
    pub fn finish(self) -> BodyHash {
        let d = self.0.finish();
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        BodyHash(out)
    }

    /// The hash of a whole body at once.
    pub fn of(body: &[u8]) -> BodyHash {
        let mut d = Self::new();
        d.update(body);
        d.finish()
    }
}

/// A body's SHA-256.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BodyHash([u8; 32]);

impl BodyHash {
    /// Lower-case hex, as it appears in the canonical string.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

/// The request as the signature sees it.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// The method.
    pub method: &'a Method,
    /// The request target (path and query; an absolute URI's authority stands in for `host`
    /// when there is no `Host` header, as in HTTP/2).
    pub uri: &'a Uri,
    /// The headers.
    pub headers: &'a HeaderMap,
}

impl<'a> From<&'a http::request::Parts> for RequestParts<'a> {
    fn from(p: &'a http::request::Parts) -> Self {
        Self { method: &p.method, uri: &p.uri, headers: &p.headers }
    }
}

/// The parameters of a `PC-HMAC-SHA256` header. `Debug` does not print the signature.
#[derive(Clone, PartialEq, Eq)]
pub struct SignatureParams {
    /// The credential's key id.
    pub key_id: String,
    /// Signing time, seconds since the Unix epoch.
    pub ts: u64,
    /// The request's nonce.
    pub nonce: String,
    /// Signed header names in signing order; always contains `host`.
    pub signed_headers: Vec<HeaderName>,
    sig: [u8; 32],
}

impl fmt::Debug for SignatureParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignatureParams")
            .field("key_id", &self.key_id)
            .field("ts", &self.ts)
            .field("nonce", &self.nonce)
            .field("signed_headers", &self.signed_headers)
            .field("sig", &"***")
            .finish()
    }
}

impl SignatureParams {
    /// The `headers` parameter: names joined by `;`.
    pub fn headers_param(&self) -> String {
        join_names(&self.signed_headers)
    }

    /// The `Authorization` header value carrying these parameters.
    pub fn to_header_value(&self) -> Result<HeaderValue, HmacError> {
        let s = format!(
            "{SCHEME} keyId=\"{}\", ts=\"{}\", nonce=\"{}\", headers=\"{}\", sig=\"{}\"",
            self.key_id,
            self.ts,
            self.nonce,
            self.headers_param(),
            STANDARD.encode(self.sig)
        );
        HeaderValue::from_str(&s).map_err(|_| HmacError::Malformed("unencodable parameters"))
    }
}

fn join_names(names: &[HeaderName]) -> String {
    let mut s = String::new();
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            s.push(';');
        }
        s.push_str(n.as_str());
    }
    s
}

fn valid_key_id(s: &str) -> bool {
    (1..=MAX_KEY_ID).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn valid_nonce(s: &str) -> bool {
    (MIN_NONCE..=MAX_NONCE).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
}

fn parse_signed_headers(s: &str) -> Result<Vec<HeaderName>, HmacError> {
    let mut out: Vec<HeaderName> = Vec::new();
    for name in s.split(';') {
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(HmacError::Malformed("headers"));
        }
        let h = HeaderName::from_bytes(name.as_bytes()).map_err(|_| HmacError::Malformed("headers"))?;
        if out.contains(&h) {
            return Err(HmacError::Malformed("repeated header in headers"));
        }
        if out.len() == MAX_SIGNED_HEADERS {
            return Err(HmacError::Malformed("too many signed headers"));
        }
        out.push(h);
    }
    if !out.contains(&http::header::HOST) {
        return Err(HmacError::HostNotSigned);
    }
    Ok(out)
}

/// Parses an `Authorization: PC-HMAC-SHA256 …` header value.
pub fn parse_authorization(value: &HeaderValue) -> Result<SignatureParams, HmacError> {
    let bytes = value.as_bytes();
    if bytes.len() > MAX_HEADER_LEN {
        return Err(HmacError::Malformed("too long"));
    }
    let s = std::str::from_utf8(bytes).map_err(|_| HmacError::Malformed("not ASCII"))?;
    let (scheme, rest) = s.split_once(' ').ok_or(HmacError::Malformed("no parameters"))?;
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return Err(HmacError::Malformed("scheme"));
    }
    let (mut key_id, mut ts, mut nonce, mut headers, mut sig) = (None, None, None, None, None);
    let mut rest = rest.trim_start_matches([' ', '\t']);
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=').ok_or(HmacError::Malformed("parameter without value"))?;
        let after = after.strip_prefix('"').ok_or(HmacError::Malformed("unquoted value"))?;
        let (val, after) = after.split_once('"').ok_or(HmacError::Malformed("unterminated value"))?;
        if val.contains('\\') {
            return Err(HmacError::Malformed("escaped value"));
        }
        let slot = match name.trim_end_matches([' ', '\t']) {
            "keyId" => &mut key_id,
            "ts" => &mut ts,
            "nonce" => &mut nonce,
            "headers" => &mut headers,
            "sig" => &mut sig,
            _ => return Err(HmacError::Malformed("unknown parameter")),
        };
        if slot.replace(val).is_some() {
            return Err(HmacError::Malformed("repeated parameter"));
        }
        let after = after.trim_start_matches([' ', '\t']);
        rest = match after.strip_prefix(',') {
            Some(r) => {
                let r = r.trim_start_matches([' ', '\t']);
                if r.is_empty() {
                    return Err(HmacError::Malformed("trailing comma"));
                }
                r
            }
            None if after.is_empty() => after,
            None => return Err(HmacError::Malformed("expected a comma")),
        };
    }
    let key_id = key_id.ok_or(HmacError::Malformed("keyId missing"))?;
    let ts = ts.ok_or(HmacError::Malformed("ts missing"))?;
    let nonce = nonce.ok_or(HmacError::Malformed("nonce missing"))?;
    let headers = headers.ok_or(HmacError::Malformed("headers missing"))?;
    let sig = sig.ok_or(HmacError::Malformed("sig missing"))?;
    if !valid_key_id(key_id) {
        return Err(HmacError::Malformed("keyId"));
    }
    if ts.is_empty() || ts.len() > 12 || !ts.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HmacError::Malformed("ts"));
    }
    let ts: u64 = ts.parse().map_err(|_| HmacError::Malformed("ts"))?;
    if !valid_nonce(nonce) {
        return Err(HmacError::Malformed("nonce"));
    }
    let signed_headers = parse_signed_headers(headers)?;
    let sig_bytes = STANDARD.decode(sig).map_err(|_| HmacError::Malformed("sig"))?;
    let sig: [u8; 32] = sig_bytes.try_into().map_err(|_| HmacError::Malformed("sig"))?;
    Ok(SignatureParams { key_id: key_id.to_owned(), ts, nonce: nonce.to_owned(), signed_headers, sig })
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` in `part` and re-encodes every byte outside the unreserved set.
fn canonical_component(part: &[u8], out: &mut Vec<u8>) -> Result<(), HmacError> {
    const HEX_UP: &[u8; 16] = b"0123456789ABCDEF";
    let mut i = 0;
    while i < part.len() {
        let mut b = part[i];
        if b == b'%' {
            let hi = part.get(i + 1).copied().and_then(hex_val).ok_or(HmacError::BadTarget)?;
            let lo = part.get(i + 2).copied().and_then(hex_val).ok_or(HmacError::BadTarget)?;
            b = (hi << 4) | lo;
            i += 3;
        } else {
            i += 1;
        }
        if is_unreserved(b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX_UP[usize::from(b >> 4)], HEX_UP[usize::from(b & 0xf)]]);
        }
    }
    Ok(())
}

/// The canonical form of a request path (see the module docs).
pub fn canonical_path(path: &str) -> Result<String, HmacError> {
    if path.is_empty() {
        return Ok("/".to_owned());
    }
    let mut out = Vec::with_capacity(path.len() + 8);
    for (i, seg) in path.as_bytes().split(|&b| b == b'/').enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        canonical_component(seg, &mut out)?;
    }
    String::from_utf8(out).map_err(|_| HmacError::BadTarget)
}

/// The canonical form of a query string, without the `?` (see the module docs).
pub fn canonical_query(query: &str) -> Result<String, HmacError> {
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for piece in query.as_bytes().split(|&b| b == b'&') {
        if piece.is_empty() {
            continue;
        }
        let (name, value) = match piece.iter().position(|&b| b == b'=') {
            Some(at) => (&piece[..at], &piece[at + 1..]),
            None => (piece, &[][..]),
        };
        let (mut n, mut v) = (Vec::new(), Vec::new());
        canonical_component(name, &mut n)?;
        canonical_component(value, &mut v)?;
        pairs.push((n, v));
    }
    pairs.sort_unstable();
    let mut out = Vec::with_capacity(query.len() + 8);
    for (i, (n, v)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        out.extend_from_slice(&n);
        out.push(b'=');
        out.extend_from_slice(&v);
    }
    String::from_utf8(out).map_err(|_| HmacError::BadTarget)
}

fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(v.len());
    let end = v.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(start, |e| e + 1);
    v.get(start..end).unwrap_or(&[])
}

fn push_header(req: &RequestParts<'_>, name: &HeaderName, out: &mut Vec<u8>) -> Result<(), HmacError> {
    out.extend_from_slice(name.as_str().as_bytes());
    out.push(b':');
    let mut values = req.headers.get_all(name).iter().peekable();
    if values.peek().is_none() {
        if name == http::header::HOST
            && let Some(auth) = req.uri.authority()
        {
            out.extend_from_slice(auth.as_str().as_bytes());
            return Ok(());
        }
        return Err(HmacError::MissingSignedHeader(name.as_str().to_owned()));
    }
    for (i, v) in values.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(trim_ows(v.as_bytes()));
    }
    Ok(())
}

/// The canonical string that is signed (see the module docs). Bytes, because header values may
/// contain non-UTF-8 octets.
pub fn canonical_string(
    req: RequestParts<'_>,
    signed_headers: &[HeaderName],
    body: &BodyHash,
    ts: u64,
    nonce: &str,
) -> Result<Vec<u8>, HmacError> {
    if !signed_headers.contains(&http::header::HOST) {
        return Err(HmacError::HostNotSigned);
    }
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(SCHEME.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_path(req.uri.path())?.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_query(req.uri.query().unwrap_or(""))?.as_bytes());
    out.push(b'\n');
    for name in signed_headers {
        push_header(&req, name, &mut out)?;
        out.push(b'\n');
    }
    out.extend_from_slice(join_names(signed_headers).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(body.to_hex().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(ts.to_string().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(nonce.as_bytes());
    Ok(out)
}

/// Signs a request (clients, tests, the CLI). `signed_headers` must include `host`; names are
/// lower-cased. Returns the parameters; put [`SignatureParams::to_header_value`] in
/// `Authorization`.
pub fn sign(
    secret: &SigningSecret,
    key_id: &str,
    ts: u64,
    nonce: &str,
    signed_headers: &[&str],
    req: RequestParts<'_>,
    body: &BodyHash,
) -> Result<SignatureParams, HmacError> {
    if !valid_key_id(key_id) {
        return Err(HmacError::Malformed("keyId"));
    }
    if !valid_nonce(nonce) {
        return Err(HmacError::Malformed("nonce"));
    }
    let signed_headers = parse_signed_headers(&signed_headers.join(";").to_ascii_lowercase())?;
    let canonical = canonical_string(req, &signed_headers, body, ts, nonce)?;
    let tag = hmac::sign(&secret.key, &canonical);
    let mut sig = [0u8; 32];
    sig.copy_from_slice(tag.as_ref());
    Ok(SignatureParams { key_id: key_id.to_owned(), ts, nonce: nonce.to_owned(), signed_headers, sig })
}

/// Checks a signed request: `ts` within `window` of `now` (seconds since the Unix epoch), then
/// the signature over the canonical string, compared in constant time. Does not check the
/// nonce: do that afterwards with a [`NonceCache`].
pub fn verify(
    secret: &SigningSecret,
    params: &SignatureParams,
    req: RequestParts<'_>,
    body: &BodyHash,
    now: u64,
    window: Duration,
) -> Result<(), HmacError> {
    if now.abs_diff(params.ts) > window.as_secs() {
        return Err(HmacError::Expired);
    }
    let canonical = canonical_string(req, &params.signed_headers, body, params.ts, &params.nonce)?;
    hmac::verify(&secret.key, &canonical, &params.sig).map_err(|_| HmacError::BadSignature)
}

/// Remembers `(key id, nonce)` pairs to refuse replays, in memory, for one gateway process.
///
/// Each pair is kept for twice the window (a request signed at the far end of the window stays
/// acceptable that long). At most `capacity` live pairs are kept: when the cache is full of live
/// pairs a new nonce is refused (fail closed: a replay is never let through to make room);
/// [`NonceCache::refused_full`] counts those, size the capacity to peak requests per window.
/// Amortised O(1) per call. Pairs are stored as 16 bytes of SHA-256, not in clear.
#[derive(Debug)]
pub struct NonceCache {
    inner: Mutex<NonceInner>,
    capacity: usize,
    keep_secs: u64,
}

#[derive(Debug, Default)]
struct NonceInner {
    seen: HashMap<[u8; 16], u64>,
    order: VecDeque<(u64, [u8; 16])>,
    refused_full: u64,
}

impl NonceCache {
    /// A cache for `capacity` live nonces, for signatures accepted within `window`.
    pub fn new(capacity: usize, window: Duration) -> Self {
        Self {
            inner: Mutex::new(NonceInner::default()),
            capacity: capacity.max(1),
            keep_secs: window.as_secs().saturating_mul(2).max(1),
        }
    }

    fn fingerprint(key_id: &str, nonce: &str) -> [u8; 16] {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(key_id.as_bytes());
        ctx.update(b"\n");
        ctx.update(nonce.as_bytes());
        let d = ctx.finish();
        let mut out = [0u8; 16];
        out.copy_from_slice(&d.as_ref()[..16]);
        out
    }

    /// `true` if this nonce was not seen for this key within the retention time (and records it);
    /// `false` for a replay, or when the cache is full of live nonces. `now` is in seconds since
    /// the Unix epoch.
    pub fn check_and_insert(&self, key_id: &str, nonce: &str, now: u64) -> bool {
        let fp = Self::fingerprint(key_id, nonce);
        let mut g = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let inner = &mut *g;
        while let Some(&(expires, old)) = inner.order.front() {
            if expires > now {
                break;
            }
            inner.order.pop_front();
            if inner.seen.get(&old) == Some(&expires) {
                inner.seen.remove(&old);
            }
        }
        if let Some(&expires) = inner.seen.get(&fp) {
            if expires > now {
                return false;
            }
            // Expired but still present (the clock went backwards earlier): treat as new.
            inner.seen.remove(&fp);
        }
        if inner.seen.len() >= self.capacity {
            inner.refused_full += 1;
            return false;
        }
        let expires = now.saturating_add(self.keep_secs);
        inner.seen.insert(fp, expires);
        inner.order.push_back((expires, fp));
        true
    }

    /// Live nonces held.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).seen.len()
    }

    /// Whether no nonce is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many fresh nonces were refused because the cache was full.
    pub fn refused_full(&self) -> u64 {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).refused_full
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_queries_canonicalise_consistently() {
        assert_eq!(canonical_path("").unwrap(), "/");
        assert_eq!(canonical_path("/a%7eb/c d/%2f").unwrap(), "/a~b/c%20d/%2F");
        assert_eq!(canonical_path("/%41").unwrap(), "/A");
        assert_eq!(canonical_path("/x%zz"), Err(HmacError::BadTarget));
        assert_eq!(canonical_query("b=2&a=1&&a=0&c").unwrap(), "a=0&a=1&b=2&c=");
        assert_eq!(canonical_query("q=a+b%20c").unwrap(), "q=a%2Bb%20c");
        assert_eq!(canonical_query("x=%").unwrap_err(), HmacError::BadTarget);
    }

    #[test]
    fn trim_removes_only_outer_whitespace() {
        assert_eq!(trim_ows(b" \ta b\t "), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
        assert_eq!(trim_ows(b""), b"");
    }

    #[test]
    fn nonce_cache_expires_and_bounds() {
        let c = NonceCache::new(2, Duration::from_secs(10));
        assert!(c.check_and_insert("k", "n1", 100));
        assert!(!c.check_and_insert("k", "n1", 119));
        assert!(c.check_and_insert("other", "n1", 100), "nonces are per key");
        assert!(!c.check_and_insert("k", "n2", 101), "full of live nonces: refused");
        assert_eq!(c.refused_full(), 1);
        assert!(c.check_and_insert("k", "n1", 120), "expired after twice the window");
        assert!(c.len() <= 2);
    }
}
