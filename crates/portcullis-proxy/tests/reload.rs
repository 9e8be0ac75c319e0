#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]
//! Hot reload: a valid new config (and its files) is swapped in atomically; an invalid one is
//! rejected, counted, and the old one keeps serving. Triggers: file change and SIGHUP.

use std::time::{Duration, Instant};

use portcullis_testkit::{TestGateway, Upstream};

fn two_routes(a: &Upstream, b: &Upstream, new_route: bool) -> String {
    let extra = if new_route { "  - { name: fresh, prefix: /fresh, upstream: b }\n" } else { "" };
    format!(
        "listeners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\nupstreams:\n  a: {{ targets: [\"http://{}\"] }}\n  b: {{ targets: [\"http://{}\"] }}\nroutes:\n{extra}  - {{ name: all, prefix: /, upstream: a }}\n",
        a.addr(),
        b.addr()
    )
}

async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn valid_reload_applies_and_invalid_reload_keeps_the_old_config() {
    let (a, b) = (Upstream::start().await, Upstream::start().await);
    let gw = TestGateway::start(&two_routes(&a, &b, false)).await;
    assert_eq!(gw.get("/fresh").await.status, 200);
    assert_eq!((a.hits(), b.hits()), (1, 0));

    std::fs::write(gw.config_path(), two_routes(&a, &b, true)).unwrap();
    gw.handle().reload_from_file().unwrap();
    assert_eq!(gw.get("/fresh").await.status, 200);
    assert_eq!((a.hits(), b.hits()), (1, 1), "the new route serves");

    for broken in [
        "listeners: [ this is not yaml".to_owned(),
        two_routes(&a, &b, true).replace("upstream: b", "upstream: nope"),
        two_routes(&a, &b, true).replace("prefix: /fresh", "prefix: fresh"),
        format!("{}timeouts: {{ idle: soon }}\n", two_routes(&a, &b, false)),
    ] {
        std::fs::write(gw.config_path(), &broken).unwrap();
        assert!(gw.handle().reload_from_file().is_err(), "accepted: {broken}");
        assert_eq!(gw.get("/fresh").await.status, 200, "old config must keep serving");
    }
    assert_eq!(b.hits(), 5);
    assert_eq!(gw.handle().reload_counts(), (1, 4));
}

#[tokio::test]
async fn listener_changes_are_refused() {
    let (a, b) = (Upstream::start().await, Upstream::start().await);
    let gw = TestGateway::start(&two_routes(&a, &b, false)).await;
    let moved = two_routes(&a, &b, true).replace("127.0.0.1:0", "127.0.0.1:1");
    std::fs::write(gw.config_path(), moved).unwrap();
    let err = gw.handle().reload_from_file().unwrap_err();
    assert!(err.to_string().contains("restart"), "{err}");
    assert_eq!(gw.get("/x").await.status, 200);
    let capped = format!("{}limits: {{ max_connections: 5 }}\n", two_routes(&a, &b, false));
    std::fs::write(gw.config_path(), capped).unwrap();
    let err = gw.handle().reload_from_file().unwrap_err();
    assert!(err.to_string().contains("max_connections"), "{err}");
}

#[tokio::test]
async fn file_changes_trigger_a_reload() {
    let (a, b) = (Upstream::start().await, Upstream::start().await);
    let gw = TestGateway::start(&two_routes(&a, &b, false)).await;
    let _watch = gw.handle().watch_config().unwrap();
    std::fs::write(gw.config_path(), two_routes(&a, &b, true)).unwrap();
    let h = gw.handle();
    eventually("the file-change reload", async || h.reload_counts().0 >= 1).await;
    assert_eq!(gw.get("/fresh/x").await.status, 200);
    assert_eq!(b.hits(), 1);

    // An invalid edit is rejected by the watcher too; the old config keeps serving.
    std::fs::write(gw.config_path(), "routes: [").unwrap();
    eventually("the rejected reload", async || h.reload_counts().1 >= 1).await;
    assert_eq!(gw.get("/fresh/x").await.status, 200);
    assert_eq!(b.hits(), 2);
}

#[cfg(unix)]
#[tokio::test]
async fn sighup_triggers_a_reload() {
    let (a, b) = (Upstream::start().await, Upstream::start().await);
    let gw = TestGateway::start(&two_routes(&a, &b, false)).await;
    let h = gw.handle();
    let _watch = h.watch_config().unwrap();
    // Wait for the write-triggered reload (if any) to settle, then count SIGHUP's effect alone.
    std::fs::write(gw.config_path(), two_routes(&a, &b, true)).unwrap();
    eventually("the file-change reload", async || h.reload_counts().0 >= 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = h.reload_counts().0;
    let status = std::process::Command::new("kill").arg("-HUP").arg(std::process::id().to_string()).status().unwrap();
    assert!(status.success());
    eventually("the SIGHUP reload", async || h.reload_counts().0 > before).await;
    assert_eq!(gw.get("/fresh").await.status, 200);
}
