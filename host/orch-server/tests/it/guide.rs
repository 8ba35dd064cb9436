//! docs/plugins.md, step by step, from a clean temporary folder: create an
//! adapter with `plugin new`, test it natively, build it, `plugin check`
//! it, drop it into a running gateway's plugins folder and serve a request
//! through it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use orch_fake_upstream::{FakeConfig, FakeUpstream};
use serde_json::json;

use crate::harness::{Gateway, Spec};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Run a command of the guide; its output when it fails.
fn run(what: &str, command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{text}",
        out.status
    );
    text
}

/// `cargo` in `dir` as an author's shell would run it: what cargo set for
/// this test run (its package, target folder, toolchain, compiler) does not
/// leak in; the user's cargo home, registry and network settings do.
fn cargo(dir: &Path, args: &[&str]) -> Command {
    const KEPT: [&str; 5] = [
        "CARGO_HOME",
        "CARGO_REGISTRIES_",
        "CARGO_NET_",
        "CARGO_HTTP_",
        "CARGO_REGISTRY_",
    ];
    let mut c = Command::new("cargo");
    c.current_dir(dir).args(args);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        let cargo_set = key.starts_with("CARGO") && !KEPT.iter().any(|k| key.starts_with(k));
        if cargo_set
            || ["RUSTUP_TOOLCHAIN", "RUSTC", "RUSTC_WRAPPER", "RUSTFLAGS"].contains(&key.as_str())
        {
            c.env_remove(&key);
        }
    }
    c
}

#[tokio::test]
async fn the_plugin_guide_works_from_a_clean_folder() {
    let gw_bin = env!("CARGO_BIN_EXE_llm-orchestrator");
    let root = repo_root();
    let tmp = tempfile::tempdir().unwrap();
    let crate_dir = tmp.path().join("acme");

    // 1. Create the crate.
    let created = run(
        "plugin new",
        Command::new(gw_bin)
            .current_dir(&root)
            .args(["plugin", "new", "adapter", "acme", "--dir"])
            .arg(&crate_dir),
    );
    assert!(created.contains("created"), "{created}");

    // 2. Test it natively. 3. Build the component.
    run(
        "cargo test",
        &mut cargo(
            &crate_dir,
            &["test", "--target", "x86_64-unknown-linux-gnu"],
        ),
    );
    run(
        "cargo build",
        &mut cargo(&crate_dir, &["build", "--release"]),
    );
    let wasm = crate_dir.join("target/wasm32-wasip2/release/acme.wasm");
    assert!(wasm.is_file(), "{} was not built", wasm.display());

    // 4. Check it.
    let report = run(
        "plugin check",
        Command::new(gw_bin)
            .current_dir(&root)
            .args(["plugin", "check"])
            .arg(&wasm),
    );
    assert!(report.contains("0 failed"), "{report}");

    // 5. Deploy it while the gateway runs.
    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    // (The gateway is ready once some adapter is loaded: the bundled one.)
    let spec = Spec::default()
        .plugin("openai.wasm")
        .provider("acme", "acme", &fake.base_url())
        .model("acme-large", &[("acme", "large-2025", 1)]);
    let gw = Gateway::start(spec).await;
    let staged = gw.plugins.path().join(".acme.wasm.tmp");
    std::fs::copy(&wasm, &staged).unwrap();
    std::fs::rename(&staged, gw.plugins.path().join("acme.wasm")).unwrap();

    let body = json!({"model": "acme-large",
                      "messages": [{"role": "user", "content": "echo: through acme"}]});
    let started = Instant::now();
    let answer = loop {
        let resp = gw.chat(body.clone()).await;
        if resp.status() == 200 {
            break resp.json::<serde_json::Value>().await.unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the hot-loaded adapter did not serve within 10 s: {} {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(answer["choices"][0]["message"]["content"], "through acme");
    assert_eq!(answer["model"], "acme-large");
    let sent = fake.last_request().unwrap();
    assert_eq!(sent.body["model"], "large-2025");

    // A stream through it too.
    let resp = gw
        .chat(json!({"model": "acme-large", "stream": true,
                     "messages": [{"role": "user", "content": "echo: streamed"}]}))
        .await;
    assert_eq!(resp.status(), 200);
    let events = crate::harness::sse_data(resp).await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let text: String = events
        .iter()
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(e).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "streamed");
    gw.stop().await;

    // The transformer template builds, tests and checks the same way (its
    // build shares the adapter's target folder: the dependencies are built).
    let tagger = tmp.path().join("tagger");
    run(
        "plugin new transformer",
        Command::new(gw_bin)
            .current_dir(&root)
            .args(["plugin", "new", "transformer", "tagger", "--dir"])
            .arg(&tagger),
    );
    let shared = crate_dir.join("target");
    for args in [
        &["test", "--target", "x86_64-unknown-linux-gnu"][..],
        &["build", "--release"][..],
    ] {
        run(
            "cargo (transformer)",
            cargo(&tagger, args).env("CARGO_TARGET_DIR", &shared),
        );
    }
    let report = run(
        "plugin check (transformer)",
        Command::new(gw_bin)
            .args(["plugin", "check"])
            .arg(shared.join("wasm32-wasip2/release/tagger.wasm")),
    );
    assert!(report.contains("PASS transformer/on_request"), "{report}");
    assert!(report.contains("0 failed"), "{report}");
}
