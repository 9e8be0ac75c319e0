//! Response scanning with the default detectors on realistic JSON: a list of customer records,
//! each with an e-mail address and a phone number, some with a card number, an SSN, a password
//! hash or an API token, among ids, UUIDs, timestamps, prices and addresses.

#![expect(clippy::unwrap_used, reason = "benchmark setup")]

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use portcullis_exposure::{ExposurePolicy, ShapeConfig, classify_error_body};

fn record(out: &mut String, i: usize) {
    let card = if i.is_multiple_of(10) { r#","card":"4242 4242 4242 4242""# } else { "" };
    let ssn = if i.is_multiple_of(25) { r#","ssn_note":"SSN 536-22-6789""# } else { "" };
    let hash = if i.is_multiple_of(50) {
        r#","pw":"$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW""#
    } else {
        ""
    };
    let _ = write!(
        out,
        r#"{{"id":{id},"uuid":"7f9c2ba4-e88f-11ee-a506-{id:012x}","name":"Customer {id}","email":"customer{id}@example.com","phone":"+1 415 555 {ph:04}","address":{{"street":"{id} Market Street","city":"San Francisco","zip":"94103","country":"US"}},"created_at":"2024-01-15T10:30:00Z","updated_at":"2024-06-01T08:00:00.123Z","plan":"pro","balance":1299.50,"orders":[{id}001,{id}002,{id}003],"tags":["vip","newsletter"],"notes":"Prefers contact by e-mail; order #{id}77 shipped"{card}{ssn}{hash}}}"#,
        id = i,
        ph = i % 10000,
    );
}

fn body(target: usize) -> String {
    let mut out = String::from(r#"{"customers":["#);
    let mut i = 0;
    while out.len() < target {
        if i > 0 {
            out.push(',');
        }
        record(&mut out, i + 1);
        i += 1;
    }
    let _ = write!(out, r#"],"count":{i},"next_cursor":"c_{i}"}}"#);
    out
}

fn clean_body(target: usize) -> String {
    let mut out = String::from("[");
    let mut i = 0;
    while out.len() < target {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            r#"{{"id":{i},"sku":"SKU-{i:06}","title":"Widget {i}","price":19.99,"stock":{s},"created_at":"2024-01-15T10:30:00Z","tags":["a","b"]}}"#,
            s = i % 97
        );
        i += 1;
    }
    out.push(']');
    out
}

fn bench(c: &mut Criterion) {
    let policy = ExposurePolicy::default().compile().unwrap();
    let mut g = c.benchmark_group("apply_json");
    for (name, b) in
        [("customers_1k", body(1024)), ("customers_1m", body(1024 * 1024)), ("clean_1m", clean_body(1024 * 1024))]
    {
        assert!(policy.apply_json(b.as_bytes(), None).unwrap().changed || name.starts_with("clean"));
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
