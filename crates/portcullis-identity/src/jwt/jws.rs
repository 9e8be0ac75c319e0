//! JWS compact serialization (RFC 7515 §7.1): split, decode, check the protected header against
//! our policy, pick the key from *our* key set, verify the signature with ring.
//!
//! The header policy is documented on the [`super`] module.

use std::fmt;

use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::JwtError;
use super::alg::{Alg, Family};
use super::b64;
use super::jwk::{Jwk, JwkSet, Lookup, Material};

/// A JSON object whose top level has no duplicate member names.
pub(crate) struct UniqueObject(pub(crate) Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = UniqueObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<UniqueObject, A::Error> {
                let mut map = Map::new();
                while let Some(key) = access.next_key::<String>()? {
                    if map.contains_key(&key) {
                        return Err(de::Error::custom("duplicate member"));
                    }
                    let value: Value = access.next_value()?;
                    map.insert(key, value);
                }
                Ok(UniqueObject(map))
            }
        }
        d.deserialize_map(V)
    }
}

/// Parses a JSON object with unique top-level members.
pub(crate) fn parse_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    serde_json::from_slice::<UniqueObject>(bytes).ok().map(|o| o.0)
}

/// The parts of a compact JWS after decoding, before the signature is checked.
pub(crate) struct Compact<'a> {
    pub(crate) signing_input: &'a [u8],
    pub(crate) alg: Alg,
    pub(crate) kid: Option<String>,
    pub(crate) typ: Option<String>,
    pub(crate) payload: Vec<u8>,
    pub(crate) signature: Vec<u8>,
}

/// Splits and decodes a compact JWS and applies the header policy. `algorithms` is the
/// allow-list.
pub(crate) fn parse<'a>(token: &'a str, algorithms: &[Alg], max_bytes: usize) -> Result<Compact<'a>, JwtError> {
    if token.len() > max_bytes {
        return Err(JwtError::TooLarge { max: max_bytes });
    }
    let bytes = token.as_bytes();
    let mut parts = bytes.split(|&b| b == b'.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(JwtError::Malformed("a compact JWS has exactly three segments"));
    };
    if h.is_empty() || s.is_empty() {
        return Err(JwtError::Malformed("empty header or signature segment"));
    }
    let header_json = b64::decode(h).ok_or(JwtError::Malformed("header is not base64url"))?;
    let header = parse_object(&header_json).ok_or(JwtError::Malformed("header is not a JSON object"))?;
    let alg = match header.get("alg") {
        Some(Value::String(name)) if name.eq_ignore_ascii_case("none") => return Err(JwtError::AlgNone),
        Some(Value::String(name)) => Alg::from_name(name).ok_or(JwtError::UnsupportedAlg)?,
        Some(_) => return Err(JwtError::Malformed("alg is not a string")),
        None => return Err(JwtError::Malformed("alg is missing")),
    };
    if !algorithms.contains(&alg) {
        return Err(JwtError::AlgNotAllowed(alg));
    }
    if header.contains_key("crit") {
        return Err(JwtError::UnknownCrit);
    }
    for name in ["jku", "x5u", "jwk"] {
        if header.contains_key(name) {
            return Err(JwtError::ForbiddenHeader(name));
        }
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(JwtError::Malformed("kid is not a string")),
    };
    let typ = match header.get("typ") {
        None => None,
        Some(Value::String(t)) => Some(t.clone()),
        Some(_) => return Err(JwtError::Malformed("typ is not a string")),
    };
    let payload = b64::decode(p).ok_or(JwtError::Malformed("payload is not base64url"))?;
    let signature = b64::decode(s).ok_or(JwtError::Malformed("signature is not base64url"))?;
    let signing_input = &bytes[..h.len() + 1 + p.len()];
    Ok(Compact { signing_input, alg, kid, typ, payload, signature })
}

/// Picks the key for `compact` from `keys`.
pub(crate) fn select<'k>(keys: &'k JwkSet, compact: &Compact<'_>) -> Result<&'k Jwk, JwtError> {
    match keys.find(compact.kid.as_deref(), compact.alg) {
        Lookup::Found(k) => Ok(k),
        Lookup::Unfit => Err(JwtError::KeyAlgMismatch(compact.alg)),
        Lookup::Unknown => Err(JwtError::UnknownKey),
        Lookup::Ambiguous => Err(JwtError::AmbiguousKey),
    }
}

/// Verifies `sig` over `input` with `key` under `alg`: the one function every token goes
/// through. ECDSA signatures are the JOSE fixed-width `r || s` form. Refuses a key that does not
/// fit `alg` (type, curve, declared `alg`, HMAC secret length).
pub fn check_signature(key: &Jwk, alg: Alg, input: &[u8], sig: &[u8]) -> Result<(), JwtError> {
    if !key.fits(alg) {
        return Err(JwtError::KeyAlgMismatch(alg));
    }
    let ok = match (key.material(), alg.family()) {
        (Material::Rsa { n, e }, Family::Rsa) => {
            let params: &signature::RsaParameters = match alg {
                Alg::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                Alg::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                Alg::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                Alg::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
                Alg::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
                Alg::Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
                _ => return Err(JwtError::KeyAlgMismatch(alg)),
            };
            RsaPublicKeyComponents { n, e }.verify(params, input, sig).is_ok()
        }
        (Material::Ec { point, .. }, Family::P256) => {
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point).verify(input, sig).is_ok()
        }
        (Material::Ec { point, .. }, Family::P384) => {
            UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point).verify(input, sig).is_ok()
        }
        (Material::Ed25519 { x }, Family::Ed25519) => {
            UnparsedPublicKey::new(&signature::ED25519, x).verify(input, sig).is_ok()
        }
        (Material::Hmac(_), Family::Hmac) => match key.hmac_key(alg) {
            Some(k) => ring::hmac::verify(k, input, sig).is_ok(),
            None => false,
        },
        _ => return Err(JwtError::KeyAlgMismatch(alg)),
    };
    if ok { Ok(()) } else { Err(JwtError::BadSignature) }
}

/// A JWS whose signature verified; nothing is known about its payload.
#[derive(Debug, Clone)]
pub struct VerifiedJws {
    /// The algorithm it was verified with.
    pub alg: Alg,
    /// The `kid` it named.
    pub kid: Option<String>,
    /// The decoded payload.
    pub payload: Vec<u8>,
}

/// Verifies the signature of a compact JWS against `keys`, with the header policy above and
/// `algorithms` as the allow-list, and nothing else: no claim is read. [`super::Verifier`] is
/// what authenticates a JWT; this is the signature layer alone (for test vectors and tools).
pub fn verify_signature(
    token: &str,
    keys: &JwkSet,
    algorithms: &[Alg],
    max_bytes: usize,
) -> Result<VerifiedJws, JwtError> {
    super::check_algorithms(algorithms)?;
    let compact = parse(token, algorithms, max_bytes)?;
    let key = select(keys, &compact)?;
    check_signature(key, compact.alg, compact.signing_input, &compact.signature)?;
    Ok(VerifiedJws { alg: compact.alg, kid: compact.kid, payload: compact.payload })
}
