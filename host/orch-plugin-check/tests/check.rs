//! `check` against the built components: every bundled plugin passes, every
//! broken fixture fails for the right reason.
//!
//! Needs the components (`cargo xtask plugins`); run with
//! `ORCH_TEST_PLUGINS=target/plugins ORCH_TEST_FIXTURES=target/fixtures`.

#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail the test that calls them"
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use orch_plugin_check::{CheckOptions, CheckResult, Report, check};
use orch_plugin_host::Limits;
use orch_test_support::component;

/// The gateway's default `[plugins]` limits.
fn production_limits() -> Limits {
    Limits::default()
}

fn options() -> CheckOptions {
    CheckOptions {
        cases: None,
        limits: production_limits(),
        transformer_config: None,
    }
}

async fn check_path(path: &Path, options: &CheckOptions) -> Report {
    let started = Instant::now();
    let report = check(path, options).await;
    eprintln!(
        "{} checked in {} ms\n{}",
        path.display(),
        started.elapsed().as_millis(),
        report.render()
    );
    report
}

async fn check_file(file: &str) -> Report {
    check_path(&component(file), &options()).await
}

/// The check with this name.
fn get<'a>(report: &'a Report, name: &str) -> Option<&'a CheckResult> {
    report.checks.iter().find(|c| c.name == name)
}

/// Whether the check with this name exists and passed.
fn passed(report: &Report, name: &str) -> bool {
    get(report, name).is_some_and(|c| c.passed)
}

/// The detail of a check that must exist and have failed.
fn failure<'a>(report: &'a Report, name: &str) -> &'a str {
    let check =
        get(report, name).unwrap_or_else(|| panic!("no check {name} in\n{}", report.render()));
    assert!(!check.passed, "{name} passed\n{}", report.render());
    check.detail.as_deref().unwrap_or_default()
}

fn assert_passes(report: &Report, plugin: &str, min_checks: usize) {
    assert!(report.passed(), "{}", report.render());
    assert_eq!(report.plugin.as_deref(), Some(plugin));
    assert!(
        report.checks.len() >= min_checks,
        "only {} checks\n{}",
        report.checks.len(),
        report.render()
    );
    let summary = format!("{} passed, 0 failed\n", report.checks.len());
    assert!(report.render().ends_with(&summary), "{}", report.render());
}

fn assert_load_fails(report: &Report, needles: &[&str]) {
    assert!(!report.passed());
    assert_eq!(report.plugin, None);
    assert_eq!(report.checks.len(), 1, "{}", report.render());
    let detail = failure(report, "load");
    for needle in needles {
        assert!(detail.contains(needle), "{needle:?} not in {detail:?}");
    }
    assert!(report.render().ends_with("0 passed, 1 failed\n"));
}

// ------------------------------------------------------------ bundled plugins

/// The adapter written in JavaScript passes the same checks as its Rust
/// counterpart, with the same names.
#[tokio::test(flavor = "multi_thread")]
async fn the_javascript_adapter_passes_what_the_rust_one_passes() {
    let rust = check_file("openai.wasm").await;
    let js = check_file("openai-js.wasm").await;
    assert!(js.passed(), "{}", js.render());
    let names = |r: &Report| -> Vec<String> { r.checks.iter().map(|c| c.name.clone()).collect() };
    assert_eq!(names(&js), names(&rust));
    assert!(
        js.plugin
            .as_deref()
            .is_some_and(|p| p.ends_with("adapter openai")),
        "{:?}",
        js.plugin
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_passes_the_smoke_set() {
    let report = check_file("openai.wasm").await;
    assert_passes(&report, "openai@0.1.0 adapter openai", 6);
    for name in ["request", "response", "stream"] {
        let name = format!("adapter/openai/smoke/{name}");
        assert!(passed(&report, &name), "{name}");
    }
    let load = get(&report, "load").and_then(|c| c.detail.clone());
    let load = load.unwrap_or_default();
    assert!(
        load.contains("openai@0.1.0") && load.contains("contract 0.1.0"),
        "{load}"
    );
    assert!(load.contains("capabilities [tools"), "{load}");
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_passes_its_adapter_cases() {
    let report = check_file("anthropic.wasm").await;
    assert_passes(&report, "anthropic@0.1.0 adapter anthropic", 3 + 19);
    assert!(get(&report, "adapter/anthropic/text_basic").is_some());
    assert!(get(&report, "adapter/anthropic/stream_error_event").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn gemini_passes_its_adapter_cases() {
    let report = check_file("gemini.wasm").await;
    assert_passes(&report, "gemini@0.1.0 adapter gemini", 3 + 20);
    assert!(get(&report, "adapter/gemini/native_stream").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn dialect_anthropic_passes_its_dialect_cases() {
    let report = check_file("dialect-anthropic.wasm").await;
    assert_passes(&report, "dialect-anthropic@0.1.0 dialect anthropic", 3 + 20);
    assert!(get(&report, "dialect/anthropic/abort-after-content").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn dialect_gemini_passes_its_dialect_cases() {
    let report = check_file("dialect-gemini.wasm").await;
    assert_passes(&report, "dialect-gemini@0.1.0 dialect gemini", 3 + 20);
    assert!(get(&report, "dialect/gemini/abort_pending_tool_call").is_some());
}

async fn assert_transformer_passes(file: &str, plugin: &str) {
    let report = check_file(file).await;
    assert_passes(&report, plugin, 4);
    let config = get(&report, "transformer/check_config");
    let verdict = config.and_then(|c| c.detail.as_deref()).unwrap_or_default();
    if verdict.starts_with("accepts") {
        for hook in ["on_request", "on_response", "stream"] {
            let name = format!("transformer/{hook}");
            assert!(passed(&report, &name), "{name}");
        }
    } else {
        assert!(verdict.contains("skipped"), "{verdict}");
        assert!(get(&report, "transformer/on_request").is_none());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pii_redact_passes() {
    assert_transformer_passes("pii-redact.wasm", "pii-redact@0.1.0 transformer").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_given_configuration_runs_the_hooks_and_a_refused_one_fails() {
    let with = |config: &str| CheckOptions {
        transformer_config: Some(config.to_owned()),
        ..options()
    };
    let file = component("system-prompt.wasm");
    let report = check_path(&file, &with(r#"{"text":"Be brief."}"#)).await;
    assert!(report.passed(), "{}", report.render());
    for hook in ["check_config", "on_request", "on_response", "stream"] {
        let name = format!("transformer/{hook}");
        assert!(passed(&report, &name), "{name}: {}", report.render());
    }
    let report = check_path(&file, &with(r#"{"text":"x","tone":"dry"}"#)).await;
    assert!(!report.passed());
    let refused = failure(&report, "transformer/check_config");
    assert!(
        refused.contains("refuses the given configuration"),
        "{refused}"
    );
    assert!(refused.contains("tone"), "{refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn system_prompt_passes() {
    assert_transformer_passes("system-prompt.wasm", "system-prompt@0.1.0 transformer").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn model_rewrite_passes() {
    assert_transformer_passes("model-rewrite.wasm", "model-rewrite@0.1.0 transformer").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn param_policy_passes() {
    assert_transformer_passes("param-policy.wasm", "param-policy@0.1.0 transformer").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn block_list_passes() {
    assert_transformer_passes("block-list.wasm", "block-list@0.1.0 transformer").await;
}

// ------------------------------------------------------------ refused files

#[tokio::test(flavor = "multi_thread")]
async fn wrong_world_fails_at_load() {
    let report = check_file("fixture_wrong_world.wasm").await;
    assert_load_fails(&report, &["wrong world", "fixture:other/greeter"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_contract_version_fails_at_load() {
    let report = check_file("fixture_wrong_version.wasm").await;
    assert_load_fails(&report, &["contract", "1.0.0", "supports 0.1.0"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn trap_in_info_fails_at_load() {
    let report = check_file("fixture_info_trap.wasm").await;
    assert_load_fails(&report, &["info() failed", "trapped"]);
}

fn scratch(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write");
    (dir, path)
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_component_fails_at_load() {
    let bytes = std::fs::read(component("openai.wasm")).expect("openai.wasm");
    let (_dir, path) = scratch("openai.wasm", &bytes[..bytes.len() / 2]);
    let report = check_path(&path, &options()).await;
    assert_load_fails(&report, &["not a valid component"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn random_bytes_fail_at_load() {
    // A fixed xorshift sequence: random-looking, reproducible.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect();
    let (_dir, path) = scratch("random.wasm", &bytes);
    let report = check_path(&path, &options()).await;
    assert_load_fails(&report, &["not WebAssembly"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn other_unloadable_files_fail_at_load() {
    let (_elf, elf) = scratch("plugin.cwasm", b"\x7fELF\x02\x01\x01\0rest of an artifact");
    assert_load_fails(
        &check_path(&elf, &options()).await,
        &["precompiled artifact"],
    );
    let (_core, core) = scratch("core.wasm", b"\0asm\x01\0\0\0");
    assert_load_fails(
        &check_path(&core, &options()).await,
        &["core WebAssembly module, not a component"],
    );
    let missing = Path::new("/nonexistent/plugin.wasm");
    assert_load_fails(&check_path(missing, &options()).await, &["cannot read"]);
    let folder = tempfile::tempdir().expect("temp dir");
    assert_load_fails(
        &check_path(folder.path(), &options()).await,
        &["is not a file"],
    );
}

// ------------------------------------------------------------ faulty plugins

#[tokio::test(flavor = "multi_thread")]
async fn trap_fails_the_request_check() {
    let report = check_file("fixture_trap.wasm").await;
    assert!(passed(&report, "load"));
    let detail = failure(&report, "adapter/openai/smoke/request");
    assert!(
        detail.contains("build_request: trap fault: plugin trapped"),
        "{detail}"
    );
    assert!(!report.passed());
}

#[tokio::test(flavor = "multi_thread")]
async fn endless_loop_fails_on_its_deadline() {
    let report = check_file("fixture_loop.wasm").await;
    let detail = failure(&report, "adapter/openai/smoke/request");
    assert!(
        detail.contains("build_request: deadline fault: plugin call exceeded its 50 ms deadline"),
        "{detail}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_bomb_fails_on_its_memory_limit() {
    // Touching 64 MiB takes a few tens of milliseconds: on a busy machine the
    // production 50 ms deadline can strike first. A longer deadline makes the
    // memory cap, which is what this test is about, the limit that trips.
    let options = CheckOptions {
        cases: None,
        limits: Limits {
            call_timeout: Duration::from_secs(2),
            ..production_limits()
        },
        transformer_config: None,
    };
    let report = check_path(&component("fixture_oom.wasm"), &options).await;
    let detail = failure(&report, "adapter/openai/smoke/request");
    assert!(
        detail.contains(
            "build_request: memory_limit fault: plugin exceeded its memory limit of 64 MiB"
        ),
        "{detail}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_fails_as_invalid_output() {
    let report = check_file("fixture_garbage.wasm").await;
    let request = failure(&report, "adapter/openai/smoke/request");
    assert!(
        request.contains("build_request: invalid_output fault: plugin returned invalid output"),
        "{request}"
    );
    let response = failure(&report, "adapter/openai/smoke/response");
    assert!(
        response.contains("parse_response: invalid_output fault")
            && response.contains("response body is not JSON"),
        "{response}"
    );
    let stream = failure(&report, "adapter/openai/smoke/stream");
    assert!(
        stream.contains("push of frame 0: invalid_output fault")
            && stream.contains("stream chunk is not JSON"),
        "{stream}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_output_fails_as_too_large() {
    let report = check_file("fixture_oversized.wasm").await;
    for (name, call) in [
        ("request", "build_request"),
        ("response", "parse_response"),
        ("stream", "push of frame 0"),
    ] {
        let detail = failure(&report, &format!("adapter/openai/smoke/{name}"));
        assert!(
            detail.contains(&format!("{call}: output_too_large fault"))
                && detail.contains("exceeds the 16777216 byte limit"),
            "{name}: {detail}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn trap_mid_stream_fails_the_stream_check_only() {
    let report = check_file("fixture_stream_trap.wasm").await;
    assert_eq!(
        report.plugin.as_deref(),
        Some("fixture-stream-trap@0.1.0 adapter openai")
    );
    assert!(passed(&report, "adapter/openai/smoke/request"));
    assert!(passed(&report, "adapter/openai/smoke/response"));
    let detail = failure(&report, "adapter/openai/smoke/stream");
    assert!(
        detail.contains("push of frame 3: trap fault: plugin trapped"),
        "{detail}"
    );
    assert_eq!(
        report.checks.iter().filter(|c| !c.passed).count(),
        1,
        "{}",
        report.render()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn transformer_that_traps_only_on_boom_passes() {
    let report = check_file("fixture_transform_trap.wasm").await;
    assert_passes(&report, "fixture-transform-trap@0.1.0 transformer", 6);
    let stream = get(&report, "transformer/stream").and_then(|c| c.detail.clone());
    assert!(
        stream
            .unwrap_or_default()
            .contains("passed through unchanged"),
        "{}",
        report.render()
    );
}

// ------------------------------------------------------------ a cases folder

fn conformance_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/conformance")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cases_folder_replaces_the_embedded_cases() {
    let root = tempfile::tempdir().expect("temp dir");
    let dir = root.path().join("anthropic").join("adapter");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let original = conformance_root().join("anthropic/adapter/text_basic.json");
    let text = std::fs::read_to_string(&original).expect("text_basic.json");
    std::fs::write(dir.join("text_basic.json"), &text).expect("copy");
    let mut changed: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    changed["expect_request"]["url"] = "https://api.anthropic.com/v2/messages".into();
    std::fs::write(dir.join("wrong_url.json"), changed.to_string()).expect("write");
    std::fs::write(dir.join("broken.json"), "{ not json").expect("write");
    let options = CheckOptions {
        cases: Some(root.path().to_path_buf()),
        limits: production_limits(),
        transformer_config: None,
    };

    let report = check_path(&component("anthropic.wasm"), &options).await;
    assert!(passed(&report, "adapter/anthropic/text_basic"));
    let wrong = failure(&report, "adapter/anthropic/wrong_url");
    assert!(
        wrong.contains("request url: expected \"https://api.anthropic.com/v2/messages\""),
        "{wrong}"
    );
    assert!(failure(&report, "adapter/anthropic/broken").contains("not JSON"));
    assert_eq!(report.checks.len(), 3 + 3, "{}", report.render());

    // No cases for the dialect: nothing verified is a failure, not a pass.
    let report = check_path(&component("gemini.wasm"), &options).await;
    let none = failure(&report, "adapter/gemini");
    assert!(
        none.contains("no adapter cases for dialect `gemini`") && none.contains("anthropic"),
        "{none}"
    );
}

/// Copy a case into `<root>/<dialect>/<kind>/` under a new name, changed by
/// `edit`.
fn mutated_case(root: &Path, case: &str, name: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let (dialect_kind, _) = case.rsplit_once('/').expect("dialect/kind/case");
    let text = std::fs::read_to_string(conformance_root().join(format!("{case}.json")))
        .expect("case file");
    let mut doc: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    edit(&mut doc);
    let dir = root.join(dialect_kind);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join(format!("{name}.json")), doc.to_string()).expect("write");
}

#[tokio::test(flavor = "multi_thread")]
async fn mismatches_fail_with_the_difference() {
    let root = tempfile::tempdir().expect("temp dir");
    let root = root.path();
    mutated_case(
        root,
        "anthropic/adapter/text_stream_cache_usage",
        "chunk",
        |doc| {
            doc["expect_chunks"][1]["kind"] = "meta".into();
        },
    );
    mutated_case(
        root,
        "anthropic/adapter/text_stream_cache_usage",
        "done",
        |doc| {
            doc["expect_done"] = false.into();
        },
    );
    mutated_case(
        root,
        "anthropic/adapter/error_429_rate_limited",
        "class",
        |doc| {
            doc["expect_error"]["class"] = "overloaded".into();
        },
    );
    mutated_case(root, "anthropic/adapter/text_basic", "usage", |doc| {
        doc["expect_usage"]["output_tokens"] = 12_345.into();
    });
    mutated_case(root, "anthropic/dialect/text-stream", "events", |doc| {
        doc["expect_events"].as_array_mut().expect("events").pop();
    });
    mutated_case(
        root,
        "anthropic/dialect/error-system-role",
        "decode",
        |doc| {
            doc["expect_decode_error"]["param"] = "elsewhere".into();
        },
    );
    mutated_case(
        root,
        "anthropic/dialect/abort-after-content",
        "abort",
        |doc| {
            doc["expect_abort_events"][0]["event"] = "message_stop".into();
        },
    );
    let options = CheckOptions {
        cases: Some(root.to_path_buf()),
        limits: production_limits(),
        transformer_config: None,
    };

    let adapter = check_path(&component("anthropic.wasm"), &options).await;
    let chunk = failure(&adapter, "adapter/anthropic/chunk");
    assert!(
        chunk.starts_with("chunks differ at $[1].kind: expected \"meta\""),
        "{chunk}"
    );
    let done = failure(&adapter, "adapter/anthropic/done");
    assert!(
        done.contains("normal end (done), but the case expects none"),
        "{done}"
    );
    let class = failure(&adapter, "adapter/anthropic/class");
    assert!(
        class.contains("error differs at $.class: expected \"overloaded\", got \"rate-limited\""),
        "{class}"
    );
    let usage = failure(&adapter, "adapter/anthropic/usage");
    assert!(
        usage.contains("usage differs at $.output_tokens: expected 12345"),
        "{usage}"
    );

    let dialect = check_path(&component("dialect-anthropic.wasm"), &options).await;
    let events = failure(&dialect, "dialect/anthropic/events");
    assert!(
        events.starts_with("stream events differ at $: expected"),
        "{events}"
    );
    let decode = failure(&dialect, "dialect/anthropic/decode");
    assert!(
        decode.contains("decode error differs at $.param"),
        "{decode}"
    );
    let abort = failure(&dialect, "dialect/anthropic/abort");
    assert!(
        abort.contains("abort events differ at $[0].event"),
        "{abort}"
    );
}
