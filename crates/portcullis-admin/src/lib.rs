//! The admin listener: `/metrics` (Prometheus), `/healthz` (the process is alive), `/readyz`
//! (the gateway is serving), and the identity admin API under `/v1/` (organizations, consumers,
//! API keys, kill switches, audit trail; see `docs/admin-api.md` and [`api::OPENAPI_JSON`]).
//! Bound to loopback unless the config says otherwise with a `danger_` setting. The `/v1/` API
//! needs `Authorization: Bearer <admin token>` and stays closed when no token is configured.
//!
//! ```no_run
//! # async fn run(gateway: portcullis_proxy::GatewayHandle) -> std::io::Result<()> {
//! let admin = portcullis_admin::AdminServer::start("127.0.0.1:9901".parse().unwrap(), gateway).await?;
//! println!("admin on {}", admin.addr());
//! # Ok(()) }
//! ```

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use portcullis_proxy::GatewayHandle;

pub mod api;
mod problem;
pub(crate) mod usage;

#[derive(Clone)]
struct AdminState {
    gateway: GatewayHandle,
    prometheus: Option<PrometheusHandle>,
}

/// The admin router.
pub fn router(gateway: GatewayHandle, prometheus: Option<PrometheusHandle>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(AdminState { gateway: gateway.clone(), prometheus })
        .nest("/v1", api::router(api::ApiState::new(gateway)))
}

async fn healthz() -> Response {
    json(StatusCode::OK, serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(s): State<AdminState>) -> Response {
    let (ok, failed) = s.gateway.reload_counts();
    let body = serde_json::json!({
        "ready": s.gateway.is_ready(),
        "stages": s.gateway.stage_names(),
        "config_reloads": { "success": ok, "failure": failed },
    });
    let status = if s.gateway.is_ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    json(status, body)
}

async fn metrics(State(s): State<AdminState>) -> Response {
    match &s.prometheus {
        Some(p) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], p.render()).into_response(),
        None => json(StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({ "error": "metrics recorder not installed" })),
    }
}

async fn not_found() -> Response {
    let body = serde_json::json!({
        "type": "urn:portcullis:problem:route-not-found",
        "title": "No route matches this request",
        "status": 404,
    });
    ([(header::CONTENT_TYPE, "application/problem+json")], (StatusCode::NOT_FOUND, body.to_string())).into_response()
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// A running admin listener; dropping it stops the server.
pub struct AdminServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl AdminServer {
    /// Binds `addr` and serves the admin API for `gateway`, installing the metrics recorder.
    pub async fn start(addr: SocketAddr, gateway: GatewayHandle) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = router(gateway, portcullis_observe::install_recorder());
        let task = tokio::spawn(async move {
            // With the peer address, so refused admin logins can be audited with it.
            let service = app.into_make_service_with_connect_info::<SocketAddr>();
            if let Err(e) = axum::serve(listener, service).await {
                tracing::error!(error = %e, "admin server failed");
            }
        });
        Ok(Self { addr, task })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
