//! The gateway's data plane: hyper server and client, TLS, HTTP hardening, routing, upstream
//! pools, and the pipeline run for every request.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = portcullis_config::load(std::path::Path::new("examples/demo.yaml"))?;
//! let gateway = portcullis_proxy::Gateway::start(config, Default::default()).await?;
//! println!("listening on {:?}", gateway.listener_addrs());
//! gateway.handle().watch_config()?; // reload on SIGHUP and on file change
//! gateway.wait_for_shutdown_signal().await;
//! gateway.shutdown(std::time::Duration::from_secs(10)).await;
//! # Ok(()) }
//! ```

mod body;
mod contract;
mod cors;
mod h1_guard;
mod handler;
mod hygiene;
mod inspect;
mod pipeline;
mod reload;
mod router;
mod runtime;
mod server;
mod tls;
mod traffic;
mod upstream;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use portcullis_config::{AccessLogTarget, Config, ConfigErrors};
use portcullis_observe::AccessLogSink;
use tokio::sync::{Semaphore, watch};

pub use reload::WatchHandle;

use crate::runtime::Runtime;
use crate::server::ListenerRt;
use crate::tls::CertResolver;

/// How to start a gateway beyond its config.
#[derive(Debug, Default, Clone)]
pub struct GatewayOptions {
    /// Send access log lines here instead of the configured target (tests use a memory sink).
    pub access_log: Option<AccessLogSink>,
    /// The config file, for reload on SIGHUP and file change.
    pub config_path: Option<PathBuf>,
    /// Test-only: a misbehaving stage put first in the pipeline.
    #[cfg(test)]
    pub(crate) fault: Option<pipeline::fault::Fault>,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error("cannot bind listener {name} on {addr}")]
    Bind {
        /// The listener.
        name: String,
        /// Its address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The access log file could not be opened.
    #[error("cannot open access log {path}")]
    AccessLog {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The runtime could not be built (TLS setup).
    #[error("{0}")]
    Setup(String),
    /// The identity service (store, shared state) could not start.
    #[error("identity: {0}")]
    Identity(#[from] portcullis_identity::ServiceError),
    /// The traffic service (rate-limit counters) could not start.
    #[error("traffic: {0}")]
    Traffic(#[from] portcullis_traffic::ServiceError),
}

/// Why a reload was rejected. The old configuration keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new file is invalid.
    #[error("{0}")]
    Invalid(#[from] ConfigErrors),
    /// The new config changes what is fixed at start (listeners, connection and in-flight caps).
    #[error("{0} changed; restart the gateway to apply it")]
    RestartRequired(String),
    /// The runtime could not be built.
    #[error("{0}")]
    Setup(String),
    /// No config file is known to reload from.
    #[error("the gateway was not started from a config file")]
    NoConfigFile,
}

pub(crate) struct Shared {
    pub(crate) runtime: ArcSwap<Runtime>,
    identity: Option<portcullis_identity::IdentityService>,
    traffic: Option<traffic::TrafficGlue>,
    pub(crate) inflight: Arc<Semaphore>,
    pub(crate) conns: Arc<Semaphore>,
    pub(crate) max_connections: usize,
    pub(crate) shutdown: watch::Sender<bool>,
    resolvers: HashMap<Arc<str>, Arc<CertResolver>>,
    sink: Mutex<SinkState>,
    config_path: Option<PathBuf>,
    reload_lock: Mutex<()>,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    ready: AtomicBool,
    /// How long workers wait for connections to finish once shutdown began (ms).
    pub(crate) grace_ms: AtomicU64,
}

struct SinkState {
    fixed: Option<AccessLogSink>,
    current: Option<(AccessLogTarget, AccessLogSink)>,
}

impl SinkState {
    fn sink_for(&mut self, config: &Config) -> Result<Option<AccessLogSink>, StartError> {
        if !config.access_log.enabled {
            return Ok(None);
        }
        if let Some(s) = &self.fixed {
            return Ok(Some(s.clone()));
        }
        if let Some((target, sink)) = &self.current
            && *target == config.access_log.target
        {
            return Ok(Some(sink.clone()));
        }
        let sink = match &config.access_log.target {
            AccessLogTarget::Stdout => AccessLogSink::writer(std::io::stdout()),
            AccessLogTarget::Stderr => AccessLogSink::writer(std::io::stderr()),
            AccessLogTarget::File(path) => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| StartError::AccessLog { path: path.clone(), source })?;
                AccessLogSink::writer(f)
            }
        };
        self.current = Some((config.access_log.target.clone(), sink.clone()));
        Ok(Some(sink))
    }
}

/// A running gateway.
pub struct Gateway {
    handle: GatewayHandle,
    addrs: Vec<(Arc<str>, SocketAddr)>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // Dropped without `shutdown`: stop the workers now, without a grace period.
        let _ = self.handle.shared.shutdown.send(true);
    }
}

/// A cheap handle to a running gateway: reload, readiness, counters.
#[derive(Clone)]
pub struct GatewayHandle {
    shared: Arc<Shared>,
}

impl Gateway {
    /// Binds every listener and starts serving.
    pub async fn start(config: Config, opts: GatewayOptions) -> Result<Self, StartError> {
        // The metrics recorder must exist before the first request caches its metric handles.
        let _ = portcullis_observe::install_recorder();
        let mut sink = SinkState { fixed: opts.access_log, current: None };
        let access_sink = sink.sink_for(&config)?;
        let mut resolvers = HashMap::new();
        let workers = config.workers.max(1);
        // Each worker gets its own accept socket per listener (SO_REUSEPORT): the kernel spreads
        // connections across workers, and no lock or wake-up is shared between them.
        let mut per_worker: Vec<Vec<(std::net::TcpListener, Arc<ListenerRt>)>> =
            (0..workers).map(|_| Vec::new()).collect();
        let mut addrs = Vec::new();
        for l in &config.listeners {
            let bind_err = |source| StartError::Bind { name: l.name.to_string(), addr: l.bind, source };
            if l.bind.port() != 0 {
                // SO_REUSEPORT would let a second gateway (same user) share the port silently;
                // a plain bind first fails if anything already listens there.
                drop(std::net::TcpListener::bind(l.bind).map_err(bind_err)?);
            }
            let first = server::reuseport_listener(l.bind).map_err(bind_err)?;
            let addr = first.local_addr().map_err(bind_err)?;
            addrs.push((l.name.clone(), addr));
            let tls = match &l.tls {
                Some(t) => {
                    let resolver = Arc::new(CertResolver::new(t.certified_key.clone()));
                    resolvers.insert(l.name.clone(), resolver.clone());
                    let cfg = tls::server_config(resolver, t.client_auth.as_ref())
                        .map_err(|e| StartError::Setup(e.to_string()))?;
                    Some(tokio_rustls::TlsAcceptor::from(cfg))
                }
                None => None,
            };
            let lrt = Arc::new(ListenerRt { name: l.name.clone(), tls, h2c: l.h2c });
            let mut sockets = vec![first];
            for _ in 1..workers {
                sockets.push(server::reuseport_listener(addr).map_err(bind_err)?);
            }
            for (w, sock) in sockets.into_iter().enumerate() {
                per_worker[w].push((sock, lrt.clone()));
            }
        }
        let inflight = Arc::new(Semaphore::new(config.limits.max_inflight_requests));
        let max_connections = config.limits.max_connections;
        let conns = Arc::new(Semaphore::new(max_connections));
        let identity = match &config.identity {
            Some(ic) => Some(portcullis_identity::IdentityService::start(ic.clone()).await?),
            None => None,
        };
        let traffic = traffic::start(&config, identity.as_ref())?;
        #[allow(unused_mut, reason = "mutated only in tests")]
        let mut runtime = Runtime::build(config, access_sink, identity.as_ref(), traffic.as_ref())
            .map_err(|e| StartError::Setup(e.to_string()))?;
        #[cfg(test)]
        if let Some(f) = opts.fault {
            runtime.pipeline.push_front_fault(pipeline::fault::FaultStage(f));
        }
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            runtime: ArcSwap::from_pointee(runtime),
            identity,
            traffic,
            inflight,
            conns,
            max_connections,
            shutdown,
            resolvers,
            sink: Mutex::new(sink),
            config_path: opts.config_path,
            reload_lock: Mutex::new(()),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            grace_ms: AtomicU64::new(0),
        });
        let mut threads = Vec::new();
        for (w, listeners) in per_worker.into_iter().enumerate() {
            let shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("portcullis-worker-{w}"))
                .spawn(move || server::worker(w, shared, listeners))
                .map_err(|e| StartError::Setup(format!("cannot start worker thread: {e}")))?;
            threads.push(spawned);
        }
        shared.ready.store(true, Ordering::Relaxed);
        let names = shared.runtime.load().pipeline.stage_names();
        tracing::info!(listeners = ?addrs, stages = ?names, "gateway started");
        Ok(Self { handle: GatewayHandle { shared }, addrs, threads })
    }

    /// The bound address of each listener, by name (useful with port 0).
    pub fn listener_addrs(&self) -> &[(Arc<str>, SocketAddr)] {
        &self.addrs
    }

    /// The bound address of the named listener.
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.addrs.iter().find(|(n, _)| &**n == name).map(|(_, a)| *a)
    }

    /// A handle for reloads and readiness.
    pub fn handle(&self) -> GatewayHandle {
        self.handle.clone()
    }

    /// Waits for SIGINT or SIGTERM.
    pub async fn wait_for_shutdown_signal(&self) {
        reload::shutdown_signal().await;
    }

    /// Stops accepting, lets connections finish their requests, and waits up to `grace`.
    pub async fn shutdown(mut self, grace: Duration) {
        let shared = self.handle.shared.clone();
        shared.ready.store(false, Ordering::Relaxed);
        shared.grace_ms.store(u64::try_from(grace.as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
        let _ = shared.shutdown.send(true);
        let threads = std::mem::take(&mut self.threads);
        // Each worker stops accepting, lets its connections finish (up to `grace`), and exits.
        let joined = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
        if joined.is_err() || shared.conns.available_permits() < shared.max_connections {
            tracing::warn!("shutdown grace period over with connections still open");
        }
        if let Some(t) = &shared.traffic {
            t.flush_now().await;
        }
    }
}

impl GatewayHandle {
    /// Whether the gateway is serving (false once shutdown began).
    pub fn is_ready(&self) -> bool {
        self.shared.ready.load(Ordering::Relaxed)
    }

    /// Successful and rejected reloads so far.
    pub fn reload_counts(&self) -> (u64, u64) {
        (self.shared.reloads_ok.load(Ordering::Relaxed), self.shared.reloads_failed.load(Ordering::Relaxed))
    }

    /// The pipeline's stages, in order.
    pub fn stage_names(&self) -> Vec<&'static str> {
        self.shared.runtime.load().pipeline.stage_names()
    }

    /// The identity service, when `identity` is configured (the admin API drives it).
    pub fn identity(&self) -> Option<&portcullis_identity::IdentityService> {
        self.shared.identity.as_ref()
    }

    /// Writes the usage counted so far to the store now (it is also written every
    /// `traffic.usage.flush_interval` and at shutdown).
    pub async fn flush_usage(&self) {
        if let Some(t) = &self.shared.traffic {
            t.flush_now().await;
        }
    }

    /// The config currently serving.
    pub fn config(&self) -> Arc<Config> {
        self.shared.runtime.load().config.clone()
    }

    /// Re-reads the config file (and everything it references) and applies it if valid.
    pub fn reload_from_file(&self) -> Result<(), ReloadError> {
        let Some(path) = &self.shared.config_path else {
            return self.rejected(ReloadError::NoConfigFile);
        };
        match portcullis_config::load(path) {
            Ok(c) => self.reload(c),
            Err(e) => self.rejected(ReloadError::Invalid(e)),
        }
    }

    /// Applies a new, already validated config atomically. Listener changes are refused (they need
    /// a restart); TLS certificates of existing listeners are replaced.
    pub fn reload(&self, config: Config) -> Result<(), ReloadError> {
        let _serial = self.shared.reload_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = self.shared.runtime.load_full();
        let describe = |c: &Config| -> Vec<String> {
            c.listeners
                .iter()
                .map(|l| {
                    format!(
                        "{}={}{}{}{}",
                        l.name,
                        l.bind,
                        if l.tls.is_some() { "+tls" } else { "" },
                        if l.tls.as_ref().is_some_and(|t| t.client_auth.is_some()) { "+mtls" } else { "" },
                        if l.h2c { "+h2c" } else { "" }
                    )
                })
                .collect()
        };
        let (old, new) = (describe(&current.config), describe(&config));
        if old != new {
            return self.rejected(ReloadError::RestartRequired(format!(
                "listeners ({} -> {})",
                old.join(","),
                new.join(",")
            )));
        }
        if current.config.workers != config.workers {
            return self.rejected(ReloadError::RestartRequired("workers".into()));
        }
        let (ol, nl) = (&current.config.limits, &config.limits);
        if ol.max_connections != nl.max_connections || ol.max_inflight_requests != nl.max_inflight_requests {
            return self.rejected(ReloadError::RestartRequired(
                "limits.max_connections or limits.max_inflight_requests".into(),
            ));
        }
        let sink = {
            let mut s = self.shared.sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match s.sink_for(&config) {
                Ok(s) => s,
                Err(e) => return self.rejected(ReloadError::Setup(e.to_string())),
            }
        };
        let certs: Vec<_> = config
            .listeners
            .iter()
            .filter_map(|l| Some((l.name.clone(), l.tls.as_ref()?.certified_key.clone())))
            .collect();
        if identity_fixed(current.config.identity.as_deref()) != identity_fixed(config.identity.as_deref()) {
            return self.rejected(ReloadError::RestartRequired("identity (other than route policies)".into()));
        }
        if let Err(what) = traffic::reload_check(self.shared.traffic.as_ref(), &config) {
            return self.rejected(ReloadError::RestartRequired(what));
        }
        let runtime = match Runtime::build(config, sink, self.shared.identity.as_ref(), self.shared.traffic.as_ref()) {
            Ok(r) => r,
            Err(e) => return self.rejected(ReloadError::Setup(e.to_string())),
        };
        for (name, key) in certs {
            if let Some(r) = self.shared.resolvers.get(&name) {
                r.replace(key);
            }
        }
        self.shared.runtime.store(Arc::new(runtime));
        self.shared.reloads_ok.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("portcullis_config_reloads_total", "result" => "success").increment(1);
        tracing::info!("configuration reloaded");
        Ok(())
    }

    fn rejected(&self, e: ReloadError) -> Result<(), ReloadError> {
        self.shared.reloads_failed.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("portcullis_config_reloads_total", "result" => "failure").increment(1);
        tracing::error!(error = %e, "configuration reload rejected; the previous configuration keeps serving");
        Err(e)
    }

    /// Reloads on SIGHUP and whenever the config file or a file it references changes.
    pub fn watch_config(&self) -> Result<WatchHandle, notify::Error> {
        reload::watch(self.clone())
    }
}

/// The identity section is fixed at start (the service is built once): any change needs a
/// restart. Secrets print as `***` in `Debug`, so they are compared by a digest, never printed.
fn identity_fixed(i: Option<&portcullis_config::IdentityConfig>) -> Option<String> {
    let i = i?;
    let mut secrets: Vec<&str> = vec![i.key_secret.expose()];
    secrets.extend(i.upstream_signing_secret.as_ref().map(|s| s.expose()));
    if let portcullis_config::StoreSettings::Postgres { url, .. } = &i.store {
        secrets.push(url.expose());
    }
    secrets.extend(i.cluster.as_ref().map(|c| c.redis_url.expose()));
    secrets.extend(i.issuers.values().filter_map(|x| x.hmac_secret.as_ref().map(|s| s.expose())));
    secrets.extend(i.introspection.values().map(|x| x.client_secret.expose()));
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for s in secrets {
        ctx.update(s.as_bytes());
        ctx.update(b"\0");
    }
    let digest: String = ctx.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect();
    Some(format!("{i:?}|{digest}"))
}

#[cfg(test)]
mod tests;
