//! The wasmtime engine, its epoch ticker, the base linker and the limits
//! every plugin call runs under.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline,
};

use crate::bindings::HostView;
use crate::error::PluginFault;
use crate::host_state::HostState;

/// How often the engine's epoch advances. A spinning plugin yields to tokio
/// at least this often, and CPU deadlines are measured in these ticks.
pub(crate) const TICK: Duration = Duration::from_millis(5);

/// What an engine's compiled code must match to be loaded by another.
pub(crate) fn compatibility(engine: &Engine) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.finish()
}

/// Bounds every plugin call and instance runs under.
#[derive(Clone, Debug)]
pub struct Limits {
    /// CPU deadline for one call.
    pub call_timeout: Duration,
    /// Linear memory cap per instance.
    pub memory_limit_bytes: usize,
    /// Largest output one call may return.
    pub max_output_bytes: usize,
    /// Instances alive at once.
    pub max_instances: u32,
    /// Faults of one version within a minute that quarantine it (0: never).
    pub quarantine_after_faults: u32,
    /// The first quarantine's length.
    pub quarantine: Duration,
}

impl Default for Limits {
    /// The production defaults (those of an empty `[plugins]` section).
    fn default() -> Self {
        Limits {
            call_timeout: Duration::from_millis(50),
            memory_limit_bytes: 64 << 20,
            max_output_bytes: 16 << 20,
            max_instances: 1000,
            quarantine_after_faults: 5,
            quarantine: Duration::from_secs(30),
        }
    }
}

impl Limits {
    /// Limits from the `[plugins]` configuration.
    pub fn from_config(c: &orch_core::config::PluginsConfig) -> Self {
        Limits {
            call_timeout: c.call_timeout,
            memory_limit_bytes: c.memory_limit_bytes,
            max_output_bytes: c.max_output_bytes,
            max_instances: c.max_instances,
            quarantine_after_faults: c.quarantine_after_faults,
            quarantine: c.quarantine,
        }
    }

    fn tick_budget(&self) -> u32 {
        let ticks = self.call_timeout.as_micros().div_ceil(TICK.as_micros());
        u32::try_from(ticks).unwrap_or(u32::MAX).max(1)
    }

    /// A wall-clock backstop for one call, far above the CPU deadline: it
    /// only matters if the process is starved.
    pub(crate) fn wall_backstop(&self) -> Duration {
        self.call_timeout * 20 + Duration::from_secs(1)
    }
}

pub(crate) struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<HostState>,
    pub(crate) limits: Limits,
    /// The serving engine's [`compatibility`].
    pub(crate) compatibility: u64,
    /// The engine configuration plugins are compiled under: the serving
    /// engine's, without its instance pool.
    compiler: Config,
    /// Where compiled plugins are kept, if anywhere.
    pub(crate) cache: Option<crate::cache::CompileCache>,
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

impl Runtime {
    pub(crate) fn new(limits: Limits) -> Result<Runtime, String> {
        let n = limits.max_instances;
        let mut pool = PoolingAllocationConfig::default();
        // What one plugin instance takes from the pool, measured on the
        // bundled components: 3 core instances (the module, the shim and
        // fixup modules of its canonical ABI), 1 linear memory and 2 tables.
        // A componentize-js component (`openai-js.wasm`: SpiderMonkey plus
        // the plugin, 12 MB) has the same shape; its table has 7,692
        // elements (the per-table default is 20,000) and its memory starts
        // at 9.1 MiB (within `max_memory_size`, the per-instance cap). So
        // these totals and the defaults fit JavaScript plugins unchanged.
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(4))
            .total_memories(n.saturating_mul(2))
            .total_tables(n.saturating_mul(4))
            .total_stacks(n)
            .max_memory_size(limits.memory_limit_bytes)
            // Reset the pages an instance dirtied with memset instead of
            // madvise, found with PAGEMAP_SCAN (Linux 6.7+, else ignored):
            // a reused slot then takes no page faults and the process no TLB
            // shootdowns. Per-request instances of Rust plugins touch well
            // under 2 MiB (a JavaScript one touches more; keeping 16 MiB
            // resident did not make its calls measurably faster).
            .pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(2 << 20)
            .table_keep_resident(64 << 10)
            // Decommit what lies beyond that at once: a batch would keep up
            // to a batch of slots' pages (tens of MiB after a memory bomb)
            // resident until it fills.
            .decommit_batch_size(1);
        let mut compiler = Config::new();
        compiler
            .wasm_component_model(true)
            .epoch_interruption(true)
            .cranelift_opt_level(wasmtime::OptLevel::Speed)
            .parallel_compilation(true);
        let mut cfg = compiler.clone();
        cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine =
            Engine::new(&cfg).map_err(|e| format!("cannot create the plugin engine: {e}"))?;
        let mut linker = Linker::new(&engine);
        HostView::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| format!("cannot link host functions: {e}"))?;

        let stop = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let stop_flag = stop.clone();
        std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                while !stop_flag.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| format!("cannot start the epoch ticker: {e}"))?;
        Ok(Runtime {
            compatibility: compatibility(&engine),
            engine,
            linker,
            limits,
            compiler,
            cache: None,
            stop_ticker: stop,
        })
    }

    /// Compile a component to an artifact the serving engine loads.
    ///
    /// Compiling runs on an engine of its own, dropped afterwards: cranelift
    /// keeps its per-function working memory for reuse for as long as its
    /// engine lives (about 15 MiB after compiling the bundled plugins), and
    /// the serving engine lives as long as the gateway.
    pub(crate) fn compile(&self, bytes: &[u8]) -> wasmtime::Result<Vec<u8>> {
        let compiler = Engine::new(&self.compiler)?;
        if compatibility(&compiler) == self.compatibility {
            compiler.precompile_component(bytes)
        } else {
            self.engine.precompile_component(bytes)
        }
    }

    /// A fresh store for one instance, with the memory limiter and the
    /// deadline callback installed.
    pub(crate) fn new_store(&self, label: Arc<str>, request_id: Arc<str>) -> Store<HostState> {
        let state = HostState::new(
            label,
            request_id,
            self.limits.memory_limit_bytes,
            self.limits.tick_budget(),
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_callback(|mut ctx| {
            let s = ctx.data_mut();
            s.ticks += 1;
            if s.ticks >= s.tick_budget {
                s.deadline_hit = true;
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        arm(&mut store);
        store
    }
}

/// Reset the per-call deadline before a call.
pub(crate) fn arm(store: &mut Store<HostState>) {
    let s = store.data_mut();
    s.ticks = 0;
    s.deadline_hit = false;
    store.set_epoch_deadline(1);
}

/// Turn the outcome of a guarded call into a result, classifying failures.
pub(crate) fn settle<T>(
    store: &Store<HostState>,
    limits: &Limits,
    outcome: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>,
) -> Result<T, PluginFault> {
    let state = store.data();
    match outcome {
        Ok(Ok(v)) => Ok(v),
        Err(_) => Err(PluginFault::Deadline(millis(limits.call_timeout))),
        Ok(Err(_)) if state.deadline_hit => Err(PluginFault::Deadline(millis(limits.call_timeout))),
        Ok(Err(_)) if state.limiter.exceeded => Err(PluginFault::MemoryLimit(
            (limits.memory_limit_bytes >> 20) as u64,
        )),
        Ok(Err(e)) => {
            let text = match e.downcast_ref::<wasmtime::Trap>() {
                Some(trap) => trap.to_string(),
                None => e.to_string(),
            };
            if text.contains("instance limit")
                || text.contains("concurrent") && text.contains("limit")
            {
                return Err(PluginFault::Capacity(text));
            }
            Err(PluginFault::Trap(text))
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Run one guest call under the per-call limits: refuse a poisoned instance,
/// arm the CPU deadline, bound the wall time, classify a failure and poison
/// the instance after one. `$self` has fields `poisoned`, `store`, `guest`
/// and `plugin`; the listed extra fields are borrowed for the call too.
///
/// Each call runs in a `plugin` span (`plugin.id`, `plugin.version`,
/// `plugin.hook`, `error.type` on a fault) at `$level`: `DEBUG` for hooks
/// of a request, `TRACE` for those called per stream chunk and for probes
/// and configuration checks (never exported). With no interested
/// subscriber (the default log level is `INFO`) a span is a disabled handle
/// and costs next to nothing.
macro_rules! guarded {
    ($self:ident, $level:ident, $hook:literal, |$store:ident, $guest:ident $(, $field:ident)*| $call:expr) => {{
        if $self.poisoned {
            return Err($crate::error::PluginFault::Poisoned.into());
        }
        $crate::runtime::arm(&mut $self.store);
        let backstop = $self.plugin.runtime.limits.wall_backstop();
        let span = tracing::span!(
            tracing::Level::$level,
            "plugin",
            "plugin.id" = %$self.plugin.info.id,
            "plugin.version" = %$self.plugin.info.version,
            "plugin.hook" = $hook,
            "error.type" = tracing::field::Empty,
        );
        let started = std::time::Instant::now();
        let outcome = {
            let $store = &mut $self.store;
            let $guest = &$self.guest;
            $(let $field = &$self.$field;)*
            tracing::Instrument::instrument(tokio::time::timeout(backstop, $call), span.clone())
                .await
        };
        $self.plugin.stats.call(started.elapsed());
        match $crate::runtime::settle(&$self.store, &$self.plugin.runtime.limits, outcome) {
            Ok(v) => {
                $self.plugin.stats.success(std::time::Instant::now());
                v
            }
            Err(fault) => {
                span.record("error.type", fault.kind());
                $self.poisoned = true;
                $self.plugin.faulted(&fault);
                return Err(fault.into());
            }
        }
    }};
}
pub(crate) use guarded;
