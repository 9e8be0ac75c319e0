#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]
//! The usage table on both backends: every case runs on a fresh SQLite file and on a fresh
//! PostgreSQL schema (`t_<uuid>`, dropped afterwards). Needs PostgreSQL on 127.0.0.1:5432 (user
//! postgres, trust; `scripts/services` starts it) or `PORTCULLIS_TEST_PG_URL`.

use portcullis_config::resolve_secret;
use portcullis_store::*;

fn pg_url() -> String {
    std::env::var("PORTCULLIS_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn pg_store() -> (Store, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), pg_url()).unwrap();
    let url = resolve_secret("${file:secret}", dir.path()).unwrap();
    let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
    let store = Store::open(&StoreConfig::Postgres { url, pool_size: 2, schema: Some(schema.clone()) }).await.unwrap();
    (store, schema)
}

async fn drop_schema(schema: &str) {
    let (client, conn) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await.unwrap();
}

fn rec(day: &str, consumer: &str, route: &str, count: u64) -> UsageRecord {
    UsageRecord { day: day.into(), consumer_id: consumer.into(), route: route.into(), count }
}

fn month(p: &str) -> UsageFilter {
    UsageFilter { period: p.into(), ..Default::default() }
}

async fn upsert_adds_and_report_sums_per_consumer_and_route(store: Store) {
    let org = store.create_org(NewOrg { name: "acme".into(), plan: None, created_at: 1 }).await.unwrap();
    let c = store
        .create_consumer(NewConsumer {
            org_id: org.id.clone(),
            name: "billing".into(),
            kind: ConsumerKind::App,
            scopes: vec![],
            roles: vec![],
            plan: None,
            external_subject: None,
            created_at: 1,
        })
        .await
        .unwrap();
    // Two flushes (two nodes, or one node twice) add up.
    store
        .record_usage(vec![rec("2026-11-01", &c.id, "orders", 3), rec("2026-11-02", &c.id, "orders", 4)])
        .await
        .unwrap();
    store
        .record_usage(vec![rec("2026-11-01", &c.id, "orders", 5), rec("2026-11-30", "gone", "users", 1)])
        .await
        .unwrap();
    store.record_usage(vec![rec("2026-12-01", &c.id, "orders", 100)]).await.unwrap();
    store.record_usage(vec![]).await.unwrap();

    let report = store.usage_report(&month("2026-11")).await.unwrap();
    assert_eq!(report.len(), 2, "{report:?}");
    let (a, b) = if report[0].consumer_id == c.id { (&report[0], &report[1]) } else { (&report[1], &report[0]) };
    assert_eq!((a.route.as_str(), a.count, a.consumer_name.as_deref()), ("orders", 12, Some("billing")));
    assert_eq!((b.consumer_id.as_str(), b.count, b.consumer_name.as_deref()), ("gone", 1, None));
    assert_eq!(a.period, "2026-11");

    let day = store.usage_report(&month("2026-11-01")).await.unwrap();
    assert_eq!(day.len(), 1);
    assert_eq!(day[0].count, 8);

    let only = UsageFilter { period: "2026-11".into(), consumer_id: Some("gone".into()), route: None };
    assert_eq!(store.usage_report(&only).await.unwrap().len(), 1);
    let none = UsageFilter { period: "2026-11".into(), consumer_id: None, route: Some("nope".into()) };
    assert!(store.usage_report(&none).await.unwrap().is_empty());
    assert_eq!(store.usage_report(&month("2026-12")).await.unwrap()[0].count, 100);
}

async fn bad_input_is_refused_and_nothing_is_written(store: Store) {
    // A LIKE wildcard or SQL in the period is refused before any query.
    for bad in ["%", "2026-1%", "2026-11' OR '1'='1", ""] {
        assert!(matches!(store.usage_report(&month(bad)).await, Err(StoreError::Invalid(_))), "{bad}");
    }
    // One bad row refuses the whole batch.
    let rows = vec![rec("2026-11-01", "c", "r", 1), rec("yesterday", "c", "r", 1)];
    assert!(matches!(store.record_usage(rows).await, Err(StoreError::Invalid(_))));
    assert!(store.usage_report(&month("2026-11")).await.unwrap().is_empty());
    // Counts past i64 are refused, not wrapped.
    assert!(store.record_usage(vec![rec("2026-11-01", "c", "r", u64::MAX)]).await.is_err());
}

macro_rules! both {
    ($($case:ident),+) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = super::Store::open(&super::StoreConfig::Sqlite { path: dir.path().join("s.db") }).await.unwrap();
                    super::$case(store).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let (store, schema) = super::pg_store().await;
                    let out = tokio::spawn(super::$case(store)).await;
                    super::drop_schema(&schema).await;
                    out.unwrap();
                }
            )+
        }
    };
}

both!(upsert_adds_and_report_sums_per_consumer_and_route, bad_input_is_refused_and_nothing_is_written);
