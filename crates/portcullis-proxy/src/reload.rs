//! Hot reload triggers: SIGHUP and file changes (config, certificates, keys, CA bundles). A burst
//! of file events (editors, atomic renames) is debounced into one reload.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::GatewayHandle;

/// Keeps the watcher alive; dropping it stops watching.
pub struct WatchHandle {
    _task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for WatchHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WatchHandle")
    }
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self._task.abort();
    }
}

fn watched(handle: &GatewayHandle) -> HashSet<PathBuf> {
    handle.config().files.iter().map(|f| std::fs::canonicalize(f).unwrap_or_else(|_| f.clone())).collect()
}

pub(crate) fn watch(handle: GatewayHandle) -> Result<WatchHandle, notify::Error> {
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let files = std::sync::Arc::new(std::sync::Mutex::new(watched(&handle)));
    let filter = files.clone();
    let event_tx = tx.clone();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(ev) = res else { return };
        if ev.kind.is_access() {
            return;
        }
        let relevant = filter
            .lock()
            .map(|f| {
                ev.paths.iter().any(|p| {
                    f.contains(p) || f.iter().any(|w| w.file_name() == p.file_name() && w.parent() == p.parent())
                })
            })
            .unwrap_or(false);
        if relevant {
            let _ = event_tx.try_send(());
        }
    })?;
    // Watch directories, not files: editors and config managers replace files by renaming.
    let mut dirs: HashSet<PathBuf> = HashSet::new();
    let watch_dirs =
        |watcher: &mut notify::RecommendedWatcher, dirs: &mut HashSet<PathBuf>, files: &HashSet<PathBuf>| {
            for f in files {
                if let Some(d) = f.parent()
                    && dirs.insert(d.to_path_buf())
                    && let Err(e) = watcher.watch(d, RecursiveMode::NonRecursive)
                {
                    tracing::warn!(dir = %d.display(), error = %e, "cannot watch directory for config changes");
                }
            }
        };
    if let Ok(f) = files.lock() {
        watch_dirs(&mut watcher, &mut dirs, &f);
    }
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let task = tokio::spawn(async move {
        loop {
            #[cfg(unix)]
            let hup_fut = async {
                match hup.as_mut() {
                    Some(h) => {
                        h.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            #[cfg(not(unix))]
            let hup_fut = std::future::pending::<()>();
            tokio::select! {
                r = rx.recv() => {
                    if r.is_none() { break; }
                    // Debounce: let the burst of events settle, then reload once.
                    tokio::time::sleep(Duration::from_millis(150)).await;
                    while rx.try_recv().is_ok() {}
                }
                _ = hup_fut => {}
            }
            let _ = handle.reload_from_file();
            let new_files = watched(&handle);
            watch_dirs(&mut watcher, &mut dirs, &new_files);
            if let Ok(mut f) = files.lock() {
                *f = new_files;
            }
        }
        drop(tx);
    });
    Ok(WatchHandle { _task: task })
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let term_fut = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term_fut => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
