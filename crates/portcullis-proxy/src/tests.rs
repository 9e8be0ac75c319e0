//! In-crate end-to-end tests that need a stage only tests can build (see `pipeline::fault`).

use portcullis_testkit::{Upstream, raw_request};

use crate::pipeline::fault::Fault;
use crate::{Gateway, GatewayOptions};

async fn gateway(upstream: &Upstream, fault: Fault) -> (Gateway, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let yaml = format!(
        "listeners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\nupstreams: {{ up: {{ targets: [\"http://{}\"] }} }}\nroutes: [{{ name: all, prefix: /, upstream: up }}]\n",
        upstream.addr()
    );
    let config = portcullis_config::from_yaml(&yaml, std::path::Path::new(".")).unwrap();
    let (sink, log) = portcullis_observe::AccessLogSink::memory();
    let opts = GatewayOptions { access_log: Some(sink), fault: Some(fault), ..Default::default() };
    (Gateway::start(config, opts).await.unwrap(), log)
}

fn status(resp: &str) -> u16 {
    resp.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn a_failing_stage_fails_closed_before_the_upstream() {
    let up = Upstream::start().await;
    let (gw, log) = gateway(&up, Fault::FailRequest).await;
    let resp =
        raw_request(gw.listener_addr("public").unwrap(), b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await;
    assert_eq!(status(&resp), 500, "{resp}");
    assert!(resp.contains("urn:portcullis:problem:internal"), "{resp}");
    assert!(!resp.contains("hunter2") && !resp.contains("internal detail"), "cause leaked: {resp}");
    assert_eq!(up.hits(), 0);
    let line: serde_json::Value = serde_json::from_str(&log.lock().unwrap()[0]).unwrap();
    assert_eq!(line["decision"], "error");
    assert_eq!(line["reason"], "stage-failed");
    assert!(!log.lock().unwrap()[0].contains("hunter2"));
}

#[tokio::test]
async fn a_failing_body_stage_fails_closed_and_a_passing_one_forwards() {
    let up = Upstream::start().await;
    let (gw, _) = gateway(&up, Fault::FailRequestBody).await;
    let addr = gw.listener_addr("public").unwrap();
    let bad =
        raw_request(addr, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nConnection: close\r\n\r\nexplode")
            .await;
    assert_eq!(status(&bad), 500, "{bad}");
    assert_eq!(up.hits(), 0);
    let good = raw_request(addr, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\ngood\r\n0\r\n\r\n").await;
    assert_eq!(status(&good), 200, "{good}");
    assert_eq!(&up.requests()[0].body[..], b"good");
    assert_eq!(up.requests()[0].headers["content-length"], "4", "a buffered body is re-framed with its length");
    let over = raw_request(
        addr,
        format!(
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\nConnection: close\r\n\r\n{}",
            "x".repeat(2000)
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(status(&over), 413, "a body over the stage's cap is refused before the upstream");
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn a_failing_response_stage_fails_closed() {
    let up = Upstream::start().await;
    let (gw, _) = gateway(&up, Fault::FailResponse).await;
    let resp =
        raw_request(gw.listener_addr("public").unwrap(), b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await;
    assert_eq!(status(&resp), 500, "{resp}");
    assert!(!resp.contains("\"path\""), "the upstream's body must not pass: {resp}");
}

#[tokio::test]
async fn stages_deny_with_their_own_name_and_reason() {
    let up = Upstream::start().await;
    let (gw, log) = gateway(&up, Fault::DenyRequest).await;
    let resp =
        raw_request(gw.listener_addr("public").unwrap(), b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await;
    assert_eq!(status(&resp), 403, "{resp}");
    assert!(resp.to_ascii_lowercase().contains("x-content-type-options: nosniff"), "hygiene applies to stage answers");
    assert_eq!(up.hits(), 0);
    let line: serde_json::Value = serde_json::from_str(&log.lock().unwrap()[0]).unwrap();
    assert_eq!(line["reason"], "test-denied");
    assert_eq!(line["stage"], "fault");
}

#[tokio::test]
async fn response_body_stages_see_and_rewrite_the_whole_body() {
    let up = Upstream::start().await;
    let (gw, log) = gateway(&up, Fault::DenyResponseBody).await;
    let addr = gw.listener_addr("public").unwrap();
    let resp =
        raw_request(addr, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
            .await;
    assert_eq!(status(&resp), 200, "{resp}");
    assert!(resp.ends_with("HELLO"), "{resp}");
    assert!(resp.to_ascii_lowercase().contains("content-length: 5"));
    let denied =
        raw_request(addr, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\nConnection: close\r\n\r\nmy secret")
            .await;
    assert_eq!(status(&denied), 502, "{denied}");
    assert!(!denied.contains("secret"));
    // The stage answered without naming a reason: the pipeline names the stage.
    let line: serde_json::Value = serde_json::from_str(&log.lock().unwrap()[1]).unwrap();
    assert_eq!((line["stage"].as_str(), line["reason"].as_str()), (Some("fault"), Some("denied")));
    let too_big = raw_request(addr, b"GET /big/5000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status(&too_big), 502, "a response over the stage's cap fails closed");
    let rid =
        too_big.to_ascii_lowercase().lines().find_map(|l| l.strip_prefix("x-request-id: ").map(str::to_owned)).unwrap();
    assert!(too_big.contains(&format!("\"request_id\":\"{}\"", rid.trim())), "{too_big}");
}
