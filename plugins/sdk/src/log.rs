//! Logging through the host's `log` import.
//!
//! The host tags every line with the plugin id, version and request id.
//! Never log secrets or, unless the operator asked for it, prompt content.
//!
//! ```
//! use orch_plugin_sdk::log;
//!
//! log::debug!("decoded {} frames", 3);
//! log::warn!("upstream sent an unknown event type");
//! ```
//!
//! Outside WebAssembly (native unit tests) lines go to standard error.

/// Lines longer than this are cut before they cross the boundary (the host
/// truncates at 4 KiB anyway).
const MAX_LINE: usize = 4096;

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very fine-grained diagnostics.
    Trace,
    /// Diagnostics for plugin authors.
    Debug,
    /// Normal operational messages.
    Info,
    /// Something unexpected that the plugin handled.
    Warn,
    /// Something the plugin could not handle.
    Error,
}

impl Level {
    /// The lower-case name of the level.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// Writes one line to the gateway's log. The `trace!` .. `error!` macros call
/// this with a formatted message.
pub fn write(level: Level, message: &str) {
    let mut end = message.len().min(MAX_LINE);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    host_log(level, &message[..end]);
}

/// Maps a [`Level`] to the generated `log-level` of one world's bindings.
#[cfg(all(
    target_arch = "wasm32",
    any(feature = "adapter", feature = "dialect", feature = "transformer")
))]
macro_rules! host_level {
    ($host:ident, $level:expr) => {
        match $level {
            Level::Trace => $host::LogLevel::Trace,
            Level::Debug => $host::LogLevel::Debug,
            Level::Info => $host::LogLevel::Info,
            Level::Warn => $host::LogLevel::Warn,
            Level::Error => $host::LogLevel::Error,
        }
    };
}

#[cfg(all(target_arch = "wasm32", feature = "adapter"))]
fn host_log(level: Level, message: &str) {
    use crate::bindings::adapter::llm_orchestrator::plugin::host;
    host::log(host_level!(host, level), message);
}

#[cfg(all(target_arch = "wasm32", not(feature = "adapter"), feature = "dialect"))]
fn host_log(level: Level, message: &str) {
    use crate::bindings::dialect::llm_orchestrator::plugin::host;
    host::log(host_level!(host, level), message);
}

#[cfg(all(
    target_arch = "wasm32",
    not(feature = "adapter"),
    not(feature = "dialect"),
    feature = "transformer"
))]
fn host_log(level: Level, message: &str) {
    use crate::bindings::transformer::llm_orchestrator::plugin::host;
    host::log(host_level!(host, level), message);
}

/// Without a world there is no host import to call (such a build is never a
/// plugin), so lines are dropped.
#[cfg(all(
    target_arch = "wasm32",
    not(any(feature = "adapter", feature = "dialect", feature = "transformer"))
))]
fn host_log(_level: Level, _message: &str) {}

#[cfg(not(target_arch = "wasm32"))]
fn host_log(level: Level, message: &str) {
    eprintln!("[plugin {}] {message}", level.as_str());
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log_at {
    ($level:ident, $($arg:tt)+) => {
        $crate::log::write($crate::log::Level::$level, &::std::format!($($arg)+))
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log_trace {
    ($($arg:tt)+) => { $crate::__log_at!(Trace, $($arg)+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log_debug {
    ($($arg:tt)+) => { $crate::__log_at!(Debug, $($arg)+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log_info {
    ($($arg:tt)+) => { $crate::__log_at!(Info, $($arg)+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log_warn {
    ($($arg:tt)+) => { $crate::__log_at!(Warn, $($arg)+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log_error {
    ($($arg:tt)+) => { $crate::__log_at!(Error, $($arg)+) };
}

/// Logs at trace level, with `format!` arguments.
#[doc(inline)]
pub use crate::__log_trace as trace;

/// Logs at debug level, with `format!` arguments.
#[doc(inline)]
pub use crate::__log_debug as debug;

/// Logs at info level, with `format!` arguments.
#[doc(inline)]
pub use crate::__log_info as info;

/// Logs at warn level, with `format!` arguments.
#[doc(inline)]
pub use crate::__log_warn as warn;

/// Logs at error level, with `format!` arguments.
#[doc(inline)]
pub use crate::__log_error as error;

/// Installs, once per instance, a panic hook that sends the panic message to
/// the host log at error level. std's default hook would read the environment
/// (`RUST_BACKTRACE`) through WASI, which the host does not link, and trap
/// before the message is seen. The panic still traps afterwards (plugins are
/// built with `panic = "abort"`), and the host reports the trap.
///
/// The SDK's export glue calls this on every entry; natively it does nothing,
/// so test harnesses keep their own hook.
#[cfg(any(feature = "adapter", feature = "dialect", feature = "transformer"))]
pub(crate) fn install_panic_hook() {
    #[cfg(target_arch = "wasm32")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                write(Level::Error, &format!("plugin {info}"));
            }));
        });
    }
}
