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
//! parses the body as many times into a `serde_json::Value`, a yardstick (in blocks alternating
//! with the scan's): on a noisy or slower machine, compare the ratio of the two, not the MB/s.
//! A fourth argument `scan-only` leaves the yardstick out (for instruction counts of the scan
//! alone).

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
    let yardstick = args.get(4).is_none_or(|a| a != "scan-only");
    // Scan and parse alternate in blocks, each timed on its own, so that a change of load on a
    // shared machine weighs on both alike and their ratio holds.
    const BLOCKS: usize = 10;
    let (mut changed, mut objects) = (0usize, 0usize);
    let (mut scan_ns, mut parse_ns) = (Some(0u64), Some(0u64));
    for b in 0..BLOCKS {
        let n = iters / BLOCKS + usize::from(b < iters % BLOCKS);
        let cpu0 = cpu_ns();
        for _ in 0..n {
            changed += usize::from(policy.apply_json(black_box(body.as_bytes()), None).unwrap().changed);
        }
        scan_ns = add_elapsed(scan_ns, cpu0);
        if yardstick {
            let cpu0 = cpu_ns();
            for _ in 0..n {
                let v: serde_json::Value = serde_json::from_slice(black_box(body.as_bytes())).unwrap();
                objects += usize::from(v.is_object());
            }
            parse_ns = add_elapsed(parse_ns, cpu0);
        }
    }
    let total = body.len() * iters;
    print!("{kind}: {} bytes x {iters} = {total} bytes scanned ({changed} changed)", body.len());
    let scan = scan_ns.filter(|&ns| ns > 0).map(|ns| (ns, mb_per_s(total, ns)));
    match scan {
        Some((ns, mbs)) => println!(", {:.1} ms CPU, {mbs:.0} MB/s per core", ns as f64 / 1e6),
        None => println!(),
    }
    if !yardstick {
        return;
    }
    // Yardstick: serde_json parsing the same body into a `Value`, as many times.
    if let Some(ns) = parse_ns.filter(|&ns| ns > 0) {
        let parse = mb_per_s(total, ns);
        print!("serde_json::Value ({objects} objects): {parse:.0} MB/s per core");
        match scan {
            Some((_, scan)) => println!("; scan / parse = {:.2}", scan / parse),
            None => println!(),
        }
    }
}

/// Adds the CPU time since `start` to `acc` (`None` when either is unknown).
fn add_elapsed(acc: Option<u64>, start: Option<u64>) -> Option<u64> {
    Some(acc? + cpu_ns()?.saturating_sub(start?))
}

/// Megabytes per second of `bytes` done in `ns` nanoseconds.
fn mb_per_s(bytes: usize, ns: u64) -> f64 {
    bytes as f64 / 1e6 / (ns as f64 / 1e9)
}

/// This thread's time on a CPU so far, in nanoseconds.
fn cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat").ok()?.split_whitespace().next()?.parse().ok()
}
