//! Runs `apply_json` with the default detectors a fixed number of times on one of the bench
//! bodies, for CPU-time and instruction-count measurements that a shared machine does not skew
//! (criterion's wall-clock numbers do):
//!
//! ```sh
//! cargo build --release -p portcullis-exposure --example scan_cpu
//! perf stat -e task-clock target/release/examples/scan_cpu customers 1048576 50
//! valgrind --tool=callgrind target/release/examples/scan_cpu customers 1048576 2
//! ```
//!
//! Arguments: `customers` (records with e-mails, phones, cards, …: masking applies) or `clean`
//! (nothing to find), the body size in bytes, and the number of iterations. Prints the bytes
//! scanned; divide by the task-clock time for MB/s per core.

#![expect(clippy::unwrap_used, clippy::print_stdout, reason = "measurement tool")]

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
    for _ in 0..iters {
        changed += usize::from(policy.apply_json(black_box(body.as_bytes()), None).unwrap().changed);
    }
    let total = body.len() * iters;
    println!("{kind}: {} bytes x {iters} = {total} bytes scanned ({changed} changed)", body.len());
}
