//! The set of loaded plugins, swapped atomically as a whole.
//!
//! Start-up is a reload from empty. A reload reads every `*.wasm` file in the
//! folder, reuses plugins whose bytes did not change, loads the others off the
//! request path, and publishes a new [`Snapshot`] in one atomic store. A file
//! that fails to load keeps the version it had before serving; a removed file
//! takes its plugin away. Requests hold an `Arc` of the plugin they started
//! with, so in-flight work finishes on its version.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use orch_core::contract::PluginKind;
use sha2::{Digest, Sha256};

use crate::cache::CompileCache;
use crate::loader::{self, LoadedPlugin, MAX_FILE_BYTES};
use crate::runtime::{Limits, Runtime};

/// What happened to one file in the plugins folder.
#[derive(Clone, Debug)]
pub enum FileState {
    /// Loaded and valid.
    Loaded(Arc<LoadedPlugin>),
    /// Refused; `serving` is the version from this file that keeps serving.
    Rejected {
        /// Hex SHA-256 of the refused bytes.
        sha256: String,
        /// Why it was refused.
        reason: String,
        /// The previous version still in use, if any.
        serving: Option<Arc<LoadedPlugin>>,
    },
}

/// An immutable view of the loaded plugins.
#[derive(Default)]
pub struct Snapshot {
    /// Increases with every published reload.
    pub generation: u64,
    files: BTreeMap<PathBuf, FileState>,
    active: HashMap<(PluginKind, String), Arc<LoadedPlugin>>,
    shadowed: Vec<(PathBuf, String)>,
}

impl Snapshot {
    /// The active adapter with this id.
    pub fn adapter(&self, id: &str) -> Option<&Arc<LoadedPlugin>> {
        self.active.get(&(PluginKind::Adapter, id.to_string()))
    }

    /// The adapter with this id at exactly this version, whether or not it
    /// is the newest loaded (a route may pin an older one, or split traffic
    /// between versions).
    pub fn adapter_at(&self, id: &str, version: &semver::Version) -> Option<&Arc<LoadedPlugin>> {
        let matches = |p: &&Arc<LoadedPlugin>| {
            p.info.kind == PluginKind::Adapter && p.info.id == id && p.info.version == *version
        };
        self.adapter(id).filter(matches).or_else(|| {
            self.files.values().find_map(|f| match f {
                FileState::Loaded(p)
                | FileState::Rejected {
                    serving: Some(p), ..
                } => Some(p).filter(matches),
                FileState::Rejected { serving: None, .. } => None,
            })
        })
    }

    /// The active dialect plugin for this dialect name.
    pub fn dialect(&self, dialect: &str) -> Option<&Arc<LoadedPlugin>> {
        self.active.get(&(PluginKind::Dialect, dialect.to_string()))
    }

    /// The active transformer with this id.
    pub fn transformer(&self, id: &str) -> Option<&Arc<LoadedPlugin>> {
        self.active.get(&(PluginKind::Transformer, id.to_string()))
    }

    /// Every active plugin.
    pub fn active(&self) -> impl Iterator<Item = &Arc<LoadedPlugin>> {
        self.active.values()
    }

    /// Every file and its state.
    pub fn files(&self) -> impl Iterator<Item = (&Path, &FileState)> {
        self.files.iter().map(|(p, s)| (p.as_path(), s))
    }

    /// Files whose plugin is loaded but hidden by another file with the same
    /// id and a higher or equal version, with the reason.
    pub fn shadowed(&self) -> &[(PathBuf, String)] {
        &self.shadowed
    }
}

/// What a reload changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// Plugins that became active (`id@version`).
    pub activated: Vec<String>,
    /// Plugins no longer active.
    pub deactivated: Vec<String>,
    /// Files refused in this reload, with the reason.
    pub rejected: Vec<(PathBuf, String)>,
}

impl ReloadReport {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.activated.is_empty() && self.deactivated.is_empty() && self.rejected.is_empty()
    }
}

/// Owns the plugin runtime, the folder and the current snapshot.
pub struct PluginHost {
    runtime: Arc<Runtime>,
    dir: PathBuf,
    current: ArcSwap<Snapshot>,
    reload_lock: tokio::sync::Mutex<()>,
    events: std::sync::Mutex<ReloadEvents>,
}

/// What reloads have done since start, for metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadEvents {
    /// Reloads that changed the snapshot.
    pub reloads: u64,
    /// Activations by plugin id and version (a start counts as one).
    pub loads: BTreeMap<(String, String), u64>,
    /// Rejected files by file name.
    pub rejections: BTreeMap<String, u64>,
}

impl PluginHost {
    /// Create the runtime for a plugins folder (created if missing). Nothing
    /// is loaded until [`PluginHost::reload`].
    pub fn new(dir: impl Into<PathBuf>, limits: Limits) -> Result<Arc<PluginHost>, String> {
        Self::build(dir.into(), limits, None)
    }

    /// Like [`PluginHost::new`], keeping compiled plugins in `cache_dir`
    /// (created owner-only): a start or reload maps a plugin it compiled
    /// before instead of compiling it again, and plugin code is paged in as
    /// it runs instead of held in anonymous memory. Refused when `cache_dir`
    /// is the plugins folder or inside it, or writable by others.
    pub fn with_compile_cache(
        dir: impl Into<PathBuf>,
        limits: Limits,
        cache_dir: &Path,
    ) -> Result<Arc<PluginHost>, String> {
        Self::build(dir.into(), limits, Some(cache_dir))
    }

    fn build(
        dir: PathBuf,
        limits: Limits,
        cache_dir: Option<&Path>,
    ) -> Result<Arc<PluginHost>, String> {
        crate::memory::map_large_blocks();
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create plugins folder {}: {e}", dir.display()))?;
        let mut runtime = Runtime::new(limits)?;
        if let Some(cache_dir) = cache_dir {
            runtime.cache = Some(CompileCache::open(cache_dir, &dir, runtime.compatibility)?);
        }
        Ok(Arc::new(PluginHost {
            runtime: Arc::new(runtime),
            dir,
            current: ArcSwap::from_pointee(Snapshot::default()),
            reload_lock: tokio::sync::Mutex::new(()),
            events: std::sync::Mutex::new(ReloadEvents::default()),
        }))
    }

    /// The plugins folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The limits plugin calls run under.
    pub fn limits(&self) -> &Limits {
        &self.runtime.limits
    }

    /// What reloads have done since start.
    pub fn events(&self) -> ReloadEvents {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// The current snapshot; hold it for the duration of a request.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Rescan the folder and publish the result. Concurrent calls are
    /// serialised.
    pub async fn reload(&self) -> ReloadReport {
        let _guard = self.reload_lock.lock().await;
        let old = self.current.load_full();
        let mut report = ReloadReport::default();
        let mut files = BTreeMap::new();
        for path in list_wasm_files(&self.dir).await {
            let state = self
                .load_file(&path, old.files.get(&path), &mut report)
                .await;
            if let Some(state) = state {
                files.insert(path, state);
            }
        }
        let (active, shadowed) = index(&files, &old);
        for (key, p) in &active {
            match old.active.get(key) {
                Some(prev) if Arc::ptr_eq(prev, p) => {}
                prev => {
                    if let Some(prev) = prev {
                        report.deactivated.push(prev.label());
                    }
                    report.activated.push(p.label());
                    tracing::info!(
                        plugin = %p.label(), kind = %p.info.kind, file = %p.path.display(),
                        sha256 = %&p.sha256[..12], load_ms = p.load_time.as_millis() as u64,
                        replaced = prev.map(|p| p.label()).unwrap_or_default(),
                        "plugin active"
                    );
                }
            }
        }
        for (key, p) in &old.active {
            if !active.contains_key(key) {
                report.deactivated.push(p.label());
                tracing::info!(plugin = %p.label(), kind = %p.info.kind, "plugin removed");
            }
        }
        for (path, why) in &shadowed {
            if !old.shadowed.iter().any(|(p, _)| p == path) {
                tracing::info!(
                    file = %path.display(),
                    "plugin file not the newest: {why}; it serves only targets that pin its version"
                );
            }
        }
        let compiled = !report.activated.is_empty() || !report.rejected.is_empty();
        if let Ok(mut events) = self.events.lock() {
            for p in report
                .activated
                .iter()
                .filter_map(|label| active.values().find(|p| p.label() == *label))
            {
                *events
                    .loads
                    .entry((p.info.id.clone(), p.info.version.to_string()))
                    .or_default() += 1;
            }
            for (path, _) in &report.rejected {
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                *events
                    .rejections
                    .entry(name.unwrap_or_default())
                    .or_default() += 1;
            }
            if !report.is_empty() {
                events.reloads += 1;
            }
        }
        // The plugins the cache must keep: every file's serving version.
        let live: Option<HashSet<String>> = self.runtime.cache.is_some().then(|| {
            files
                .values()
                .filter_map(|state| match state {
                    FileState::Loaded(p) => Some(p.sha256.clone()),
                    FileState::Rejected { serving, .. } => {
                        serving.as_ref().map(|p| p.sha256.clone())
                    }
                })
                .collect()
        });
        if !report.is_empty() || old.files.len() != files.len() {
            self.current.store(Arc::new(Snapshot {
                generation: old.generation + 1,
                files,
                active,
                shadowed,
            }));
        }
        if let Some(live) = live {
            let runtime = self.runtime.clone();
            let _ = tokio::task::spawn_blocking(move || {
                if let Some(cache) = &runtime.cache {
                    cache.retain(&live);
                }
            })
            .await;
        }
        if compiled {
            // Compiling leaves tens of MiB freed in the allocator's arenas.
            let _ = tokio::task::spawn_blocking(crate::memory::release).await;
        }
        report
    }

    async fn load_file(
        &self,
        path: &Path,
        previous: Option<&FileState>,
        report: &mut ReloadReport,
    ) -> Option<FileState> {
        let owned = path.to_path_buf();
        let read = tokio::task::spawn_blocking(move || read_and_hash(&owned)).await;
        let (bytes, sha256) = match read {
            Ok(Ok(v)) => v,
            Ok(Err(reason)) => {
                return Some(self.reject(path, String::new(), reason, previous, report));
            }
            // The file vanished between listing and reading, or the task died.
            Err(_) => return None,
        };
        match previous {
            Some(FileState::Loaded(p)) if p.sha256 == sha256 => return previous.cloned(),
            Some(FileState::Rejected { sha256: s, .. }) if *s == sha256 => {
                return previous.cloned();
            }
            _ => {}
        }
        match loader::load(self.runtime.clone(), path, bytes, sha256.clone()).await {
            Ok(p) => Some(FileState::Loaded(Arc::new(p))),
            Err(reason) => Some(self.reject(path, sha256, reason, previous, report)),
        }
    }

    fn reject(
        &self,
        path: &Path,
        sha256: String,
        reason: String,
        previous: Option<&FileState>,
        report: &mut ReloadReport,
    ) -> FileState {
        let serving = match previous {
            Some(FileState::Loaded(p)) => Some(p.clone()),
            Some(FileState::Rejected { serving, .. }) => serving.clone(),
            None => None,
        };
        tracing::warn!(
            file = %path.display(),
            keeps_serving = serving.as_ref().map(|p| p.label()).unwrap_or_default(),
            "plugin rejected: {reason}"
        );
        report.rejected.push((path.to_path_buf(), reason.clone()));
        FileState::Rejected {
            sha256,
            reason,
            serving,
        }
    }
}

async fn list_wasm_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(mut rd) = tokio::fs::read_dir(dir).await else {
        tracing::warn!(dir = %dir.display(), "cannot read plugins folder");
        return out;
    };
    while let Ok(Some(entry)) = rd.next_entry().await {
        let path = entry.path();
        let is_wasm = path.extension().is_some_and(|e| e == "wasm");
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        let is_file = tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_file());
        if is_wasm && !hidden && is_file {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn read_and_hash(path: &Path) -> Result<(Vec<u8>, String), String> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("cannot stat: {e}"))?
        .len();
    if len > MAX_FILE_BYTES {
        return Err(format!(
            "file is {len} bytes; the limit is {MAX_FILE_BYTES}"
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let sha = hex::encode(Sha256::digest(&bytes));
    Ok((bytes, sha))
}

type Index = HashMap<(PluginKind, String), Arc<LoadedPlugin>>;

/// Pick the active plugin per (kind, id): the highest version wins; on a tie
/// the one active before stays, else the first file in name order.
fn index(files: &BTreeMap<PathBuf, FileState>, old: &Snapshot) -> (Index, Vec<(PathBuf, String)>) {
    let mut active: Index = HashMap::new();
    let mut shadowed = Vec::new();
    for state in files.values() {
        let plugin = match state {
            FileState::Loaded(p) => p,
            FileState::Rejected {
                serving: Some(p), ..
            } => p,
            FileState::Rejected { serving: None, .. } => continue,
        };
        let key = (
            plugin.info.kind,
            match plugin.info.kind {
                PluginKind::Dialect => plugin.info.dialect.clone(),
                _ => plugin.info.id.clone(),
            },
        );
        match active.get(&key) {
            None => {
                active.insert(key, plugin.clone());
            }
            Some(current) => {
                let was_active =
                    |p: &Arc<LoadedPlugin>| old.active.get(&key).is_some_and(|o| Arc::ptr_eq(o, p));
                let wins = plugin.info.version > current.info.version
                    || (plugin.info.version == current.info.version
                        && was_active(plugin)
                        && !was_active(current));
                let (winner, loser) = if wins {
                    (plugin.clone(), current.clone())
                } else {
                    (current.clone(), plugin.clone())
                };
                shadowed.push((
                    loser.path.clone(),
                    format!(
                        "{} is shadowed by {} from {}",
                        loser.label(),
                        winner.label(),
                        winner.path.display()
                    ),
                ));
                active.insert(key, winner);
            }
        }
    }
    (active, shadowed)
}
