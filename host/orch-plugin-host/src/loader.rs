//! Loading one component file: every check happens here, off the request
//! path, before the plugin can be published.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use orch_core::contract::{PluginInfo, PluginKind, RequestContext};
use wasmtime::Store;
use wasmtime::component::{Component, InstancePre};

use crate::adapter::AdapterInstance;
use crate::bindings::{adapter, dialect, transformer};
use crate::cache::CacheOutcome;
use crate::convert;
use crate::dialect::DialectInstance;
use crate::error::{CallError, PluginFault};
use crate::host_state::HostState;
use crate::runtime::{Runtime, arm, settle};
use crate::stats::PluginStats;
use crate::transformer::TransformerInstance;

/// The WIT package every plugin interface belongs to.
const PACKAGE: &str = "llm-orchestrator:plugin";
/// Files above this size are refused before reading them.
pub(crate) const MAX_FILE_BYTES: u64 = 256 << 20;

/// A validated, compiled plugin version, ready to instantiate.
pub struct LoadedPlugin {
    /// What the plugin says it is.
    pub info: PluginInfo,
    /// The contract version it was built against, e.g. `0.1.0`.
    pub contract: semver::Version,
    /// The file it came from.
    pub path: PathBuf,
    /// Hex SHA-256 of the file.
    pub sha256: String,
    /// File size in bytes.
    pub size: u64,
    /// When it was loaded.
    pub loaded_at: SystemTime,
    /// How long compiling and validating took.
    pub load_time: Duration,
    /// Whether its compiled code came from the compile cache.
    pub compiled: CacheOutcome,
    /// Calls, faults and quarantine of this version.
    pub stats: PluginStats,
    pub(crate) runtime: Arc<Runtime>,
    pre: InstancePre<HostState>,
    exports: Exports,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("info", &self.info)
            .field("path", &self.path)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

enum Exports {
    Adapter(adapter::GuestIndices),
    Dialect(dialect::GuestIndices),
    Transformer(transformer::GuestIndices),
}

impl LoadedPlugin {
    /// `id@version`.
    pub fn label(&self) -> String {
        self.info.label()
    }

    /// Instantiate this adapter for one attempt.
    pub async fn adapter(
        self: &Arc<Self>,
        ctx: &RequestContext,
    ) -> Result<AdapterInstance, PluginFault> {
        AdapterInstance::new(self.clone(), ctx).await
    }

    /// Instantiate this dialect for one request.
    pub async fn dialect(
        self: &Arc<Self>,
        request_id: &str,
    ) -> Result<DialectInstance, PluginFault> {
        DialectInstance::new(self.clone(), request_id).await
    }

    /// Instantiate this transformer for one request.
    pub async fn transformer(
        self: &Arc<Self>,
        request_id: &str,
    ) -> Result<TransformerInstance, PluginFault> {
        TransformerInstance::new(self.clone(), request_id).await
    }

    pub(crate) async fn instantiate_dialect(
        &self,
        request_id: &str,
    ) -> Result<(Store<HostState>, dialect::Guest), PluginFault> {
        let Exports::Dialect(indices) = &self.exports else {
            return Err(self.not_a("dialect"));
        };
        self.load_guest(request_id, |store, instance| indices.load(store, instance))
            .await
    }

    pub(crate) async fn instantiate_adapter(
        &self,
        request_id: &str,
    ) -> Result<(Store<HostState>, adapter::Guest), PluginFault> {
        let Exports::Adapter(indices) = &self.exports else {
            return Err(self.not_a("adapter"));
        };
        self.load_guest(request_id, |store, instance| indices.load(store, instance))
            .await
    }

    pub(crate) async fn instantiate_transformer(
        &self,
        request_id: &str,
    ) -> Result<(Store<HostState>, transformer::Guest), PluginFault> {
        let Exports::Transformer(indices) = &self.exports else {
            return Err(self.not_a("transformer"));
        };
        self.load_guest(request_id, |store, instance| indices.load(store, instance))
            .await
    }

    /// A fresh instance and its typed exports.
    async fn load_guest<G>(
        &self,
        request_id: &str,
        load: impl FnOnce(&mut Store<HostState>, &wasmtime::component::Instance) -> wasmtime::Result<G>,
    ) -> Result<(Store<HostState>, G), PluginFault> {
        let (mut store, instance) = self.fresh_instance(request_id).await?;
        let guest = load(&mut store, &instance).map_err(|e| PluginFault::Trap(e.to_string()))?;
        Ok((store, guest))
    }

    /// Count a fault of this version; log the quarantine it starts.
    pub(crate) fn faulted(&self, fault: &PluginFault) {
        let limits = &self.runtime.limits;
        let after = limits.quarantine_after_faults;
        if let Some(length) = self
            .stats
            .fault(fault, Instant::now(), after, limits.quarantine)
        {
            tracing::warn!(
                plugin = %self.label(),
                file = %self.path.display(),
                quarantine_s = length.as_secs(),
                "plugin quarantined after repeated faults (last: {fault}); requests avoid it until then"
            );
        }
    }

    /// A typed error the plugin returned, counted by class.
    pub(crate) fn typed_error(&self, e: crate::bindings::types::PluginError) -> CallError {
        let classified = convert::plugin_error(e);
        self.stats.error(classified.class.as_str());
        CallError::Plugin(classified)
    }

    /// Time left in quarantine, when this version is quarantined.
    pub fn quarantined(&self) -> Option<Duration> {
        self.stats.quarantined(Instant::now())
    }

    fn not_a(&self, kind: &str) -> PluginFault {
        let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        PluginFault::InvalidOutput(format!("{} is not {article} {kind}", self.label()))
    }

    /// A new store for one request and this plugin instantiated in it.
    async fn fresh_instance(
        &self,
        request_id: &str,
    ) -> Result<(Store<HostState>, wasmtime::component::Instance), PluginFault> {
        let mut store = self
            .runtime
            .new_store(self.label().into(), request_id.into());
        let instance = instantiate(&mut store, &self.pre, &self.runtime)
            .await
            .inspect_err(|f| self.faulted(f))?;
        Ok((store, instance))
    }
}

async fn instantiate(
    store: &mut Store<HostState>,
    pre: &InstancePre<HostState>,
    runtime: &Runtime,
) -> Result<wasmtime::component::Instance, PluginFault> {
    arm(store);
    let backstop = runtime.limits.wall_backstop();
    let outcome = tokio::time::timeout(backstop, pre.instantiate_async(&mut *store)).await;
    settle(store, &runtime.limits, outcome)
}

/// Load a plugin from its bytes: check the header, compile, find which
/// contract interface it exports and at which version, link it with only the
/// host's imports (every other import traps when called), instantiate it under
/// the production limits and validate the metadata it reports.
pub(crate) async fn load(
    runtime: Arc<Runtime>,
    path: &Path,
    bytes: Vec<u8>,
    sha256: String,
) -> Result<LoadedPlugin, String> {
    let started = Instant::now();
    let size = bytes.len() as u64;
    check_header(&bytes)?;
    let rt = runtime.clone();
    let hash = sha256.clone();
    let (component, compiled) = tokio::task::spawn_blocking(move || match &rt.cache {
        Some(cache) => cache.component(&rt, &bytes, &hash),
        None => crate::cache::compile_in_memory(&rt, &bytes).map(|c| (c, CacheOutcome::Compiled)),
    })
    .await
    .map_err(|e| format!("compilation task failed: {e}"))?
    .map_err(|e| format!("not a valid component: {}", first_line(&e)))?;

    let (kind, contract) = contract_export(&runtime, &component)?;
    let mut linker = runtime.linker.clone();
    linker
        .define_unknown_imports_as_traps(&component)
        .map_err(|e| format!("cannot link imports: {e}"))?;
    let pre = linker.instantiate_pre(&component).map_err(|e| {
        format!(
            "imports do not match what the host provides: {}",
            first_line(&e)
        )
    })?;
    let mismatch = |e: wasmtime::Error| {
        format!(
            "its {kind} interface does not match contract {PACKAGE}@{contract}: {}",
            first_line(&e)
        )
    };
    let exports = match kind {
        PluginKind::Adapter => {
            Exports::Adapter(adapter::GuestIndices::new(&pre).map_err(mismatch)?)
        }
        PluginKind::Dialect => {
            Exports::Dialect(dialect::GuestIndices::new(&pre).map_err(mismatch)?)
        }
        PluginKind::Transformer => {
            Exports::Transformer(transformer::GuestIndices::new(&pre).map_err(mismatch)?)
        }
    };

    let mut store = runtime.new_store("loading".into(), "load".into());
    let instance = instantiate(&mut store, &pre, &runtime)
        .await
        .map_err(|f| format!("failed to instantiate: {f}"))?;
    let load_err = |e: wasmtime::Error| format!("cannot bind exports: {}", first_line(&e));
    arm(&mut store);
    let backstop = runtime.limits.wall_backstop();
    let info = match &exports {
        Exports::Adapter(ix) => {
            let g = ix.load(&mut store, &instance).map_err(load_err)?;
            let out = tokio::time::timeout(backstop, g.call_info(&mut store)).await;
            settle(&store, &runtime.limits, out)
        }
        Exports::Dialect(ix) => {
            let g = ix.load(&mut store, &instance).map_err(load_err)?;
            let out = tokio::time::timeout(backstop, g.call_info(&mut store)).await;
            settle(&store, &runtime.limits, out)
        }
        Exports::Transformer(ix) => {
            let g = ix.load(&mut store, &instance).map_err(load_err)?;
            let out = tokio::time::timeout(backstop, g.call_info(&mut store)).await;
            settle(&store, &runtime.limits, out)
        }
    }
    .map_err(|f| format!("info() failed: {f}"))?;
    let info = convert::plugin_info(info)?;
    if info.kind != kind {
        return Err(format!(
            "reports kind {} but exports the {kind} interface",
            info.kind
        ));
    }
    Ok(LoadedPlugin {
        info,
        contract,
        path: path.to_path_buf(),
        sha256,
        size,
        loaded_at: SystemTime::now(),
        load_time: started.elapsed(),
        compiled,
        stats: PluginStats::default(),
        runtime,
        pre,
        exports,
    })
}

fn first_line(e: &wasmtime::Error) -> String {
    let s = format!("{e:#}");
    s.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect()
}

/// Refuse what is not a WebAssembly component before compiling anything.
/// Precompiled artifacts (`.cwasm`, ELF) are never accepted from the folder.
fn check_header(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 8 {
        return Err(format!(
            "file is too short to be WebAssembly ({} bytes)",
            bytes.len()
        ));
    }
    if &bytes[..4] != b"\0asm" {
        if &bytes[..4] == b"\x7fELF" {
            return Err("file is a precompiled artifact; only .wasm components are loaded".into());
        }
        return Err("file is not WebAssembly (bad magic number)".into());
    }
    match &bytes[4..8] {
        [0x0d, 0x00, 0x01, 0x00] => Ok(()),
        [0x01, 0x00, 0x00, 0x00] => Err(
            "file is a core WebAssembly module, not a component (build for wasm32-wasip2)".into(),
        ),
        _ => Err("file has an unknown WebAssembly version or layer".into()),
    }
}

/// Find the one contract interface a component exports and its version.
fn contract_export(
    runtime: &Runtime,
    component: &Component,
) -> Result<(PluginKind, semver::Version), String> {
    let ty = component.component_type();
    let mut found = Vec::new();
    let mut others = Vec::new();
    for (name, _) in ty.exports(&runtime.engine) {
        let Some(rest) = name.strip_prefix(PACKAGE).and_then(|r| r.strip_prefix('/')) else {
            others.push(name.to_string());
            continue;
        };
        let (iface, version) = rest.split_once('@').unwrap_or((rest, ""));
        let kind = match iface {
            "adapter" => PluginKind::Adapter,
            "dialect" => PluginKind::Dialect,
            "transformer" => PluginKind::Transformer,
            _ => {
                others.push(name.to_string());
                continue;
            }
        };
        let version = semver::Version::parse(version)
            .map_err(|_| format!("exports {name} without a valid contract version"))?;
        found.push((kind, version));
    }
    match found.as_slice() {
        [] => Err(format!(
            "exports no {PACKAGE} interface (wrong world?); it exports: [{}]",
            others.join(", ")
        )),
        [(kind, version)] => {
            let supported = orch_core::contract::SUPPORTED_CONTRACTS
                .iter()
                .filter_map(|v| semver::Version::parse(v).ok())
                .any(|s| {
                    s.major == version.major && s.minor == version.minor && version.patch <= s.patch
                });
            if supported {
                Ok((*kind, version.clone()))
            } else {
                Err(format!(
                    "built for contract {PACKAGE}@{version}, but this gateway supports {}",
                    orch_core::contract::SUPPORTED_CONTRACTS.join(", ")
                ))
            }
        }
        _ => Err("exports more than one plugin interface; a component must be one kind".into()),
    }
}
