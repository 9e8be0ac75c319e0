//! Who the caller is, once authentication has succeeded. Later stages (authorization, rate
//! limits, response shaping, the access log) read it from [`RequestCtx::principal`](crate::RequestCtx::principal).
//! Only the authentication stage sets it.

use std::sync::Arc;

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethodUsed {
    /// A portcullis API key.
    ApiKey,
    /// A JWT.
    Jwt,
    /// An opaque token checked by introspection.
    Introspection,
    /// An HMAC-signed request.
    Hmac,
    /// A client certificate.
    Mtls,
    /// HTTP Basic.
    Basic,
}

impl AuthMethodUsed {
    /// The label used in logs, metrics and identity headers.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethodUsed::ApiKey => "api_key",
            AuthMethodUsed::Jwt => "jwt",
            AuthMethodUsed::Introspection => "introspection",
            AuthMethodUsed::Hmac => "hmac",
            AuthMethodUsed::Mtls => "mtls",
            AuthMethodUsed::Basic => "basic",
        }
    }
}

/// An authenticated caller. Ids only: no credential, no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Principal {
    /// The method that authenticated the request.
    pub method: AuthMethodUsed,
    /// The organization's id, when the caller is a known consumer.
    pub org_id: Option<Arc<str>>,
    /// The organization's name.
    pub org_name: Option<Arc<str>>,
    /// The consumer's id, when the caller is a known consumer.
    pub consumer_id: Option<Arc<str>>,
    /// The consumer's name.
    pub consumer_name: Option<Arc<str>>,
    /// The credential's id (API key, password, certificate, HMAC key), when there is one.
    pub credential_id: Option<Arc<str>>,
    /// The token subject or the consumer's external subject.
    pub subject: Option<Arc<str>>,
    /// Granted scopes.
    pub scopes: Vec<Arc<str>>,
    /// Roles.
    pub roles: Vec<Arc<str>>,
    /// The plan (consumer's, else organization's).
    pub plan: Option<Arc<str>>,
}

impl Principal {
    /// A principal with no ids yet, for `method`.
    pub fn new(method: AuthMethodUsed) -> Self {
        Self {
            method,
            org_id: None,
            org_name: None,
            consumer_id: None,
            consumer_name: None,
            credential_id: None,
            subject: None,
            scopes: Vec::new(),
            roles: Vec::new(),
            plan: None,
        }
    }

    /// Whether every scope in `required` is granted.
    pub fn has_scopes<S: AsRef<str>>(&self, required: &[S]) -> bool {
        required.iter().all(|r| self.scopes.iter().any(|s| &**s == r.as_ref()))
    }

    /// Whether at least one of `roles` is held (true when `roles` is empty).
    pub fn has_any_role<S: AsRef<str>>(&self, roles: &[S]) -> bool {
        roles.is_empty() || roles.iter().any(|r| self.roles.iter().any(|s| &**s == r.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_must_all_be_held() {
        let mut p = Principal::new(AuthMethodUsed::ApiKey);
        p.scopes = vec![Arc::from("orders:read"), Arc::from("customers:read")];
        assert!(p.has_scopes(&["orders:read"]));
        assert!(p.has_scopes::<&str>(&[]));
        assert!(!p.has_scopes(&["orders:read", "orders:write"]));
        assert!(!p.has_scopes(&["orders"]));
    }

    #[test]
    fn one_role_is_enough() {
        let mut p = Principal::new(AuthMethodUsed::Jwt);
        assert!(p.has_any_role::<&str>(&[]));
        assert!(!p.has_any_role(&["admin"]));
        p.roles = vec![Arc::from("support")];
        assert!(p.has_any_role(&["admin", "support"]));
    }
}
