#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers outside #[test] functions")]
//! TLS termination (ALPN, HSTS, certificate reload without dropping connections), HTTP/2 down and
//! upstream, h2c, upstream TLS verification, WebSocket passthrough.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use portcullis_testkit::{Mode, TestCert, TestGateway, Upstream, get, send, tls_client};
use tokio_tungstenite::tungstenite::Message;

async fn tls_gateway(up: &Upstream, cert: &TestCert) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    cert.write(dir.path(), "server");
    let yaml = format!(
        "listeners: [{{ name: public, bind: \"127.0.0.1:0\", tls: {{ cert_file: server.crt, key_file: server.key }} }}]\nupstreams: {{ up: {{ targets: [\"http://{}\"] }} }}\nroutes: [{{ name: all, prefix: /, upstream: up }}]\n",
        up.addr()
    );
    TestGateway::start_in(dir, &yaml).await
}

#[tokio::test]
async fn tls_listener_negotiates_h2_and_http1_and_sends_hsts() {
    let up = Upstream::start().await;
    let cert = TestCert::generate();
    let gw = tls_gateway(&up, &cert).await;
    let h2 = send(gw.addr(), &tls_client(cert.client_config(&[b"h2", b"http/1.1"])), get("/a")).await;
    assert_eq!(h2.status, 200);
    assert_eq!(h2.version, http::Version::HTTP_2);
    assert!(h2.header("strict-transport-security").unwrap().starts_with("max-age=31536000"));
    let h1 = send(gw.addr(), &tls_client(cert.client_config(&[b"http/1.1"])), get("/b")).await;
    assert_eq!(h1.status, 200);
    assert_eq!(h1.version, http::Version::HTTP_11);
    assert_eq!(up.requests()[0].headers["x-forwarded-proto"], "https");
    let log = gw.access_log();
    assert_eq!(log[0]["tls"], true);
    assert_eq!(log[0]["protocol"], "HTTP/2.0");
}

#[tokio::test]
async fn tls_1_2_is_accepted_and_plaintext_is_refused() {
    let up = Upstream::start().await;
    let cert = TestCert::generate();
    let gw = tls_gateway(&up, &cert).await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(cert.cert_der.clone())).unwrap();
    let tls12 = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    assert_eq!(send(gw.addr(), &tls_client(tls12), get("/a")).await.status, 200);
    // A plaintext request on the TLS port never reaches the upstream.
    let resp = portcullis_testkit::raw_request(gw.addr(), b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(!resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(up.requests().iter().all(|r| r.path != "/plain"));
}

#[tokio::test]
async fn certificate_reload_keeps_existing_connections() {
    let up = Upstream::start().await;
    let old = TestCert::generate();
    let gw = tls_gateway(&up, &old).await;
    // An HTTP/2 connection opened with the old certificate.
    let tcp = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(old.client_config(&[b"h2"])))
        .connect(rustls::pki_types::ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    assert_eq!(sender.send_request(get("/before")).await.unwrap().status(), 200);

    let new = TestCert::generate();
    new.write(gw.dir(), "server");
    gw.handle().reload_from_file().unwrap();

    // New connections get the new certificate (a client trusting only the old one fails) ...
    let fresh = send(gw.addr(), &tls_client(new.client_config(&[b"h2"])), get("/after")).await;
    assert_eq!(fresh.status, 200);
    let tcp = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    let old_only = tokio_rustls::TlsConnector::from(Arc::new(old.client_config(&[b"h2"])));
    assert!(old_only.connect(rustls::pki_types::ServerName::try_from("localhost").unwrap(), tcp).await.is_err());
    // ... and the connection opened before the reload still works.
    let resp = sender.send_request(get("/still-open")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let _ = resp.into_body().collect().await;
    assert!(up.requests().iter().any(|r| r.path == "/still-open"));
}

#[tokio::test]
async fn h2c_only_when_enabled() {
    let up = Upstream::start().await;
    let yaml = format!(
        "listeners: [{{ name: public, bind: \"127.0.0.1:0\", h2c: true }}, {{ name: plain, bind: \"127.0.0.1:0\" }}]\nupstreams: {{ up: {{ targets: [\"http://{}\"] }} }}\nroutes: [{{ name: all, prefix: /, upstream: up }}]\n",
        up.addr()
    );
    let gw = TestGateway::start(&yaml).await;
    let resp = send(gw.listener("public"), &Mode::H2c, get("/a")).await;
    assert_eq!((resp.status, resp.version), (200, http::Version::HTTP_2));
    // HTTP/1.1 still works on the h2c listener, through the same guards.
    assert_eq!(send(gw.listener("public"), &Mode::H1, get("/b")).await.status, 200);
    // The plain listener refuses the HTTP/2 preface.
    let refused = portcullis_testkit::raw_request(gw.listener("plain"), b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    assert!(!refused.contains(" 200 "), "{refused}");
}

#[tokio::test]
async fn http2_to_the_upstream() {
    let up = Upstream::start().await;
    let yaml = format!(
        "listeners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\nupstreams: {{ up: {{ targets: [\"http://{}\"], protocol: http2 }} }}\nroutes: [{{ name: all, prefix: /, upstream: up }}]\n",
        up.addr()
    );
    let gw = TestGateway::start(&yaml).await;
    let resp = gw
        .request(
            http::Request::post("/echo").header("host", "x").body(Full::new(Bytes::from_static(b"over h2"))).unwrap(),
        )
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(&resp.body[..], b"over h2");
    assert_eq!(up.requests()[0].version, http::Version::HTTP_2);
}

#[tokio::test]
async fn upstream_tls_is_verified_by_default() {
    let cert = TestCert::generate();
    let up = Upstream::start_tls(&cert).await;
    let dir = tempfile::tempdir().unwrap();
    cert.write(dir.path(), "upstream-ca");
    let yaml = format!(
        r#"
listeners: [{{ name: public, bind: "127.0.0.1:0" }}]
upstreams:
  trusted: {{ targets: ["https://{addr}"], tls: {{ ca_file: upstream-ca.crt, server_name: localhost }} }}
  webroots: {{ targets: ["https://{addr}"], tls: {{ server_name: localhost }} }}
  wrongname: {{ targets: ["https://{addr}"], tls: {{ ca_file: upstream-ca.crt, server_name: other.example }} }}
  skip: {{ targets: ["https://{addr}"], tls: {{ danger_skip_verify: true }} }}
routes:
  - {{ name: trusted, prefix: /trusted, upstream: trusted }}
  - {{ name: webroots, prefix: /webroots, upstream: webroots }}
  - {{ name: wrongname, prefix: /wrongname, upstream: wrongname }}
  - {{ name: skip, prefix: /skip, upstream: skip }}
"#,
        addr = up.addr()
    );
    let gw = TestGateway::start_in(dir, &yaml).await;
    assert_eq!(gw.get("/trusted").await.status, 200);
    assert_eq!(gw.get("/webroots").await.status, 502, "a self-signed upstream must not verify against web roots");
    assert_eq!(gw.get("/wrongname").await.status, 502, "the name must match");
    assert_eq!(gw.get("/skip").await.status, 200);
    let paths: Vec<String> = up.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/trusted", "/skip"]);
    assert!(gw.handle().config().warnings.iter().any(|w| w.path == "upstreams.skip.tls.danger_skip_verify"));
}

#[tokio::test]
async fn websocket_upgrades_pass_through() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&TestGateway::yaml(&up, "")).await;
    let tcp = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    let url = format!("ws://{}/ws", gw.addr());
    let (mut ws, resp) =
        tokio::time::timeout(Duration::from_secs(5), tokio_tungstenite::client_async(url, tcp)).await.unwrap().unwrap();
    assert_eq!(resp.status(), 101);
    assert!(resp.headers().get("x-request-id").is_some());
    for msg in ["hello", "GET /admin HTTP/1.1\r\nHost: x\r\n\r\n", "third"] {
        ws.send(Message::text(msg)).await.unwrap();
        let echo = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(echo.into_text().unwrap().as_str(), msg);
    }
    ws.close(None).await.unwrap();
    // Frames after the upgrade are not parsed as requests.
    assert_eq!(up.hits(), 1);
    assert_eq!(up.requests()[0].headers["upgrade"], "websocket");
}

#[tokio::test]
async fn websocket_tunnels_hold_their_connection_slot_and_time_out_when_idle() {
    let up = Upstream::start().await;
    let gw = TestGateway::start(&TestGateway::yaml(&up, "limits: { max_connections: 1 }\ntimeouts: { idle: 400ms }\n"))
        .await;
    let tcp = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{}/ws", gw.addr()), tcp).await.unwrap();
    ws.send(Message::text("ping")).await.unwrap();
    assert!(ws.next().await.unwrap().is_ok());
    // The open tunnel still counts: a second connection is over the cap.
    let other = portcullis_testkit::raw_request(gw.addr(), b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(other.starts_with("HTTP/1.1 503"), "{other}");
    // Quiet for longer than `idle`: the tunnel is closed.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let next = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap();
    assert!(!matches!(next, Some(Ok(Message::Text(_)))), "{next:?}");
    // And its slot is free again.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(send(gw.addr(), &Mode::H1, get("/after")).await.status, 200);
}

#[tokio::test]
async fn http2_rapid_reset_flood_does_not_take_the_gateway_down() {
    // CVE-2023-44487: open streams and cancel them at once, as fast as possible.
    let up = Upstream::start().await;
    let yaml = TestGateway::yaml(&up, "").replace("bind: \"127.0.0.1:0\" }", "bind: \"127.0.0.1:0\", h2c: true }");
    let gw = TestGateway::start(&yaml).await;
    let tcp = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    let (mut client, conn) = h2::client::handshake(tcp).await.unwrap();
    let conn = tokio::spawn(conn);
    let mut sent = 0;
    let flood = async {
        for _ in 0..5000 {
            let req = http::Request::get(format!("http://{}/slow/2000", gw.addr())).body(()).unwrap();
            let Ok(ready) = client.clone().ready().await else { break };
            client = ready;
            let Ok((resp, _)) = client.send_request(req, true) else { break };
            drop(resp); // RST_STREAM(CANCEL) right away
            sent += 1;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), flood).await.expect("flood did not finish");
    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
    // The gateway still serves, and the upstream never saw anything close to the flood at once.
    let resp = send(gw.addr(), &Mode::H2c, get("/after")).await;
    assert_eq!(resp.status, 200);
    eprintln!("rapid reset: {sent} streams sent, upstream saw {}", up.hits());
    assert!(sent >= 100, "the flood stopped after {sent} streams");
    // A cancelled stream drops its request future: cancelled requests stop before the upstream.
    assert!(up.hits() < sent / 2, "{} of {sent} cancelled requests reached the upstream", up.hits());
}
