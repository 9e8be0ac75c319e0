//! Scan throughput per CPU-second (not wall time): on a shared, oversubscribed machine criterion's
//! wall-clock numbers mostly measure the neighbours. Reads the thread's on-CPU time from
//! `/proc/thread-self/schedstat` (Linux).
//!
//! `cargo run --release -p portcullis-inspect --example throughput`
//!
//! Two cases per size: the JSON body alone (the target: "scanning a benign JSON body") and the
//! same body in a request with a path, a query string and a browser User-Agent, which are scanned
//! too. A yardstick measured in the same run (serde_json parsing the body into a `Value`) lets
//! numbers from different machines be compared as ratios.
//!
//! For instruction counts (steadier still): `THROUGHPUT_SIZE=1024 THROUGHPUT_SCANS=2000
//! [THROUGHPUT_CASE=body] valgrind --tool=callgrind target/release/examples/throughput` runs
//! exactly that many scans of one size (the whole request unless `THROUGHPUT_CASE=body`); the
//! difference between two scan counts, divided by the extra scans and the printed size, is the
//! instructions per byte.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, reason = "measurement tool")]

use portcullis_inspect::{InspectPolicy, Inspector, RequestView, Verdict};

#[path = "../benches/support/bodies.rs"]
#[allow(dead_code, reason = "the bench uses `record` too")]
mod bodies;
use bodies::body;

fn cpu_ns() -> u64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").expect("Linux schedstat");
    s.split_whitespace().next().and_then(|v| v.parse().ok()).expect("schedstat format")
}

/// Scans `req` for about `cpu_s` seconds of CPU; MB (of `bytes` per scan) per CPU-second and µs
/// per scan.
fn measure(bytes: usize, cpu_s: f64, mut scan: impl FnMut()) -> (f64, f64) {
    for _ in 0..200 {
        scan();
    }
    let t0 = cpu_ns();
    let mut n = 0u64;
    while ((cpu_ns() - t0) as f64) < cpu_s * 1e9 {
        for _ in 0..50 {
            scan();
        }
        n += 50;
    }
    let secs = (cpu_ns() - t0) as f64 / 1e9;
    ((bytes as u64 * n) as f64 / secs / 1e6, secs * 1e6 / n as f64)
}

fn main() {
    let ins = Inspector::new(InspectPolicy::default().compile().unwrap());
    let sizes: Vec<usize> = match std::env::var("THROUGHPUT_SIZE") {
        Ok(v) => vec![v.parse().expect("THROUGHPUT_SIZE: bytes")],
        Err(_) => vec![1024, 64 * 1024],
    };
    let fixed: Option<u64> =
        std::env::var("THROUGHPUT_SCANS").ok().map(|v| v.parse().expect("THROUGHPUT_SCANS: count"));
    // `body`: a request that is only the JSON body (what the target is about); `request`: the
    // same body with a path, a query string and a browser User-Agent, scanned too.
    let whole = std::env::var("THROUGHPUT_CASE").map_or(true, |c| c != "body");
    for size in sizes {
        let b = body(size);
        let body_only = RequestView::new("POST").with_body(Some("application/json"), b.as_bytes(), false);
        let request = RequestView::new("POST")
            .with_path_segments(["api", "v1", "orders"])
            .with_query(Some("page=1&per_page=50"))
            .with_header("user-agent", b"Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0")
            .with_body(Some("application/json"), b.as_bytes(), false);
        assert_eq!(ins.scan_request(&body_only).verdict, Verdict::Allow);
        assert_eq!(ins.scan_request(&request).verdict, Verdict::Allow);
        if let Some(n) = fixed {
            let req = if whole { &request } else { &body_only };
            for _ in 0..n {
                std::hint::black_box(ins.scan_request(std::hint::black_box(req)));
            }
            println!("benign JSON {:>6} B: {n} scans", b.len());
            continue;
        }
        let (mbps, us) = measure(b.len(), 2.0, || {
            std::hint::black_box(ins.scan_request(std::hint::black_box(&body_only)));
        });
        println!("benign JSON body {:>6} B: {mbps:>8.1} MB per CPU-second ({us:.2} µs per scan)", b.len());
        let (mbps, us) = measure(b.len(), 2.0, || {
            std::hint::black_box(ins.scan_request(std::hint::black_box(&request)));
        });
        println!("  with path, query and User-Agent: {mbps:>8.1} MB per CPU-second ({us:.2} µs per request)");
        // Yardstick on the same machine, same run: parsing the body into a serde_json::Value.
        let (mbps, _) = measure(b.len(), 1.0, || {
            let v: serde_json::Value = serde_json::from_slice(std::hint::black_box(b.as_bytes())).unwrap();
            std::hint::black_box(v);
        });
        println!("  yardstick, serde_json::Value parse of the body: {mbps:>8.1} MB per CPU-second");
    }
}
