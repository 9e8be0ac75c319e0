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

use std::fmt::Write as _;

use portcullis_inspect::{InspectPolicy, Inspector, RequestView, Verdict};

const NAMES: &[&str] = &["Siobhan O'Brien", "José Ñúñez", "Li Wei", "Anne-Marie D'Arcy", "Conan O'Malley Jr."];
const NOTES: &[&str] = &[
    "Please leave the parcel at the back door; the dog is friendly!",
    "Invoice #4411 shows $1,299.00 instead of $1,199.00 - can you check? Thanks.",
    "Deliver after 6pm (I work 9-5). Call +353 87 123 4567 on arrival.",
    "Gift wrap please: it's for my mum's 60th :)",
    "See https://example.com/orders?id=881&tab=items for details.",
];

/// A realistic order record (~250 bytes).
fn record(i: usize) -> String {
    format!(
        r#"{{"id":"ord_{i:06}","customer":{{"name":"{}","email":"user{i}@example.com"}},"items":[{{"sku":"SKU-{}","qty":{},"price":"{}.99"}}],"note":"{}","created_at":"2024-05-{:02}T10:{:02}:00Z","paid":true}}"#,
        NAMES[i % NAMES.len()].replace('"', "\\\""),
        4400 + i,
        i % 4 + 1,
        10 + i % 90,
        NOTES[i % NOTES.len()],
        i % 28 + 1,
        i % 60,
    )
}

/// A JSON body of about `size` bytes: an object with an array of records.
fn body(size: usize) -> String {
    let mut s = String::from(r#"{"page":1,"orders":["#);
    let mut i = 0;
    while s.len() + 300 < size || i == 0 {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&record(i));
        i += 1;
    }
    let _ = write!(s, r#"],"total":{i}}}"#);
    s
}

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
    }
}
