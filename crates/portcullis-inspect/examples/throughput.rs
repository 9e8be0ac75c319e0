//! Scan throughput per CPU-second (not wall time): on a shared, oversubscribed machine criterion's
//! wall-clock numbers mostly measure the neighbours. Reads the thread's on-CPU time from
//! `/proc/thread-self/schedstat` (Linux).
//!
//! `cargo run --release -p portcullis-inspect --example throughput`
//!
//! For instruction counts (steadier still): `THROUGHPUT_SIZE=1024 THROUGHPUT_SCANS=20000 perf stat
//! -e instructions:u target/release/examples/throughput` runs exactly that many scans of one size;
//! instructions per byte = count / (scans × the printed size).
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

fn main() {
    let ins = Inspector::new(InspectPolicy::default().compile().unwrap());
    let sizes: Vec<usize> = match std::env::var("THROUGHPUT_SIZE") {
        Ok(v) => vec![v.parse().expect("THROUGHPUT_SIZE: bytes")],
        Err(_) => vec![1024, 64 * 1024],
    };
    let fixed: Option<u64> =
        std::env::var("THROUGHPUT_SCANS").ok().map(|v| v.parse().expect("THROUGHPUT_SCANS: count"));
    for size in sizes {
        let b = body(size);
        let req = RequestView::new("POST")
            .with_path_segments(["api", "v1", "orders"])
            .with_query(Some("page=1&per_page=50"))
            .with_header("user-agent", b"Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0")
            .with_body(Some("application/json"), b.as_bytes(), false);
        assert_eq!(ins.scan_request(&req).verdict, Verdict::Allow);
        if let Some(n) = fixed {
            for _ in 0..n {
                std::hint::black_box(ins.scan_request(std::hint::black_box(&req)));
            }
            println!("benign JSON {:>6} B: {n} scans", b.len());
            continue;
        }
        // Warm up, then run for about 2 s of CPU.
        for _ in 0..200 {
            std::hint::black_box(ins.scan_request(std::hint::black_box(&req)));
        }
        let t0 = cpu_ns();
        let mut n = 0u64;
        while cpu_ns() - t0 < 2_000_000_000 {
            for _ in 0..50 {
                std::hint::black_box(ins.scan_request(std::hint::black_box(&req)));
            }
            n += 50;
        }
        let secs = (cpu_ns() - t0) as f64 / 1e9;
        let mbps = (b.len() as u64 * n) as f64 / secs / 1e6;
        println!(
            "benign JSON {:>6} B: {:>8.1} MB per CPU-second ({:.2} µs per request, {n} scans)",
            b.len(),
            mbps,
            secs * 1e6 / n as f64
        );
        // Yardstick on the same machine, same run: parsing the body into a serde_json::Value.
        let t0 = cpu_ns();
        let mut m = 0u64;
        while cpu_ns() - t0 < 1_000_000_000 {
            for _ in 0..50 {
                let v: serde_json::Value = serde_json::from_slice(std::hint::black_box(b.as_bytes())).unwrap();
                std::hint::black_box(v);
            }
            m += 50;
        }
        let secs = (cpu_ns() - t0) as f64 / 1e9;
        println!("  serde_json::Value parse: {:>8.1} MB per CPU-second", (b.len() as u64 * m) as f64 / secs / 1e6);
    }
}
