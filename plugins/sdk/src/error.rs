//! The typed plugin error (the WIT `plugin-error` record).

use std::fmt;

/// The class of an error. The host maps it to an HTTP status, a client error
/// shape and a failover decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The request is malformed or invalid for the provider (400).
    BadRequest,
    /// The credentials were rejected (401); the key is at fault.
    Authentication,
    /// The credentials lack permission (403).
    PermissionDenied,
    /// The model or resource does not exist upstream (404).
    NotFound,
    /// The input is longer than the model's context window.
    ContextLength,
    /// The provider's safety system refused the request or the output.
    ContentFilter,
    /// Too many requests or tokens for this key (429).
    RateLimited,
    /// The provider is temporarily overloaded (503, 529).
    Overloaded,
    /// The provider failed (5xx) or broke its own protocol.
    Server,
    /// The provider did not answer in time.
    Timeout,
    /// The request uses a feature this plugin or provider cannot express; the
    /// host may route it elsewhere.
    Unsupported,
}

impl ErrorClass {
    /// The WIT name of the class, e.g. `rate-limited`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad-request",
            Self::Authentication => "authentication",
            Self::PermissionDenied => "permission-denied",
            Self::NotFound => "not-found",
            Self::ContextLength => "context-length",
            Self::ContentFilter => "content-filter",
            Self::RateLimited => "rate-limited",
            Self::Overloaded => "overloaded",
            Self::Server => "server",
            Self::Timeout => "timeout",
            Self::Unsupported => "unsupported",
        }
    }

    /// Whether another attempt (another key, provider or target) may succeed,
    /// for an error of this class in general. Problems of the request itself
    /// are not retryable; problems of the key, the provider or the route are.
    pub fn retryable_by_default(self) -> bool {
        match self {
            Self::BadRequest | Self::ContextLength | Self::ContentFilter => false,
            Self::Authentication
            | Self::PermissionDenied
            | Self::NotFound
            | Self::RateLimited
            | Self::Overloaded
            | Self::Server
            | Self::Timeout
            | Self::Unsupported => true,
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A typed error: an upstream error the plugin recognised, or input the plugin
/// refuses. `message` may be shown to clients, so it must never contain
/// secrets.
///
/// Build one with the constructor of its class and refine it with the `with_*`
/// methods:
///
/// ```
/// use orch_plugin_sdk::{ErrorClass, PluginError};
///
/// let err = PluginError::rate_limited("slow down")
///     .with_status(429)
///     .with_code("rate_limit_exceeded")
///     .with_retry_after_ms(Some(2_000));
/// assert_eq!(err.class, ErrorClass::RateLimited);
/// assert!(err.retryable);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    /// What went wrong.
    pub class: ErrorClass,
    /// Whether another attempt (another key or provider) may succeed.
    pub retryable: bool,
    /// The upstream HTTP status, when there was one.
    pub status: Option<u16>,
    /// The provider's own error code or type, e.g. `rate_limit_error`.
    pub code: Option<String>,
    /// The request parameter at fault, when known, e.g. `messages`.
    pub param: Option<String>,
    /// Human-readable description.
    pub message: String,
    /// How long the upstream asked us to wait, in milliseconds.
    pub retry_after_ms: Option<u32>,
}

impl PluginError {
    /// An error of `class`, retryable as [`ErrorClass::retryable_by_default`]
    /// says.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            retryable: class.retryable_by_default(),
            status: None,
            code: None,
            param: None,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// `bad-request`, not retryable.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::BadRequest, message)
    }

    /// `authentication`, retryable (another key may work).
    pub fn authentication(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Authentication, message)
    }

    /// `permission-denied`, retryable (another key may have the permission).
    pub fn permission_denied(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::PermissionDenied, message)
    }

    /// `not-found`, retryable (another target may serve the model).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::NotFound, message)
    }

    /// `context-length`, not retryable.
    pub fn context_length(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::ContextLength, message)
    }

    /// `content-filter`, not retryable.
    pub fn content_filter(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::ContentFilter, message)
    }

    /// `rate-limited`, retryable.
    pub fn rate_limited(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::RateLimited, message)
    }

    /// `overloaded`, retryable.
    pub fn overloaded(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Overloaded, message)
    }

    /// `server`, retryable.
    pub fn server(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Server, message)
    }

    /// `timeout`, retryable.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Timeout, message)
    }

    /// `unsupported`, retryable (the host may route the request elsewhere).
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Unsupported, message)
    }

    /// Overrides whether another attempt may succeed.
    #[must_use]
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// Sets the upstream HTTP status.
    #[must_use]
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Sets the provider's error code or type.
    #[must_use]
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Sets the request parameter at fault.
    #[must_use]
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Sets how long the upstream asked us to wait.
    #[must_use]
    pub fn with_retry_after_ms(mut self, retry_after_ms: Option<u32>) -> Self {
        self.retry_after_ms = retry_after_ms;
        self
    }

    /// Changes the class, keeping everything else (including `retryable`).
    #[must_use]
    pub fn with_class(mut self, class: ErrorClass) -> Self {
        self.class = class;
        self
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.message)?;
        if let Some(code) = &self.code {
            write!(f, " (code {code})")?;
        }
        Ok(())
    }
}

impl std::error::Error for PluginError {}
