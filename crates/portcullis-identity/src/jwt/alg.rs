//! The JWS algorithms we verify, and which kind of key each one needs.

use std::fmt;

/// A JWS signature algorithm (RFC 7518 §3, RFC 8037). `none` is not one of them and never will be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// ECDSA on P-256 with SHA-256, signature as fixed-width `r || s`.
    Es256,
    /// ECDSA on P-384 with SHA-384, signature as fixed-width `r || s`.
    Es384,
    /// Ed25519 (RFC 8037 `EdDSA` with an `OKP` key on `Ed25519`).
    EdDsa,
    /// HMAC with SHA-256 (shared secret).
    Hs256,
    /// HMAC with SHA-384 (shared secret).
    Hs384,
    /// HMAC with SHA-512 (shared secret).
    Hs512,
}

/// The kind of key an algorithm verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Rsa,
    P256,
    P384,
    Ed25519,
    Hmac,
}

impl Alg {
    /// Every supported algorithm.
    pub const ALL: [Alg; 12] = [
        Alg::Rs256,
        Alg::Rs384,
        Alg::Rs512,
        Alg::Ps256,
        Alg::Ps384,
        Alg::Ps512,
        Alg::Es256,
        Alg::Es384,
        Alg::EdDsa,
        Alg::Hs256,
        Alg::Hs384,
        Alg::Hs512,
    ];

    /// The registered name, exactly as it appears in a JOSE header (`"RS256"`, `"EdDSA"`…).
    pub fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Rs384 => "RS384",
            Alg::Rs512 => "RS512",
            Alg::Ps256 => "PS256",
            Alg::Ps384 => "PS384",
            Alg::Ps512 => "PS512",
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::EdDsa => "EdDSA",
            Alg::Hs256 => "HS256",
            Alg::Hs384 => "HS384",
            Alg::Hs512 => "HS512",
        }
    }

    /// Parses a registered name. Case-sensitive, as RFC 7515 says: `rs256` is not `RS256`, and
    /// `none` in any casing is `None`.
    pub fn from_name(name: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Whether this is a shared-secret (HMAC) algorithm.
    pub fn is_hmac(self) -> bool {
        self.family() == Family::Hmac
    }

    pub(crate) fn family(self) -> Family {
        match self {
            Alg::Rs256 | Alg::Rs384 | Alg::Rs512 | Alg::Ps256 | Alg::Ps384 | Alg::Ps512 => Family::Rsa,
            Alg::Es256 => Family::P256,
            Alg::Es384 => Family::P384,
            Alg::EdDsa => Family::Ed25519,
            Alg::Hs256 | Alg::Hs384 | Alg::Hs512 => Family::Hmac,
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_case_sensitive() {
        for a in Alg::ALL {
            assert_eq!(Alg::from_name(a.name()), Some(a));
            assert_eq!(Alg::from_name(&a.name().to_lowercase()), None);
        }
        for none in ["none", "None", "NONE", "nOnE", "", "HS256 ", "ES512"] {
            assert_eq!(Alg::from_name(none), None);
        }
    }
}
