//! How long canonicalizing a request path takes, on the fast path and on the slow one.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_core::path::{PathOptions, canonicalize};

fn bench_canonicalize(c: &mut Criterion) {
    let opts = PathOptions::default();
    let cases = [
        ("plain", "/customers/12345/orders"),
        ("escapes_and_dots", "/customers/./%31%32345/../12345//orders/%c3%a9t%C3%A9/x/.."),
        ("unicode", "/catalogue/café/日本/items"),
    ];
    let mut group = c.benchmark_group("canonicalize");
    for (name, raw) in cases {
        group.bench_function(name, |b| b.iter(|| canonicalize(black_box(raw), black_box(&opts))));
    }
    group.finish();
}

criterion_group!(benches, bench_canonicalize);
criterion_main!(benches);
