//! `GET /v1/usage?period=2026-11[&consumer=ID][&route=NAME][&format=json|csv]`: requests the
//! upstream served, per consumer and route, over a month or a day, for reconciliation against
//! plans. Before reading, this node's meter is flushed to the store, so the report includes
//! everything this node counted; other nodes' counts arrive within their
//! `traffic.usage.flush_interval`.

use axum::extract::Query;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use portcullis_proxy::GatewayHandle;
use portcullis_store::{UsageFilter, UsageLine};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsageQuery {
    period: String,
    #[serde(default)]
    consumer: Option<String>,
    #[serde(default)]
    route: Option<String>,
    #[serde(default)]
    format: Option<String>,
}

fn problem(status: StatusCode, slug: &str, title: &str, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": format!("urn:portcullis:problem:{slug}"),
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    });
    (status, [(header::CONTENT_TYPE, "application/problem+json")], body.to_string()).into_response()
}

/// The report for one query. Mountable behind any router's authentication (the handler above is
/// a thin wrapper; an authenticated `/v1` API can call this from its own handler).
pub(crate) async fn report(
    gateway: GatewayHandle,
    query: Result<Query<UsageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return problem(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "The request is malformed",
            "pass period=YYYY-MM (or YYYY-MM-DD), and optionally consumer, route and format=json|csv",
        );
    };
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "The request is malformed",
                "format is json or csv",
            );
        }
    };
    let Some(identity) = gateway.identity().cloned() else {
        return problem(
            StatusCode::NOT_FOUND,
            "route-not-found",
            "No route matches this request",
            "usage is metered per consumer: configure `identity` and `traffic`",
        );
    };
    gateway.flush_usage().await;
    let store = identity.store().clone();
    let filter = UsageFilter { period: q.period, consumer_id: q.consumer, route: q.route };
    let period = filter.period.clone();
    let result = identity.io(async move { Ok(store.usage_report(&filter).await?) }).await;
    let lines = match result {
        Ok(l) => l,
        Err(portcullis_identity::ServiceError::Store(portcullis_store::StoreError::Invalid(m))) => {
            return problem(StatusCode::BAD_REQUEST, "bad-request", "The request is malformed", &m);
        }
        Err(e) => {
            tracing::error!(error = %e, "usage report failed");
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The service is unavailable",
                "the store failed",
            );
        }
    };
    if csv {
        ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], UsageLine::csv(&lines)).into_response()
    } else {
        let body = serde_json::json!({ "period": period, "usage": lines });
        (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
    }
}
