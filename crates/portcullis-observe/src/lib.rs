//! Observability stages: the access log (one JSON line per request, metadata only) and request
//! metrics (Prometheus). Both run in [`Stage::on_complete`](portcullis_core::Stage::on_complete).
//!
//! ```
//! use portcullis_observe::{AccessLogSink, AccessLogStage};
//! let (sink, lines) = AccessLogSink::memory();
//! let stage = AccessLogStage::new(sink, false);
//! # let _ = (stage, lines);
//! ```

mod access_log;
mod metrics_stage;

pub use access_log::{AccessLogSink, AccessLogStage};
pub use metrics_stage::{MetricsStage, install_recorder, method_label};
