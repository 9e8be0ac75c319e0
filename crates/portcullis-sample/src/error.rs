//! Error responses and the extractors that produce them.
//!
//! Every error over-shares on purpose: a fake stack trace, and where a "query" was involved, the
//! SQL that "failed". The gateway's masking stage is meant to strip these.

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use http::request::Parts;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The JSON body of every error, as described by the `Error` schema in `openapi.yaml`.
#[derive(Debug, Clone, Serialize)]
struct ErrorBody {
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sql: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError { status, body: ErrorBody { error: error.into(), detail: None, trace: None, sql: None } }
    }

    pub(crate) fn detail(mut self, detail: impl Into<String>) -> Self {
        self.body.detail = Some(detail.into());
        self
    }

    /// A Java-flavoured stack trace: `headline`, then one `at` line per frame, innermost first.
    pub(crate) fn trace(mut self, headline: &str, frames: &[&str]) -> Self {
        let mut trace = headline.to_owned();
        for frame in frames {
            trace.push_str("\n    at ");
            trace.push_str(frame);
        }
        self.body.trace = Some(trace);
        self
    }

    pub(crate) fn sql(mut self, sql: impl Into<String>) -> Self {
        self.body.sql = Some(sql.into());
        self
    }

    pub(crate) fn customer_not_found(id: u64, handler_frame: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, format!("customer {id} not found"))
            .trace(
                "crm::db::DbError::RowNotFound: query returned no rows",
                &["crm::db::find_customer (src/db.rs:42)", handler_frame, ROUTER_FRAME],
            )
            .sql(format!(
                "SELECT id, name, email, phone, card_number, address, notes, internal_credit_score, \
                 password_hash, created_by_admin FROM customers WHERE id = {id} LIMIT 1"
            ))
    }

    pub(crate) fn order_not_found(id: u64, handler_frame: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, format!("order {id} not found"))
            .trace(
                "crm::db::DbError::RowNotFound: query returned no rows",
                &["crm::db::find_order (src/db.rs:87)", handler_frame, ROUTER_FRAME],
            )
            .sql(format!(
                "SELECT o.*, c.card_number AS payment_card_number FROM orders o \
                 JOIN customers c ON c.id = o.customer_id WHERE o.id = {id}"
            ))
    }
}

pub(crate) const ROUTER_FRAME: &str = "axum::routing::route::Route::call (axum-0.8/src/routing/route.rs:140)";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// A numeric path id. Anything else is a 400 that names the parser that choked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Id(pub(crate) u64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state).await.map_err(|rejection| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid path parameter").detail(rejection.body_text()).trace(
                "axum::extract::rejection::PathRejection",
                &["crm::api::extract::Id::from_request_parts (src/api/extract.rs:31)"],
            )
        })?;
        raw.parse::<u64>().map(Id).map_err(|err| {
            ApiError::new(StatusCode::BAD_REQUEST, format!("invalid id '{raw}'")).detail(err.to_string()).trace(
                &format!("core::num::ParseIntError: {err}"),
                &[
                    "core::str::<impl str>::parse::<u64> (core/src/str/mod.rs:2467)",
                    "crm::api::extract::Id::from_request_parts (src/api/extract.rs:38)",
                    ROUTER_FRAME,
                ],
            )
        })
    }
}

/// Query parameters; a malformed query string is a 400 with the deserializer's complaint.
#[derive(Debug, Clone)]
pub(crate) struct QueryParams<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(value) = Query::<T>::from_request_parts(parts, state).await.map_err(|rejection| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid query string").detail(rejection.body_text()).trace(
                "serde_urlencoded::de::Error",
                &[
                    "serde_urlencoded::de::from_str (serde_urlencoded/src/de.rs:48)",
                    "crm::api::extract::QueryParams::from_request_parts (src/api/extract.rs:57)",
                    ROUTER_FRAME,
                ],
            )
        })?;
        Ok(QueryParams(value))
    }
}

/// A JSON body, parsed whatever the `Content-Type` says (curl users forget it); any failure is a
/// 400 (413 past axum's default body limit) that quotes serde's error, line and column included.
#[derive(Debug, Clone)]
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            ApiError::new(rejection.status(), "could not read request body").detail(rejection.body_text()).trace(
                "axum::extract::rejection::BytesRejection",
                &[
                    "http_body_util::Limited::poll_frame (http-body-util/src/limited.rs:64)",
                    "crm::api::extract::JsonBody::from_request (src/api/extract.rs:80)",
                    ROUTER_FRAME,
                ],
            )
        })?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|err| {
            ApiError::new(StatusCode::BAD_REQUEST, "malformed JSON body").detail(err.to_string()).trace(
                &format!("serde_json::Error: {err}"),
                &[
                    "serde_json::de::from_slice (serde_json/src/de.rs:2699)",
                    "crm::api::extract::JsonBody::from_request (src/api/extract.rs:84)",
                    ROUTER_FRAME,
                ],
            )
        })
    }
}
