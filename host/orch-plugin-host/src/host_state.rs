//! What every plugin store carries: the memory limiter, the CPU deadline
//! bookkeeping and the plugin's identity for its log lines.

use std::sync::Arc;
use wasmtime::ResourceLimiter;

use crate::bindings::{host, types};

/// Log lines above this size are cut.
const MAX_LOG_LINE: usize = 4096;
/// Log lines kept per instance; later ones are dropped (and one notice logged).
const MAX_LOG_LINES: u32 = 256;

pub(crate) struct HostState {
    pub(crate) limiter: MemoryLimiter,
    /// Epoch ticks observed during the current call.
    pub(crate) ticks: u32,
    /// Ticks allowed per call.
    pub(crate) tick_budget: u32,
    /// Set when the current call was interrupted for its deadline.
    pub(crate) deadline_hit: bool,
    pub(crate) label: Arc<str>,
    pub(crate) request_id: Arc<str>,
    log_lines: u32,
}

impl HostState {
    pub(crate) fn new(
        label: Arc<str>,
        request_id: Arc<str>,
        memory_limit: usize,
        tick_budget: u32,
    ) -> Self {
        HostState {
            limiter: MemoryLimiter {
                limit: memory_limit,
                exceeded: false,
            },
            ticks: 0,
            tick_budget,
            deadline_hit: false,
            label,
            request_id,
            log_lines: 0,
        }
    }
}

/// Caps linear memory and tables, and remembers when a plugin hit the cap so
/// the fault can be reported as such rather than as a plain trap.
pub(crate) struct MemoryLimiter {
    limit: usize,
    pub(crate) exceeded: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

impl types::Host for HostState {}

impl host::Host for HostState {
    fn log(&mut self, level: host::LogLevel, message: String) {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            if self.log_lines == MAX_LOG_LINES + 1 {
                tracing::warn!(plugin = %self.label, request_id = %self.request_id, "plugin log limit reached; further lines dropped");
            }
            return;
        }
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let (label, rid) = (&*self.label, &*self.request_id);
        match level {
            host::LogLevel::Trace => {
                tracing::trace!(target: "plugin", plugin = label, request_id = rid, "{message}")
            }
            host::LogLevel::Debug => {
                tracing::debug!(target: "plugin", plugin = label, request_id = rid, "{message}")
            }
            host::LogLevel::Info => {
                tracing::info!(target: "plugin", plugin = label, request_id = rid, "{message}")
            }
            host::LogLevel::Warn => {
                tracing::warn!(target: "plugin", plugin = label, request_id = rid, "{message}")
            }
            host::LogLevel::Error => {
                tracing::error!(target: "plugin", plugin = label, request_id = rid, "{message}")
            }
        }
    }
}
