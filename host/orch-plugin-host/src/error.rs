//! Errors of the plugin layer.

use orch_core::contract::ClassifiedError;

/// A plugin call that did not produce a usable result through no fault of
/// the request: the plugin itself failed. The instance is never reused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PluginFault {
    /// The plugin trapped (panic, unreachable, an import it may not call...).
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// The call ran past its CPU deadline.
    #[error("plugin call exceeded its {0} ms deadline")]
    Deadline(u64),
    /// The instance tried to grow its memory past the cap.
    #[error("plugin exceeded its memory limit of {0} MiB")]
    MemoryLimit(u64),
    /// The call returned something the contract does not allow.
    #[error("plugin returned invalid output: {0}")]
    InvalidOutput(String),
    /// The call returned more bytes than allowed.
    #[error("plugin output of {size} bytes exceeds the {limit} byte limit")]
    OutputTooLarge {
        /// Bytes returned.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Every instance slot is in use.
    #[error("no plugin instance available: {0}")]
    Capacity(String),
    /// The instance failed earlier and cannot be entered again.
    #[error("plugin instance is unusable after an earlier fault")]
    Poisoned,
}

impl PluginFault {
    /// A stable snake_case name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            PluginFault::Trap(_) => "trap",
            PluginFault::Deadline(_) => "deadline",
            PluginFault::MemoryLimit(_) => "memory_limit",
            PluginFault::InvalidOutput(_) => "invalid_output",
            PluginFault::OutputTooLarge { .. } => "output_too_large",
            PluginFault::Capacity(_) => "capacity",
            PluginFault::Poisoned => "poisoned",
        }
    }
}

/// The result of a plugin call that did not succeed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CallError {
    /// The plugin answered with a typed error (an upstream error it
    /// recognised, or input it refuses).
    #[error("{}", .0.message)]
    Plugin(ClassifiedError),
    /// The plugin failed.
    #[error(transparent)]
    Fault(#[from] PluginFault),
}
