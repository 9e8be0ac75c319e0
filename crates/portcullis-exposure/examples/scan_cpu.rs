//! Runs `apply_json` with the default detectors a fixed number of times on one of the bench
//! bodies, for CPU-time and instruction-count measurements that a shared machine does not skew
//! (criterion's wall-clock numbers do):
//!
//! ```sh
//! cargo build --release -p portcullis-exposure --example scan_cpu
//! target/release/examples/scan_cpu customers 1048576 50
//! valgrind --tool=callgrind target/release/examples/scan_cpu customers 1048576 2 scan-only
//! ```
//!
//! Arguments: `customers` (records with e-mails, phones, cards, …: masking applies) or `clean`
//! (nothing to find), the body size in bytes, and the number of iterations. Prints the bytes
//! scanned and, on Linux, MB/s per CPU-second of the loop alone (the thread's on-CPU time from
//! `/proc/thread-self/schedstat`, so time spent waiting for a core does not count). The same run
//! then parses the body as many times into a `serde_json::Value`, a yardstick: on a noisy or
//! slower machine, compare the ratio of the two rather than the MB/s. A fourth argument
//! `scan-only` leaves the yardstick out (for instruction counts of the scan alone).

#![expect(clippy::unwrap_used, clippy::print_stdout, clippy::cast_precision_loss, reason = "measurement tool")]

use std::hint::black_box;

use portcullis_exposure::ExposurePolicy;

#[path = "../benches/support/bodies.rs"]
mod bodies;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = args.get(1).map_or("customers", String::as_str);
    let size: usize = args.get(2).map_or(Ok(1 << 20), |s| s.parse()).unwrap();
    let iters: usize = args.get(3).map_or(Ok(20), |s| s.parse()).unwrap();
    let body = match kind {
        "clean" => bodies::clean_body(size),
        _ => bodies::body(size),
    };
    let policy = ExposurePolicy::default().compile().unwrap();
    let mut changed = 0usize;
    let cpu0 = cpu_ns();
    for _ in 0..iters {
        changed += usize::from(policy.apply_json(black_box(body.as_bytes()), None).unwrap().changed);
    }
    let cpu = cpu_ns().zip(cpu0).map(|(b, a)| b.saturating_sub(a));
    let total = body.len() * iters;
    print!("{kind}: {} bytes x {iters} = {total} bytes scanned ({changed} changed)", body.len());
    let scan = cpu.filter(|&ns| ns > 0).map(|ns| mb_per_s(total, ns));
    match (cpu, scan) {
        (Some(ns), Some(mbs)) => println!(", {:.1} ms CPU, {mbs:.0} MB/s per core", ns as f64 / 1e6),
        _ => println!(),
    }

    if args.get(4).is_some_and(|a| a == "scan-only") {
        return;
    }
    // Yardstick: serde_json parsing the same body into a `Value`, as many times.
    let mut nodes = 0usize;
    let cpu0 = cpu_ns();
    for _ in 0..iters {
        let v: serde_json::Value = serde_json::from_slice(black_box(body.as_bytes())).unwrap();
        nodes += usize::from(v.is_object());
    }
    let cpu = cpu_ns().zip(cpu0).map(|(b, a)| b.saturating_sub(a));
    if let Some(ns) = cpu.filter(|&ns| ns > 0) {
        let parse = mb_per_s(total, ns);
        print!("serde_json::Value ({nodes} objects): {parse:.0} MB/s per core");
        match scan {
            Some(scan) => println!("; scan / parse = {:.2}", scan / parse),
            None => println!(),
        }
    }
}

/// Megabytes per second of `bytes` done in `ns` nanoseconds.
fn mb_per_s(bytes: usize, ns: u64) -> f64 {
    bytes as f64 / 1e6 / (ns as f64 / 1e9)
}

/// This thread's time on a CPU so far, in nanoseconds.
fn cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat").ok()?.split_whitespace().next()?.parse().ok()
}
