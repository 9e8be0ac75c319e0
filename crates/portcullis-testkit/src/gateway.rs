use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use portcullis_admin::AdminServer;
use portcullis_observe::AccessLogSink;
use portcullis_proxy::{Gateway, GatewayHandle, GatewayOptions};

use crate::client::{Mode, Resp, send};
use crate::upstream::Upstream;

/// A gateway started from YAML, with its access log captured in memory and its admin listener
/// on an ephemeral port.
pub struct TestGateway {
    gateway: Option<Gateway>,
    admin: AdminServer,
    log: Arc<Mutex<Vec<String>>>,
    dir: tempfile::TempDir,
    config_path: PathBuf,
}

impl TestGateway {
    /// A config with one listener named `public` on 127.0.0.1:0, one upstream `up` pointing at
    /// `upstream`, one catch-all route `all`, plus `extra` YAML appended (top-level keys that the
    /// base does not set: limits, timeouts, trusted_proxies, paths, …).
    pub fn yaml(upstream: &Upstream, extra: &str) -> String {
        format!(
            "listeners: [{{ name: public, bind: \"127.0.0.1:0\" }}]\nupstreams: {{ up: {{ targets: [\"http://{}\"] }} }}\nroutes: [{{ name: all, prefix: /, upstream: up }}]\n{extra}",
            upstream.addr()
        )
    }

    /// Starts a gateway from this YAML, written to a temp file so reload tests can edit it.
    pub async fn start(yaml: &str) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), yaml).await
    }

    /// Same, in a given directory (which may hold certificates the YAML references).
    pub async fn start_in(dir: tempfile::TempDir, yaml: &str) -> Self {
        let config_path = dir.path().join("portcullis.yaml");
        std::fs::write(&config_path, yaml).unwrap();
        let config = portcullis_config::load(&config_path).unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
        let (sink, log) = AccessLogSink::memory();
        let opts = GatewayOptions { access_log: Some(sink), config_path: Some(config_path.clone()) };
        let gateway = Gateway::start(config, opts).await.unwrap();
        let admin = AdminServer::start("127.0.0.1:0".parse().unwrap(), gateway.handle()).await.unwrap();
        Self { gateway: Some(gateway), admin, log, dir, config_path }
    }

    fn gw(&self) -> &Gateway {
        self.gateway.as_ref().unwrap()
    }

    /// The `public` listener's address (or the first listener's).
    pub fn addr(&self) -> SocketAddr {
        self.gw().listener_addr("public").unwrap_or_else(|| self.gw().listener_addrs()[0].1)
    }

    pub fn listener(&self, name: &str) -> SocketAddr {
        self.gw().listener_addr(name).unwrap()
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.addr()
    }

    pub fn handle(&self) -> GatewayHandle {
        self.gw().handle()
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> &std::path::Path {
        &self.config_path
    }

    /// Access log lines so far, parsed.
    pub fn access_log(&self) -> Vec<serde_json::Value> {
        self.log.lock().unwrap().iter().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// Raw access log lines so far.
    pub fn access_log_raw(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.request(http::Request::get(path).header("host", "localhost").body(Full::new(Bytes::new())).unwrap()).await
    }

    /// Sends over HTTP/1.1 on a fresh connection.
    pub async fn request(&self, req: http::Request<Full<Bytes>>) -> Resp {
        send(self.addr(), &Mode::H1, req).await
    }

    /// Stops the gateway gracefully.
    pub async fn shutdown(mut self) {
        if let Some(g) = self.gateway.take() {
            g.shutdown(std::time::Duration::from_secs(5)).await;
        }
    }
}
