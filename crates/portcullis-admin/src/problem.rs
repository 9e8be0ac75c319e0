//! Errors of the admin API as RFC 9457 `application/problem+json` answers. A `detail` is only
//! ever a validation message or a fixed text: internal errors are logged and answered with a
//! generic 500.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portcullis_core::{PROBLEM_CONTENT_TYPE, ProblemKind};
use portcullis_identity::admin::AdminError;

/// An admin API error, rendered as problem+json.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, slug: &'static str, title: &'static str, detail: Option<String>) -> Self {
        Self { status, slug, title, detail }
    }

    fn from_kind(kind: ProblemKind, detail: Option<String>) -> Self {
        Self::new(kind.status(), kind.slug(), kind.title(), detail)
    }

    /// 400: the request is malformed or a value is invalid.
    pub(crate) fn invalid(detail: impl Into<String>) -> Self {
        Self::from_kind(ProblemKind::BadRequest, Some(detail.into()))
    }

    /// 401: no admin token, or not the right one. The same answer for both.
    pub(crate) fn unauthorized() -> Self {
        Self::from_kind(
            ProblemKind::Unauthorized,
            Some("send the admin token as `Authorization: Bearer <token>`".into()),
        )
    }

    /// 404 for a named object.
    pub(crate) fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "The object does not exist", Some(format!("{what} not found")))
    }

    /// 404 for an unknown admin API path.
    pub(crate) fn no_route() -> Self {
        Self::from_kind(ProblemKind::RouteNotFound, None)
    }

    /// 405 on a known path.
    pub(crate) fn method_not_allowed() -> Self {
        Self::from_kind(ProblemKind::MethodNotAllowed, None)
    }

    /// 409: the name is taken.
    pub(crate) fn conflict(what: &str) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", "The object already exists", Some(format!("{what} already exists")))
    }

    /// 413: the body is over the cap.
    pub(crate) fn too_large(limit: usize) -> Self {
        Self::from_kind(ProblemKind::PayloadTooLarge, Some(format!("request bodies are limited to {limit} bytes")))
    }

    /// 415: the body is not JSON.
    pub(crate) fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "The request body must be JSON",
            Some("send `Content-Type: application/json`".into()),
        )
    }

    /// 404 when identity is not configured: there is nothing to administer.
    pub(crate) fn identity_not_configured() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "admin-api-disabled",
            "The identity admin API is disabled",
            Some("identity is not configured on this gateway".into()),
        )
    }

    /// 503 when identity is configured but no admin token is: the API stays closed.
    pub(crate) fn no_admin_token() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "admin-api-disabled",
            "The identity admin API is disabled",
            Some(
                "no admin token is configured: run `portcullis admin-token` and set identity.admin_token_sha256".into(),
            ),
        )
    }

    /// 500, without internals.
    pub(crate) fn internal() -> Self {
        Self::from_kind(ProblemKind::Internal, None)
    }

    #[cfg(test)]
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    pub(crate) fn body(&self) -> serde_json::Value {
        let mut doc = serde_json::json!({
            "type": format!("urn:portcullis:problem:{}", self.slug),
            "title": self.title,
            "status": self.status.as_u16(),
        });
        if let (Some(d), Some(map)) = (&self.detail, doc.as_object_mut()) {
            map.insert("detail".into(), serde_json::Value::String(d.clone()));
        }
        doc
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::NotFound(what) => ApiError::not_found(what),
            AdminError::Conflict(what) => ApiError::conflict(what),
            AdminError::Invalid(msg) => ApiError::invalid(msg),
            other => {
                // The cause stays in the log; the client learns only that it failed.
                tracing::error!(error = %other, "admin API operation failed");
                ApiError::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, self.body().to_string()).into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_CONTENT_TYPE));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"portcullis-admin\""));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_hide_their_cause() {
        let e = AdminError::Internal(portcullis_identity::ServiceError::Runtime("db at 10.0.0.5 exploded".into()));
        let api = ApiError::from(e);
        assert_eq!(api.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!api.body().to_string().contains("10.0.0.5"));
    }

    #[test]
    fn store_errors_map_to_statuses() {
        assert_eq!(ApiError::from(AdminError::NotFound("consumer")).status(), StatusCode::NOT_FOUND);
        assert_eq!(ApiError::from(AdminError::Conflict("organization")).status(), StatusCode::CONFLICT);
        assert_eq!(ApiError::from(AdminError::Invalid("bad".into())).status(), StatusCode::BAD_REQUEST);
        assert_eq!(ApiError::from(AdminError::Invalid("bad".into())).body()["detail"], "bad");
    }
}
