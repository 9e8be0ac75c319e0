//! Request validation for a typical operation: route lookup, 5 parameters (2 path, 2 query,
//! 1 header) and a 1 KB JSON body. Target: under 20 µs per request.
//!
//! `cargo bench -p portcullis-contract --bench validate`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "benchmark setup")]

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method};
use portcullis_contract::{CompileOptions, Contract, Lookup, RequestHead};

const SPEC: &str = r#"
openapi: 3.0.3
info: { title: bench, version: "1" }
paths:
  /health:
    get: { operationId: health, responses: { "200": { description: ok } } }
  /orgs/{org}/customers:
    get: { operationId: listCustomers, parameters: [{ $ref: '#/components/parameters/Org' }], responses: { "200": { description: ok } } }
  /orgs/{org}/customers/{id}:
    parameters:
      - { $ref: '#/components/parameters/Org' }
      - { name: id, in: path, required: true, schema: { type: integer, format: int64, minimum: 1 } }
    put:
      operationId: updateCustomer
      parameters:
        - { name: dry_run, in: query, schema: { type: boolean } }
        - { name: fields, in: query, style: form, explode: false, schema: { type: array, items: { type: string, enum: [name, email, phone, address, tags] } } }
        - { name: X-Trace-Id, in: header, required: true, schema: { type: string, format: uuid } }
      requestBody:
        required: true
        content:
          application/json: { schema: { $ref: '#/components/schemas/Customer' } }
      responses:
        "200":
          description: ok
          content: { application/json: { schema: { $ref: '#/components/schemas/Customer' } } }
components:
  parameters:
    Org: { name: org, in: path, required: true, schema: { type: string, pattern: '^[a-z0-9-]{1,32}$' } }
  schemas:
    Address:
      type: object
      required: [street, city, country]
      properties:
        street: { type: string, maxLength: 200 }
        city: { type: string, maxLength: 100 }
        postcode: { type: string, maxLength: 16 }
        country: { type: string, minLength: 2, maxLength: 2 }
    Customer:
      type: object
      required: [name, email]
      properties:
        id: { type: integer, readOnly: true }
        name: { type: string, minLength: 1, maxLength: 200 }
        email: { type: string, format: email }
        phone: { type: string, maxLength: 32, nullable: true }
        address: { $ref: '#/components/schemas/Address' }
        billing: { $ref: '#/components/schemas/Address' }
        tags: { type: array, maxItems: 20, items: { type: string, maxLength: 32 } }
        notes: { type: string, maxLength: 2000 }
        tier: { type: string, enum: [free, pro, enterprise] }
        credit_limit: { type: number, minimum: 0 }
        marketing_opt_in: { type: boolean }
        created_at: { type: string, format: date-time, readOnly: true }
        birthday: { type: string, format: date }
"#;

fn body() -> Vec<u8> {
    let v = serde_json::json!({
        "name": "Alice Anderson",
        "email": "alice.anderson@example.com",
        "phone": "+44 20 7946 0958",
        "address": { "street": "1 Long Street, Flat 42", "city": "London", "postcode": "SW1A 1AA", "country": "GB" },
        "billing": { "street": "PO Box 1234, Accounts Payable Department", "city": "Manchester", "postcode": "M1 1AE", "country": "GB" },
        "tags": ["vip", "newsletter", "beta", "enterprise-trial", "emea", "q3-campaign"],
        "notes": "Prefers e-mail. Renewal due in spring; contact the account manager before any change to the plan or to the billing address. Asked twice about the SSO integration and the audit log export. Do not call before 10:00 local time. Escalations go to the regional lead; the contract has a custom data-retention clause (see the signed amendment of last year). Invoices are sent quarterly to the accounts payable mailbox, never to individual staff.",
        "tier": "enterprise",
        "credit_limit": 25000.5,
        "marketing_opt_in": false,
        "birthday": "1984-03-21"
    });
    let b = serde_json::to_vec(&v).unwrap();
    assert!((900..=1200).contains(&b.len()), "body is {} bytes", b.len());
    b
}

fn bench(c: &mut Criterion) {
    let contract = Contract::from_text(SPEC, Path::new("."), &CompileOptions::default()).unwrap().contract;
    let body = body();
    let mut headers = HeaderMap::new();
    headers.insert("x-trace-id", HeaderValue::from_static("0b1d7c1e-39a1-4a5b-9b8e-0d1f2a3b4c5d"));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let path = "/orgs/acme-corp/customers/1234";
    let query = Some("dry_run=false&fields=name,email,tags");

    // Sanity: the request is valid, and an invalid one is caught.
    {
        let Lookup::Found(op, params) = contract.find(&Method::PUT, path) else { panic!() };
        assert!(op.check_head(&RequestHead::new(query, &headers, &params), true).is_empty());
        let choice = op.body_media(Some("application/json")).unwrap();
        assert!(op.check_body(choice, "application/json", &body).is_empty());
        assert!(!op.check_body(choice, "application/json", br#"{"name":"x","email":"x@y.z","id":1}"#).is_empty());
    }

    c.bench_function("request: lookup + 5 params + 1 KB JSON body", |b| {
        b.iter(|| {
            let Lookup::Found(op, params) = contract.find(&Method::PUT, black_box(path)) else { panic!() };
            let v = op.check_head(&RequestHead::new(black_box(query), &headers, &params), true);
            let choice = op.body_media(Some("application/json")).unwrap();
            let w = op.check_body(choice, "application/json", black_box(&body));
            black_box((v, w))
        });
    });
    c.bench_function("lookup only", |b| {
        b.iter(|| black_box(matches!(contract.find(&Method::PUT, black_box(path)), Lookup::Found(..))));
    });
    c.bench_function("5 params only", |b| {
        let Lookup::Found(op, params) = contract.find(&Method::PUT, path) else { panic!() };
        b.iter(|| black_box(op.check_head(&RequestHead::new(black_box(query), &headers, &params), true)));
    });
    c.bench_function("1 KB JSON body only (parse + validate)", |b| {
        let Lookup::Found(op, _) = contract.find(&Method::PUT, path) else { panic!() };
        let choice = op.body_media(Some("application/json")).unwrap();
        b.iter(|| black_box(op.check_body(choice, "application/json", black_box(&body))));
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
