//! Scan throughput on benign JSON API bodies (the common case the detector must not slow down).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "bench setup")]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use portcullis_inspect::{InspectPolicy, Inspector, RequestView, Verdict};

#[path = "support/bodies.rs"]
mod bodies;
use bodies::{body, record};

fn scan(c: &mut Criterion) {
    let ins = Inspector::new(InspectPolicy::default().compile().unwrap());
    let mut g = c.benchmark_group("scan_benign_json");
    for size in [1024usize, 64 * 1024] {
        let b = body(size);
        let req = RequestView::new("POST")
            .with_path_segments(["api", "v1", "orders"])
            .with_query(Some("page=1&per_page=50"))
            .with_header("user-agent", b"Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0")
            .with_body(Some("application/json"), b.as_bytes(), false);
        assert_eq!(ins.scan_request(&req).verdict, Verdict::Allow, "bench body must be benign");
        g.throughput(Throughput::Bytes(b.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(format!("{}B", b.len())), &req, |bch, req| {
            bch.iter(|| ins.scan_request(std::hint::black_box(req)));
        });
    }
    g.finish();
}

/// Per-detector cost on the string leaves of the 1 KB body (where time goes).
fn detectors(c: &mut Criterion) {
    use portcullis_inspect::{
        cmdi, crlf, ldap, log4shell, normalize, nosql, proto, scanner, sqli, ssti, traversal, xpath, xss, xxe,
    };
    let values: Vec<String> = (0..4)
        .flat_map(|i| {
            let r = record(i);
            let v: serde_json::Value = serde_json::from_str(&r).unwrap();
            let mut out = Vec::new();
            collect(&v, &mut out);
            out
        })
        .collect();
    let total: usize = values.iter().map(String::len).sum();
    let mut g = c.benchmark_group("detector");
    g.throughput(Throughput::Bytes(total as u64));
    type D = fn(&str) -> bool;
    let ds: [(&str, D); 17] = [
        ("normalize", |s| normalize::normalize(s, false).variants.len() > 1),
        ("sqli", |s| sqli::detect(s).is_some()),
        ("xss", |s| xss::detect(s).is_some()),
        ("cmdi", |s| cmdi::detect(s).is_some()),
        ("code", |s| cmdi::code::detect(s).is_some()),
        ("traversal", |s| traversal::detect(s).is_some()),
        ("nosql", |s| nosql::detect(s).is_some()),
        ("ssti", |s| ssti::detect(s).is_some()),
        ("ldap", |s| ldap::detect(s).is_some()),
        ("xpath", |s| xpath::detect(s).is_some()),
        ("xxe", |s| xxe::detect(s).is_some()),
        ("crlf", |s| crlf::detect(s, false).is_some()),
        ("log4shell", |s| log4shell::detect(s).is_some()),
        ("proto", |s| proto::detect(s).is_some()),
        ("oast", |s| scanner::oast(s).is_some()),
        ("graphql", |s| scanner::graphql_introspection(s).is_some()),
        ("base64", |s| normalize::base64_text(s).is_some()),
    ];
    for (name, d) in ds {
        g.bench_function(name, |b| b.iter(|| values.iter().filter(|v| d(std::hint::black_box(v))).count()));
    }
    g.finish();
}

fn collect(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| collect(x, out)),
        _ => {}
    }
}

criterion_group!(benches, scan, detectors);
criterion_main!(benches);
