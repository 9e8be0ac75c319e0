//! Runs `apply_json` with the default detectors a fixed number of times on one of the bench
//! bodies, for CPU-time and instruction-count measurements that a shared machine does not skew
//! (criterion's wall-clock numbers do):
//!
//! ```sh
//! cargo build --release -p portcullis-exposure --example scan_cpu
//! target/release/examples/scan_cpu customers 1048576 50
//! valgrind --tool=callgrind target/release/examples/scan_cpu customers 1048576 2
//! ```
//!
//! Arguments: `customers` (records with e-mails, phones, cards, …: masking applies) or `clean`
//! (nothing to find), the body size in bytes, and the number of iterations. Prints the bytes
//! scanned and, on Linux, MB/s per CPU-second of the loop alone (the thread's on-CPU time from
//! `/proc/thread-self/schedstat`, so time spent waiting for a core does not count).

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
    match cpu {
        Some(ns) if ns > 0 => {
            let secs = ns as f64 / 1e9;
            println!(", {:.1} ms CPU, {:.0} MB/s per core", secs * 1e3, total as f64 / 1e6 / secs);
        }
        _ => println!(),
    }
}

/// This thread's time on a CPU so far, in nanoseconds.
fn cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat").ok()?.split_whitespace().next()?.parse().ok()
}
