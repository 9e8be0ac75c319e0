#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark setup fails loudly")]
//! The authentication hot path without a cache: one `credential_by_lookup` on SQLite and on
//! PostgreSQL (loopback), and one HMAC nonce check in-process and on Redis (loopback). Needs the
//! services of `scripts/services`; a backend that is not reachable is skipped.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_config::resolve_secret;
use portcullis_store::shared::{LocalShared, RedisShared, SharedState};
use portcullis_store::*;

const NOW: i64 = 1_700_000_000;

fn secret(value: &str) -> portcullis_config::Secret {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s"), value).unwrap();
    resolve_secret("${file:s}", dir.path()).unwrap()
}

/// 1000 consumers with one API key each; returns a lookup in the middle.
async fn fill(store: &Store) -> String {
    let org = store.create_org(NewOrg { name: "bench".into(), plan: None, created_at: NOW }).await.unwrap();
    let mut middle = String::new();
    for i in 0..1000u32 {
        let consumer = store
            .create_consumer(NewConsumer {
                org_id: org.id.clone(),
                name: format!("c-{i}"),
                kind: ConsumerKind::App,
                scopes: vec!["read".into()],
                roles: vec![],
                plan: None,
                external_subject: None,
                created_at: NOW,
            })
            .await
            .unwrap();
        let lookup = format!("{i:064x}");
        store
            .create_credential(NewCredential {
                consumer_id: consumer.id,
                kind: CredentialKind::ApiKey,
                lookup: lookup.clone(),
                hint: "pc_live_xxxx…".into(),
                secret: None,
                scopes: None,
                expires_at: None,
                label: None,
                created_at: NOW,
            })
            .await
            .unwrap();
        if i == 500 {
            middle = lookup;
        }
    }
    middle
}

fn bench_lookup(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut group = c.benchmark_group("credential_by_lookup");

    let dir = tempfile::tempdir().unwrap();
    let sqlite = rt.block_on(Store::open(&StoreConfig::Sqlite { path: dir.path().join("b.db") })).unwrap();
    let lookup = rt.block_on(fill(&sqlite));
    group.bench_function("sqlite", |b| {
        b.iter(|| rt.block_on(sqlite.credential_by_lookup(CredentialKind::ApiKey, black_box(&lookup))).unwrap())
    });
    group.bench_function("sqlite_with_owner", |b| {
        b.iter(|| rt.block_on(sqlite.credential_with_owner(CredentialKind::ApiKey, black_box(&lookup))).unwrap())
    });

    let schema = format!("bench_{}", uuid::Uuid::now_v7().simple());
    let url = std::env::var("PORTCULLIS_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let config = StoreConfig::Postgres { url: secret(&url), pool_size: 4, schema: Some(schema.clone()) };
    match rt.block_on(Store::open(&config)) {
        Ok(pg) => {
            let lookup = rt.block_on(fill(&pg));
            group.bench_function("postgres", |b| {
                b.iter(|| rt.block_on(pg.credential_by_lookup(CredentialKind::ApiKey, black_box(&lookup))).unwrap())
            });
            group.bench_function("postgres_with_owner", |b| {
                b.iter(|| rt.block_on(pg.credential_with_owner(CredentialKind::ApiKey, black_box(&lookup))).unwrap())
            });
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
                tokio::spawn(conn);
                client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await.unwrap();
            });
        }
        Err(e) => eprintln!("postgres skipped: {e}"),
    }
    group.finish();

    let mut group = c.benchmark_group("check_and_insert_nonce");
    let ttl = Duration::from_secs(5);
    let local = SharedState::Local(LocalShared::new());
    let mut n = 0u64;
    group.bench_function("local", |b| {
        b.iter(|| {
            n += 1;
            // A short TTL keeps the map below its cap at any insert rate.
            rt.block_on(local.check_and_insert_nonce("k", &n.to_string(), Duration::from_millis(50))).unwrap()
        })
    });
    let ns = format!("bench-{}", uuid::Uuid::now_v7().simple());
    match rt.block_on(RedisShared::connect(&secret("redis://127.0.0.1:6379/"), &ns)) {
        Ok(redis) => {
            let redis = SharedState::Redis(redis);
            group.bench_function("redis", |b| {
                b.iter(|| {
                    n += 1;
                    rt.block_on(redis.check_and_insert_nonce("k", &n.to_string(), ttl)).unwrap()
                })
            });
        }
        Err(e) => eprintln!("redis skipped: {e}"),
    }
    group.finish();
}

criterion_group!(benches, bench_lookup);
criterion_main!(benches);
