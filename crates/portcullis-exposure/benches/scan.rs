//! Response scanning with the default detectors on realistic JSON (`support/bodies.rs`), 1 KB and
//! 1 MB: a product list with nothing to find (`clean_*`) and a customer list where masking
//! applies (`customers_*`). For CPU-time numbers on a shared machine, see `examples/scan_cpu.rs`.

#![expect(clippy::unwrap_used, reason = "benchmark setup")]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use portcullis_exposure::{ExposurePolicy, ShapeConfig, classify_error_body};

#[path = "support/bodies.rs"]
mod bodies;
use bodies::{body, clean_body};

fn bench(c: &mut Criterion) {
    let policy = ExposurePolicy::default().compile().unwrap();
    let mut g = c.benchmark_group("apply_json");
    // `clean_*`: nothing to find, the body is copied through. `customers_*`: every record has an
    // e-mail and a phone, some a card, an SSN or a password hash: masking and redaction apply.
    for (name, b) in [
        ("clean_1k", clean_body(1024)),
        ("customers_1k", body(1024)),
        ("clean_1m", clean_body(1024 * 1024)),
        ("customers_1m", body(1024 * 1024)),
    ] {
        let out = policy.apply_json(b.as_bytes(), None).unwrap();
        if name.starts_with("clean") {
            assert!(!out.changed && out.findings.is_empty(), "{name}");
        } else {
            assert!(out.changed && !out.findings.is_empty(), "{name}");
        }
        g.throughput(Throughput::Bytes(b.len() as u64));
        g.bench_function(name, |bench| bench.iter(|| policy.apply_json(black_box(b.as_bytes()), None).unwrap()));
    }
    let shape = ShapeConfig {
        allow: vec!["/customers/*/id".into(), "/customers/*/name".into(), "/customers/*/address/city".into()],
        max_items_everywhere: Some(20),
        ..Default::default()
    }
    .compile()
    .unwrap();
    let big = body(1024 * 1024);
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("customers_1m_shaped", |bench| {
        bench.iter(|| policy.apply_json(black_box(big.as_bytes()), Some(&shape)).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("apply_text");
    let text = body(1024 * 1024);
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("customers_1m_as_text", |bench| bench.iter(|| policy.apply_text(black_box(&text)).unwrap()));
    g.finish();

    let mut g = c.benchmark_group("classify_error_body");
    let err = br#"{"type":"about:blank","title":"Internal Server Error","status":500,"detail":"try again later"}"#;
    g.throughput(Throughput::Bytes(err.len() as u64));
    g.bench_function("problem_json", |bench| {
        bench.iter(|| classify_error_body(Some("application/problem+json"), black_box(err)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
