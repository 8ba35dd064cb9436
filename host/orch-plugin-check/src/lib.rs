//! The engine of `llm-orchestrator plugin check <file.wasm>`: load one plugin
//! component the way the gateway does, under the production limits, and
//! replay the conformance cases of its kind and dialect against it.
//!
//! [`check`] never panics and never stops at the first problem: every step is
//! a named [`CheckResult`] in the [`Report`].
//!
//! 1. `load`: the file is copied into a fresh folder and loaded by a
//!    [`PluginHost`], so it passes exactly the gateway's validation (header,
//!    component, contract world and version, imports, `info()` under the
//!    limits, metadata). A refused file ends the report with the host's
//!    reason. Then `metadata/*` report the capabilities and the description.
//! 2. By kind, each case is one check, run on a fresh instance under the
//!    limits; a trap, deadline, memory exhaustion or invalid output fails
//!    that check with the fault's kind and message:
//!    * adapters replay `<dialect>/adapter/*.json` (`adapter/<dialect>/<case>`);
//!      `openai`-dialect adapters, which have no golden cases yet, run a
//!      built-in smoke set (`adapter/openai/smoke/*`);
//!    * dialects replay `<dialect>/dialect/*.json` (`dialect/<dialect>/<case>`);
//!    * transformers run built-in cases (`transformer/*`).
//!
//! The case format is `plugins/conformance/README.md`; cases are matched
//! structurally as the guest helpers do (exact keys, absent equals null,
//! `"<any>"` matches any non-null value, arrays of the same length).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use orch_core::contract::{ClassifiedError, PluginInfo, PluginKind};
use orch_plugin_host::{CallError, FileState, Limits, LoadedPlugin, PluginFault, PluginHost};

mod adapter;
mod cases;
mod dialect;
mod diff;
mod smoke;
mod transformer;

/// What to check a plugin against.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// A conformance root laid out like `plugins/conformance`
    /// (`<dialect>/adapter/*.json`, `<dialect>/dialect/*.json`); `None`
    /// uses the cases embedded in the binary.
    pub cases: Option<PathBuf>,
    /// The limits plugin calls run under: pass the production ones
    /// (`Limits::from_config(&config.plugins)`).
    pub limits: Limits,
    /// A transformer's attachment configuration (JSON object text) to check
    /// and run the hooks with; `None` tries `{}`.
    pub transformer_config: Option<String>,
}

/// The outcome of checking one plugin file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The file that was checked.
    pub file: PathBuf,
    /// `id@version kind dialect` (no dialect for transformers), when the
    /// file loaded.
    pub plugin: Option<String>,
    /// Every check in the order it ran.
    pub checks: Vec<CheckResult>,
}

/// One named check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckResult {
    /// What was checked, e.g. `load`, `adapter/anthropic/text_basic`.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// Why it failed, or a note on a pass.
    pub detail: Option<String>,
}

impl CheckResult {
    pub(crate) fn pass(name: impl Into<String>, detail: Option<String>) -> CheckResult {
        CheckResult {
            name: name.into(),
            passed: true,
            detail,
        }
    }

    pub(crate) fn fail(name: impl Into<String>, detail: impl Into<String>) -> CheckResult {
        CheckResult {
            name: name.into(),
            passed: false,
            detail: Some(detail.into()),
        }
    }

    /// A pass (with an optional note) or a failure with its reason.
    pub(crate) fn from_outcome(
        name: impl Into<String>,
        outcome: Result<Option<String>, String>,
    ) -> CheckResult {
        match outcome {
            Ok(note) => CheckResult::pass(name, note),
            Err(reason) => CheckResult::fail(name, reason),
        }
    }
}

impl Report {
    /// Whether the plugin loaded and every check passed.
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }

    /// One line per check, `PASS name` (with a note as `PASS name (note)`)
    /// or `FAIL name: reason`, then `N passed, M failed`. Details are put
    /// on one line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for check in &self.checks {
            let detail = check.detail.as_deref().map(one_line);
            let line = match (check.passed, detail) {
                (true, None) => format!("PASS {}", check.name),
                (true, Some(note)) => format!("PASS {} ({note})", check.name),
                (false, reason) => format!(
                    "FAIL {}: {}",
                    check.name,
                    reason.unwrap_or_else(|| "failed".to_owned())
                ),
            };
            out.push_str(&line);
            out.push('\n');
        }
        let passed = self.checks.iter().filter(|c| c.passed).count();
        let failed = self.checks.len() - passed;
        out.push_str(&format!("{passed} passed, {failed} failed\n"));
        out
    }
}

fn one_line(text: &str) -> String {
    text.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Check one plugin file: load it as the gateway would, then run the checks
/// of its kind (see the crate documentation). Needs a tokio runtime; never
/// panics; a plugin that fails to load gives a report with one failed `load`
/// check.
pub async fn check(file: &Path, options: &CheckOptions) -> Report {
    let mut report = Report {
        file: file.to_path_buf(),
        plugin: None,
        checks: Vec::new(),
    };
    let (plugin, _folder) = match load(file, &options.limits).await {
        Ok(loaded) => loaded,
        Err(reason) => {
            report.checks.push(CheckResult::fail("load", reason));
            return report;
        }
    };
    report.plugin = Some(describe(&plugin.info));
    report
        .checks
        .push(CheckResult::pass("load", Some(load_detail(&plugin))));
    report.checks.extend(metadata_checks(&plugin.info));
    let source = match &options.cases {
        Some(root) => cases::Source::Folder(root.clone()),
        None => cases::Source::Embedded,
    };
    match plugin.info.kind {
        PluginKind::Adapter => adapter::run(&plugin, &source, &mut report.checks).await,
        PluginKind::Dialect => dialect::run(&plugin, &source, &mut report.checks).await,
        PluginKind::Transformer => {
            transformer::run(
                &plugin,
                options.transformer_config.as_deref(),
                &mut report.checks,
            )
            .await
        }
    }
    report
}

/// Copy the file into a fresh folder and load it with a plugin host. The
/// folder is returned so it outlives the checks.
async fn load(
    file: &Path,
    limits: &Limits,
) -> Result<(Arc<LoadedPlugin>, tempfile::TempDir), String> {
    let meta =
        std::fs::metadata(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a file", file.display()));
    }
    let folder = tempfile::Builder::new()
        .prefix("orch-plugin-check-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary folder: {e}"))?;
    // The host loads `*.wasm` files only; the name does not matter otherwise.
    let copy = folder.path().join("plugin.wasm");
    std::fs::copy(file, &copy).map_err(|e| format!("cannot copy {}: {e}", file.display()))?;
    let host = PluginHost::new(folder.path(), limits.clone())?;
    let reload = host.reload().await;
    if let Some((_, reason)) = reload.rejected.first() {
        return Err(reason.clone());
    }
    let snapshot = host.snapshot();
    let plugin = snapshot.files().find_map(|(_, state)| match state {
        FileState::Loaded(p) => Some(p.clone()),
        FileState::Rejected { .. } => None,
    });
    match plugin {
        Some(plugin) => Ok((plugin, folder)),
        None => Err("the plugin host found no plugin in the file".to_owned()),
    }
}

/// `id@version kind dialect`.
fn describe(info: &PluginInfo) -> String {
    if info.dialect.is_empty() {
        format!("{} {}", info.label(), info.kind)
    } else {
        format!("{} {} {}", info.label(), info.kind, info.dialect)
    }
}

fn load_detail(plugin: &LoadedPlugin) -> String {
    let info = &plugin.info;
    let dialect = if info.dialect.is_empty() {
        String::new()
    } else {
        format!(", dialect {}", info.dialect)
    };
    format!(
        "{}, kind {}{dialect}, contract {}, capabilities [{}], {} bytes, loaded in {} ms",
        info.label(),
        info.kind,
        plugin.contract,
        info.capabilities.join(", "),
        plugin.size,
        plugin.load_time.as_millis()
    )
}

/// Capability names the gateway knows (`orch_plugin_sdk::capability`).
const KNOWN_CAPABILITIES: &[&str] = &[
    "tools",
    "vision",
    "json-mode",
    "json-schema",
    "reasoning",
    "usage-in-stream",
    "parallel-tool-calls",
    "count-tokens",
    "embeddings",
];

/// Checks of the metadata the host already accepted: duplicated
/// capabilities fail; unknown capabilities and an empty description are
/// only reported.
fn metadata_checks(info: &PluginInfo) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let mut seen = Vec::new();
    let mut duplicates = Vec::new();
    for cap in &info.capabilities {
        if seen.contains(&cap) {
            duplicates.push(cap.as_str());
        }
        seen.push(cap);
    }
    let unknown: Vec<&str> = info
        .capabilities
        .iter()
        .map(String::as_str)
        .filter(|c| !KNOWN_CAPABILITIES.contains(c))
        .collect();
    let capabilities = if !duplicates.is_empty() {
        CheckResult::fail(
            "metadata/capabilities",
            format!("declared more than once: {}", duplicates.join(", ")),
        )
    } else if !unknown.is_empty() {
        CheckResult::pass(
            "metadata/capabilities",
            Some(format!(
                "not known to this gateway, ignored: {} (known: {})",
                unknown.join(", "),
                KNOWN_CAPABILITIES.join(", ")
            )),
        )
    } else if info.capabilities.is_empty() {
        CheckResult::pass("metadata/capabilities", Some("none declared".to_owned()))
    } else {
        CheckResult::pass("metadata/capabilities", None)
    };
    out.push(capabilities);
    let description = if info.description.trim().is_empty() {
        "empty: operators see no description (not required)".to_owned()
    } else {
        info.description.clone()
    };
    out.push(CheckResult::pass("metadata/description", Some(description)));
    out
}

/// A fault as a check failure: the call, the fault's kind and its message.
pub(crate) fn fault(call: &str, fault: &PluginFault) -> String {
    format!("{call}: {} fault: {fault}", fault.kind())
}

/// A failed call as a check failure.
pub(crate) fn call_error(call: &str, error: &CallError) -> String {
    match error {
        CallError::Fault(f) => fault(call, f),
        CallError::Plugin(e) => format!("{call} returned an error: {}", error_text(e)),
    }
}

/// An error class as the contract and the case files name it (`rate-limited`).
pub(crate) fn class_name(error: &ClassifiedError) -> String {
    error.class.as_str().replace('_', "-")
}

/// A plugin error in one line: class, status, retryability, message.
pub(crate) fn error_text(e: &ClassifiedError) -> String {
    let status = e
        .status
        .map(|s| format!(", status {s}"))
        .unwrap_or_default();
    let retry = if e.retryable { ", retryable" } else { "" };
    format!("{}{status}{retry}: {}", class_name(e), e.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(capabilities: &[&str], description: &str) -> PluginInfo {
        PluginInfo {
            id: "acme".into(),
            version: semver::Version::new(1, 0, 0),
            kind: PluginKind::Adapter,
            dialect: "openai".into(),
            capabilities: capabilities.iter().map(|c| (*c).to_owned()).collect(),
            description: description.into(),
        }
    }

    #[test]
    fn metadata_reports_and_fails_only_duplicates() {
        let ok = metadata_checks(&info(&["tools", "vision"], "An adapter"));
        assert!(ok.iter().all(|c| c.passed), "{ok:?}");
        assert_eq!(ok[0].detail, None);
        assert_eq!(ok[1].detail.as_deref(), Some("An adapter"));

        let odd = metadata_checks(&info(&["tools", "teleport"], " "));
        assert!(odd.iter().all(|c| c.passed), "{odd:?}");
        assert!(odd[0].detail.as_deref().unwrap().contains("teleport"));
        assert!(odd[1].detail.as_deref().unwrap().starts_with("empty"));

        let dup = metadata_checks(&info(&["tools", "tools"], "x"));
        assert!(!dup[0].passed);
        assert!(dup[0].detail.as_deref().unwrap().contains("tools"));
        assert_eq!(describe(&info(&[], "")), "acme@1.0.0 adapter openai");
    }

    #[test]
    fn render_has_one_line_per_check_and_a_summary() {
        let report = Report {
            file: "x.wasm".into(),
            plugin: None,
            checks: vec![
                CheckResult::pass("load", None),
                CheckResult::pass("metadata/description", Some("a\nb".into())),
                CheckResult::fail("adapter/x/y", "first\nsecond"),
            ],
        };
        assert_eq!(
            report.render(),
            "PASS load\nPASS metadata/description (a | b)\nFAIL adapter/x/y: first | second\n2 passed, 1 failed\n"
        );
        assert!(!report.passed());
        let empty = Report {
            file: "x.wasm".into(),
            plugin: None,
            checks: Vec::new(),
        };
        assert!(!empty.passed(), "a report that checked nothing fails");
    }
}
