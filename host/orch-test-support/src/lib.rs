//! Shared helpers for the gateway's tests: where the built plugin
//! components are, and the CI rule that a missing prerequisite fails a test
//! rather than skipping it.

#![expect(
    clippy::panic,
    reason = "a missing prerequisite must fail the calling test"
)]

use std::path::PathBuf;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(|p| p.parent())
        .map(PathBuf::from)
        .unwrap_or_default()
}

fn dir(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(default))
}

/// The folder with the bundled plugins (`cargo xtask plugins` fills it).
pub fn plugins_dir() -> PathBuf {
    dir("ORCH_TEST_PLUGINS", "target/plugins")
}

/// The folder with every built plugin, fixtures included.
pub fn fixtures_dir() -> PathBuf {
    dir("ORCH_TEST_FIXTURES", "target/fixtures")
}

/// The folder with the example plugins in other languages
/// (`openai-js.wasm`).
pub fn examples_dir() -> PathBuf {
    dir("ORCH_TEST_EXAMPLES", "target/examples")
}

/// A built component by file name (`openai.wasm`, `fixture_trap.wasm`...).
/// Panics with instructions when it has not been built: tests that need
/// plugins must never pass silently without them.
pub fn component(file: &str) -> PathBuf {
    for d in [fixtures_dir(), plugins_dir(), examples_dir()] {
        let p = d.join(file);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "plugin component {file} not found in {}, {} or {}; build the plugins with `cargo xtask plugins` (or run `cargo xtask test`)",
        fixtures_dir().display(),
        plugins_dir().display(),
        examples_dir().display()
    );
}

/// Whether the test run is in CI, where every prerequisite must be present.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
}
