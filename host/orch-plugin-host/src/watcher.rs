//! Watching the plugins folder: debounced file events plus a periodic full
//! rescan (for file systems that do not deliver events) trigger reloads.

use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, new_debouncer};

use crate::registry::PluginHost;

/// Keeps the watch alive; dropping it stops watching.
pub struct Watcher {
    _debouncer: notify_debouncer_full::Debouncer<
        notify::RecommendedWatcher,
        notify_debouncer_full::RecommendedCache,
    >,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Watcher {
    /// Start watching the host's folder. Must be called inside a tokio runtime.
    pub fn start(
        host: Arc<PluginHost>,
        debounce: Duration,
        rescan: Duration,
    ) -> Result<Watcher, String> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut debouncer = new_debouncer(debounce, None, move |result: DebounceEventResult| {
            let relevant = match result {
                Ok(events) => events.iter().any(|e| {
                    !matches!(e.kind, EventKind::Access(_))
                        && e.paths
                            .iter()
                            .any(|p| p.extension().is_some_and(|x| x == "wasm"))
                }),
                Err(_) => true,
            };
            if relevant {
                let _ = tx.send(());
            }
        })
        .map_err(|e| format!("cannot watch plugins folder: {e}"))?;
        debouncer
            .watch(host.dir(), RecursiveMode::NonRecursive)
            .map_err(|e| format!("cannot watch {}: {e}", host.dir().display()))?;
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(rescan);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    ev = rx.recv() => {
                        if ev.is_none() { break; }
                        while rx.try_recv().is_ok() {}
                    }
                    _ = tick.tick() => {}
                }
                host.reload().await;
            }
        });
        Ok(Watcher {
            _debouncer: debouncer,
            task,
        })
    }
}
