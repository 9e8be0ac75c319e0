//! API keys: generated with ≥ 128 bits of randomness, a visible prefix (`pc_live_`, `pc_test_`)
//! and a checksum so that leaked keys can be recognised by secret scanners without a database
//! look-up; shown once, stored only as HMAC-SHA256 under a server secret, verified in constant
//! time.
//!
//! Format: `pc_<env>_<30 base62 random characters><6 base62 checksum characters>`. The random
//! part carries 30 × log2(62) ≈ 178 bits. The checksum is the first 4 bytes of SHA-256 over
//! everything before it, in base62.

use std::fmt;

use portcullis_config::Secret;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac};

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const RANDOM_LEN: usize = 30;
const CHECK_LEN: usize = 6;
/// A server secret shorter than this is refused: HMAC keys should match the hash's output size.
pub const MIN_SECRET_BYTES: usize = 32;

/// Which environment a key belongs to; it is part of the visible prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEnv {
    /// `pc_live_`
    Live,
    /// `pc_test_`
    Test,
}

impl KeyEnv {
    fn prefix(self) -> &'static str {
        match self {
            KeyEnv::Live => "pc_live_",
            KeyEnv::Test => "pc_test_",
        }
    }
}

/// A newly issued key in plain text: show it once, then drop it. `Debug` prints only its prefix.
pub struct PlaintextKey(String);

impl PlaintextKey {
    /// The key, to show the caller once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The non-secret visible part (`pc_live_` and the first 4 random characters), for lists and
    /// logs.
    pub fn hint(&self) -> &str {
        self.0.get(..12).unwrap_or("pc_")
    }
}

impl fmt::Debug for PlaintextKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", self.hint())
    }
}

/// Why a string is not a well-formed portcullis key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    /// Not `pc_live_` or `pc_test_`.
    #[error("unknown key prefix")]
    Prefix,
    /// Wrong length or characters outside base62.
    #[error("malformed key")]
    Malformed,
    /// The checksum does not match: a typo, a truncated copy, or not our key.
    #[error("key checksum mismatch")]
    Checksum,
}

/// Why keys cannot be issued or hashed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The system random generator failed.
    #[error("the system random generator failed")]
    Random,
    /// The HMAC server secret is too short.
    #[error("the API key secret must be at least {MIN_SECRET_BYTES} bytes")]
    WeakSecret,
}

fn checksum(body: &str) -> [u8; CHECK_LEN] {
    let d = digest::digest(&digest::SHA256, body.as_bytes());
    let mut n = u32::from_be_bytes([d.as_ref()[0], d.as_ref()[1], d.as_ref()[2], d.as_ref()[3]]);
    let mut out = [b'0'; CHECK_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    out
}

/// Issues a new key.
pub fn generate(env: KeyEnv) -> Result<PlaintextKey, KeyError> {
    let rng = SystemRandom::new();
    let mut key = String::with_capacity(8 + RANDOM_LEN + CHECK_LEN);
    key.push_str(env.prefix());
    let mut filled = 0;
    while filled < RANDOM_LEN {
        let mut bytes = [0u8; 64];
        rng.fill(&mut bytes).map_err(|_| KeyError::Random)?;
        // Rejection sampling: 248 = 4 × 62, so every accepted byte maps uniformly.
        for b in bytes {
            if b < 248 && filled < RANDOM_LEN {
                key.push(char::from(ALPHABET[usize::from(b % 62)]));
                filled += 1;
            }
        }
    }
    let check = checksum(&key);
    key.extend(check.iter().map(|&c| char::from(c)));
    Ok(PlaintextKey(key))
}

/// A key that has the right shape and checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedKey {
    /// Its environment.
    pub env: KeyEnv,
}

/// Checks a candidate's prefix, shape and checksum, without any secret: cheap enough to run on
/// every request before a look-up, and what a secret scanner would do.
pub fn parse(candidate: &str) -> Result<ParsedKey, KeyFormatError> {
    let env = if candidate.starts_with(KeyEnv::Live.prefix()) {
        KeyEnv::Live
    } else if candidate.starts_with(KeyEnv::Test.prefix()) {
        KeyEnv::Test
    } else {
        return Err(KeyFormatError::Prefix);
    };
    let rest = &candidate[8..];
    if rest.len() != RANDOM_LEN + CHECK_LEN || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(KeyFormatError::Malformed);
    }
    let (body, check) = candidate.split_at(8 + RANDOM_LEN);
    if checksum(body) != check.as_bytes() {
        return Err(KeyFormatError::Checksum);
    }
    Ok(ParsedKey { env })
}

/// The stored form of a key: HMAC-SHA256 under the server secret. Useless without the secret,
/// and deterministic, so it is also the look-up index.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    /// Lower-case hex, for storage.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// From stored hex.
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(out))
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({}…)", &self.to_hex()[..8])
    }
}

/// Hashes and verifies keys with the server secret (read from a secret reference, never from
/// the config file itself).
pub struct KeyHasher(hmac::Key);

impl fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHasher(***)")
    }
}

impl KeyHasher {
    /// A hasher keyed with `secret` (at least [`MIN_SECRET_BYTES`] bytes).
    pub fn new(secret: &Secret) -> Result<Self, KeyError> {
        if secret.expose().len() < MIN_SECRET_BYTES {
            return Err(KeyError::WeakSecret);
        }
        Ok(Self(hmac::Key::new(hmac::HMAC_SHA256, secret.expose().as_bytes())))
    }

    /// The stored form of `key`.
    pub fn hash(&self, key: &str) -> KeyHash {
        let tag = hmac::sign(&self.0, key.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        KeyHash(out)
    }

    /// Whether `candidate` is the key stored as `stored`, compared in constant time.
    pub fn verify(&self, candidate: &str, stored: &KeyHash) -> bool {
        hmac::verify(&self.0, candidate.as_bytes(), &stored.0).is_ok()
    }
}

impl KeyHash {
    /// Compares two hashes in constant time (no early exit on the first differing byte).
    pub fn ct_eq(&self, other: &KeyHash) -> bool {
        self.0.iter().zip(other.0.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn secret(value: &str) -> Secret {
        let dir = std::env::temp_dir().join(format!("pc-apikey-{}-{}", std::process::id(), value.len()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("s"), value).unwrap();
        portcullis_config::resolve_secret("${file:s}", &dir).unwrap()
    }

    #[test]
    fn generated_keys_have_the_format_and_parse() {
        let k = generate(KeyEnv::Live).unwrap();
        assert!(k.expose().starts_with("pc_live_"));
        assert_eq!(k.expose().len(), 8 + 30 + 6);
        assert_eq!(parse(k.expose()), Ok(ParsedKey { env: KeyEnv::Live }));
        let t = generate(KeyEnv::Test).unwrap();
        assert_eq!(parse(t.expose()).unwrap().env, KeyEnv::Test);
        assert!(!format!("{k:?}").contains(&k.expose()[12..]), "Debug must not print the key");
    }

    #[test]
    fn keys_are_unique_and_use_the_whole_alphabet() {
        let keys: Vec<String> = (0..2000).map(|_| generate(KeyEnv::Live).unwrap().expose().to_owned()).collect();
        assert_eq!(keys.iter().collect::<HashSet<_>>().len(), keys.len());
        let chars: HashSet<u8> = keys.iter().flat_map(|k| k.as_bytes()[8..38].to_vec()).collect();
        assert_eq!(chars.len(), 62);
    }

    #[test]
    fn parse_rejects_wrong_prefix_shape_and_any_single_change() {
        let k = generate(KeyEnv::Live).unwrap().expose().to_owned();
        assert_eq!(parse(&k.replacen("pc_live_", "pc_prod_", 1)), Err(KeyFormatError::Prefix));
        assert_eq!(parse("sk_live_abc"), Err(KeyFormatError::Prefix));
        assert_eq!(parse(&k[..k.len() - 1]), Err(KeyFormatError::Malformed));
        assert_eq!(parse(&format!("{}!", &k[..k.len() - 1])), Err(KeyFormatError::Malformed));
        let mut rejected = 0;
        for i in 8..k.len() {
            let mut b = k.clone().into_bytes();
            b[i] = if b[i] == b'a' { b'b' } else { b'a' };
            if parse(std::str::from_utf8(&b).unwrap()) == Err(KeyFormatError::Checksum) {
                rejected += 1;
            }
        }
        assert_eq!(rejected, k.len() - 8, "every single-character change must break the checksum");
    }

    #[test]
    fn stored_hash_verifies_only_the_right_key_under_the_right_secret() {
        let hasher = KeyHasher::new(&secret("0123456789abcdef0123456789abcdef")).unwrap();
        let k = generate(KeyEnv::Live).unwrap();
        let stored = hasher.hash(k.expose());
        assert!(hasher.verify(k.expose(), &stored));
        assert!(!hasher.verify(generate(KeyEnv::Live).unwrap().expose(), &stored));
        let other = KeyHasher::new(&secret("another secret of at least 32 bytes!")).unwrap();
        assert!(!other.verify(k.expose(), &stored), "a different server secret must not verify");
        assert_eq!(KeyHash::from_hex(&stored.to_hex()), Some(stored.clone()));
        assert!(!stored.to_hex().contains(&k.expose()[8..]));
        assert!(KeyHash::from_hex("zz").is_none());
    }

    #[test]
    fn weak_secrets_are_refused() {
        assert_eq!(KeyHasher::new(&secret("short")).unwrap_err(), KeyError::WeakSecret);
    }
}
