//! Cost of one JSON string value: scans `{"k": VALUE}` N times, for instruction counts.
//!
//! `VALUE='Li Wei' N=100 valgrind --tool=callgrind target/release/examples/onevalue`, then the same
//! with `N=200`: the difference / 100 is the cost of one such request; with `VALUE=''` it is the
//! request's fixed part, so the rest is what this value costs.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "measurement tool")]

use portcullis_inspect::{InspectPolicy, Inspector, RequestView};

fn main() {
    let ins = Inspector::new(InspectPolicy::default().compile().unwrap());
    let v = std::env::var("VALUE").expect("VALUE: the string to scan");
    let n: usize = std::env::var("N").expect("N: scans").parse().expect("N: a count");
    let body = serde_json::json!({ "k": v }).to_string();
    let req = RequestView::new("POST").with_body(Some("application/json"), body.as_bytes(), false);
    for _ in 0..n {
        std::hint::black_box(ins.scan_request(std::hint::black_box(&req)));
    }
}
