//! A small, deliberately over-sharing CRM API for portcullis to protect.
//!
//! It sits behind the gateway in the demo, the tests and the benchmarks. It is honest but careless,
//! on purpose: it returns card numbers, password hashes and internal fields, checks no credentials
//! (`/admin/export` included), tells "no such user" from "wrong password", accepts any `limit`,
//! lets clients set internal fields, and answers errors with stack traces and SQL. Everything is
//! in memory and seeded deterministically ([`SEED_CUSTOMER_COUNT`] customers whose password is
//! [`SEED_PASSWORD`]), so every run sees the same data. [`OPENAPI_YAML`] describes every route.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! // In a test: a fresh server on a free port, stopped when `api` is dropped.
//! let api = portcullis_sample::SampleApi::start(([127, 0, 0, 1], 0).into()).await?;
//! println!("GET {}/customers/1", api.base_url());
//!
//! // In a binary: serve forever on a listener of your choosing.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8081").await?;
//! portcullis_sample::serve(listener).await
//! # }
//! ```

use std::io;
use std::net::SocketAddr;

use axum::Router;
use axum::response::Response;
use axum::routing::{get, post};
use http::HeaderValue;
use http::header::{HeaderName, SERVER};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

mod api;
mod data;
mod error;
mod playground;
mod record;

pub use data::{SEED_CUSTOMER_COUNT, SEED_PASSWORD, luhn_valid};
pub use record::{MAX_RECORDED_BODY, Recorder, recording_router};

/// The OpenAPI 3.1 document describing every route of [`router`].
pub const OPENAPI_YAML: &str = include_str!("../openapi.yaml");

/// Every route [`router`] serves, as `(method, OpenAPI path template)`.
///
/// The tests hold the router and [`OPENAPI_YAML`] to this list.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/ping"),
    ("POST", "/echo"),
    ("GET", "/health"),
    ("POST", "/login"),
    ("GET", "/customers"),
    ("POST", "/customers"),
    ("GET", "/customers/{id}"),
    ("PUT", "/customers/{id}"),
    ("DELETE", "/customers/{id}"),
    ("GET", "/customers/{id}/orders"),
    ("POST", "/orders"),
    ("GET", "/orders/{id}"),
    ("GET", "/admin/export"),
    ("GET", "/openapi.yaml"),
    ("GET", "/slow"),
    ("GET", "/status/{code}"),
    ("GET", "/headers"),
    ("GET", "/playground/echo"),
    ("POST", "/playground/echo"),
];

/// The value of the `Server` header on every response (the gateway is expected to strip it).
pub const SERVER_HEADER: &str = "crm-sample/1.0";

/// The sample API with fresh, freshly seeded in-memory state.
pub fn router() -> Router {
    Router::new()
        .route("/ping", get(api::ping))
        .route("/echo", post(api::echo))
        .route("/health", get(api::health))
        .route("/login", post(api::login))
        .route("/customers", get(api::list_customers).post(api::create_customer))
        .route("/customers/{id}", get(api::show_customer).put(api::update_customer).delete(api::delete_customer))
        .route("/customers/{id}/orders", get(api::customer_orders))
        .route("/orders", post(api::create_order))
        .route("/orders/{id}", get(api::show_order))
        .route("/admin/export", get(api::admin_export))
        .route("/openapi.yaml", get(api::openapi))
        .route("/slow", get(api::slow))
        .route("/status/{code}", get(api::status))
        .route("/headers", get(api::echo_headers))
        .route("/playground/echo", get(playground::echo).post(playground::echo))
        .fallback(api::no_route)
        .method_not_allowed_fallback(api::method_not_allowed)
        .with_state(api::Db::seeded())
        // Outermost, so fallbacks and rejections carry the banner headers too.
        .layer(axum::middleware::map_response(banner_headers))
}

async fn banner_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(SERVER, HeaderValue::from_static(SERVER_HEADER));
    headers.insert(HeaderName::from_static("x-powered-by"), HeaderValue::from_static("axum"));
    response
}

/// Serves [`router`] on `listener` until the process ends (or an I/O error stops it).
pub async fn serve(listener: TcpListener) -> io::Result<()> {
    axum::serve(listener, router()).await
}

/// [`serve`], appending every request received to `recorder` first (tests and fuzzing only:
/// bodies are recorded in full; see [`recording_router`]).
pub async fn serve_recording(listener: TcpListener, recorder: Recorder) -> io::Result<()> {
    axum::serve(listener, recording_router(recorder)).await
}

/// A running sample API; dropping it stops accepting connections and lets open ones finish.
#[derive(Debug)]
pub struct SampleApi {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl SampleApi {
    /// Binds `addr` (use `127.0.0.1:0` in tests) and serves a fresh [`router`] on a task of the
    /// current tokio runtime.
    pub async fn start(addr: SocketAddr) -> io::Result<SampleApi> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, router())
                .with_graceful_shutdown(async move {
                    // A send or a dropped sender both mean stop.
                    let _ = stopped.await;
                })
                .await
        });
        Ok(SampleApi { addr, shutdown: Some(shutdown), task: Some(task) })
    }

    /// The address actually bound (the real port when started on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://` plus [`SampleApi::addr`], without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and waits until every open connection has finished.
    pub async fn stop(mut self) -> io::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for SampleApi {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}
