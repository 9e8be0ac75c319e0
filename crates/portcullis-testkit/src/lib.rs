//! Dev-only kit for end-to-end tests: a recording upstream, a gateway started from YAML with a
//! captured access log, and clients (HTTP/1.1, HTTP/2, TLS, raw bytes), all on `127.0.0.1:0`.
//!
//! ```no_run
//! # async fn t() {
//! use portcullis_testkit::{TestGateway, Upstream};
//! let upstream = Upstream::start().await;
//! let gw = TestGateway::start(&TestGateway::yaml(&upstream, "")).await;
//! let resp = gw.get("/hello").await;
//! assert_eq!(resp.status, 200);
//! assert_eq!(upstream.requests()[0].path, "/hello");
//! # }
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a dev-only kit: failing loudly is its job"
)]

mod client;
mod gateway;
mod redis;
mod tls;
mod upstream;

pub use client::{Mode, Resp, get, h2c_client, http1_client, raw_request, send, status_of, tls_client};
pub use gateway::TestGateway;
pub use redis::{OwnCluster, OwnRedis, free_port, redis_cli, redis_ping};
pub use tls::TestCert;
pub use upstream::{Recorded, Upstream};
