//! The binary's operator commands.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_llm-orchestrator");

#[test]
fn gen_master_key_prints_a_usable_key_each_time_anew() {
    let run = || {
        let out = Command::new(BIN).arg("gen-master-key").output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let (a, b) = (run(), run());
    assert_ne!(a, b);
    let key = orch_core::secrets::MasterKey::parse(&a).unwrap();
    assert_eq!(key.id().len(), 16);
}

#[test]
fn check_config_names_the_bad_key_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[secrets]\nmaster_key = \"tooshort\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("secrets.master_key"), "{err}");
    assert!(!err.contains("tooshort"), "the secret is not echoed: {err}");
}

#[test]
fn plugin_check_exits_by_verdict_and_names_the_reason() {
    let check = |file: &std::path::Path, extra: &[&str]| {
        let out = Command::new(BIN)
            .args(["plugin", "check"])
            .arg(file)
            .args(extra)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };
    let component = orch_test_support::component;

    let (code, text) = check(&component("dialect-gemini.wasm"), &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("PASS dialect/gemini/"), "{text}");
    assert!(text.contains(" passed, 0 failed\n"), "{text}");

    let (code, text) = check(&component("fixture_wrong_world.wasm"), &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("FAIL load:"), "{text}");
    assert!(text.contains("fixture:other/greeter"), "{text}");

    let (code, text) = check(&component("fixture_loop.wasm"), &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("deadline"), "{text}");

    let config = r#"{"keywords":["secret project"]}"#;
    let (code, text) = check(&component("block-list.wasm"), &["--config", config]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("PASS transformer/on_request"), "{text}");

    let (code, text) = check(std::path::Path::new("/nonexistent/plugin.wasm"), &[]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("not a file"), "{text}");
}

/// `check-config` on `toml` (and a plugins folder): exit code, stdout,
/// stderr, and the file's path as the messages name it.
fn check_config(
    toml: &str,
    plugins: Option<&std::path::Path>,
    env: &[(&str, &str)],
) -> (Option<i32>, String, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, toml).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["check-config", "--config"])
        .arg(&file)
        .env_remove("ORCH_CONFIG")
        .envs(env.iter().copied());
    if let Some(p) = plugins {
        cmd.arg("--plugins").arg(p);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
        file.display().to_string(),
    )
}

/// A plugins folder with these bundled plugins (loading all of them costs
/// seconds).
fn plugin_folder(files: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in files {
        std::fs::copy(orch_test_support::component(file), dir.path().join(file)).unwrap();
    }
    dir
}

const PROVIDER: &str = r#"
[[providers]]
name = "p"
adapter = "openai"
base_url = "http://127.0.0.1:9"
[[models]]
name = "m"
targets = [{ provider = "p", model = "x" }]
"#;

#[test]
fn check_config_reports_an_unknown_key_with_a_suggestion() {
    let (code, _, err, file) = check_config("[server]\nlistne = \"127.0.0.1:1\"\n", None, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "{file}: server.listne: unknown key; did you mean `listen`?\n"
        )),
        "{err}"
    );
}

#[test]
fn check_config_reports_a_bad_type_without_the_value() {
    let (code, _, err, file) =
        check_config("[server]\nmax_body_mib = \"sk-not-a-number\"\n", None, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "{file}: server.max_body_mib: expected a non-negative integer, found a string\n"
        )),
        "{err}"
    );
    assert!(!err.contains("sk-not-a-number"), "{err}");
}

#[test]
fn check_config_names_an_unset_variable_and_never_prints_a_secret() {
    let toml = "[admin]\ntoken = \"env:ORCH_TEST_UNSET_TOKEN\"\n\
                [secrets]\nmaster_key = \"env:ORCH_TEST_MASTER_KEY\"\n";
    let secret = "not-a-master-key-but-secret";
    let (code, out, err, file) = check_config(toml, None, &[("ORCH_TEST_MASTER_KEY", secret)]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "{file}: admin.token: environment variable ORCH_TEST_UNSET_TOKEN is not set\n"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{file}: secrets.master_key: ")),
        "{err}"
    );
    assert!(!err.contains(secret) && !out.contains(secret), "{err}");
}

#[test]
fn check_config_reports_every_problem_at_once() {
    let toml = "[server]\nlistne = \"127.0.0.1:1\"\nmax_body_mib = true\n\
                [admin]\ntoken = \"env:ORCH_TEST_UNSET_TOKEN\"\n\
                [routing]\nmax_attempts = 0\n";
    let (code, _, err, file) = check_config(toml, None, &[]);
    assert_eq!(code, Some(2), "{err}");
    for line in [
        "server.listne: unknown key",
        "server.max_body_mib: expected a non-negative integer, found the boolean true",
        "admin.token: environment variable ORCH_TEST_UNSET_TOKEN is not set",
        "routing.max_attempts: must be in 1..=20",
    ] {
        assert!(err.contains(&format!("{file}: {line}")), "{line} in {err}");
    }
    assert!(
        err.ends_with(&format!("{file}: invalid (4 problems)\n")),
        "{err}"
    );
}

#[test]
fn check_config_with_plugins_reports_a_missing_adapter_and_version() {
    let plugins = plugin_folder(&["openai.wasm"]);
    let toml = format!(
        "{PROVIDER}\n[[providers]]\nname = \"q\"\nadapter = \"opneai\"\nbase_url = \"http://x\"\n\
         [[models]]\nname = \"pinned\"\n\
         targets = [{{ provider = \"p\", model = \"x\", adapter_version = \"9.9.9\" }}]\n"
    );
    let (code, _, err, file) = check_config(&toml, Some(plugins.path()), &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "{file}: providers[1].adapter: no adapter plugin `opneai` in the plugins folder"
        )),
        "{err}"
    );
    assert!(err.contains("did you mean `openai`?"), "{err}");
    assert!(
        err.contains(&format!(
            "{file}: models[1].targets[0].adapter_version: the plugins folder has no version \
             9.9.9 of adapter `openai`"
        )),
        "{err}"
    );
    // Without a plugins folder, plugin ids are not looked up.
    let (code, _, err, _) = check_config(&toml, None, &[]);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn check_config_with_plugins_reports_a_missing_transformer() {
    let plugins = plugin_folder(&["openai.wasm", "pii-redact.wasm"]);
    let toml = format!("{PROVIDER}\n[[transformers]]\nplugin = \"pii-redcat\"\n");
    let (code, _, err, file) = check_config(&toml, Some(plugins.path()), &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "{file}: transformers[0].plugin: no transformer plugin `pii-redcat` in the plugins \
             folder"
        )),
        "{err}"
    );
    assert!(err.contains("did you mean `pii-redact`?"), "{err}");
}

#[test]
fn check_config_passes_a_valid_file_and_warns_about_refused_plugins() {
    let plugins = plugin_folder(&["openai.wasm", "pii-redact.wasm"]);
    std::fs::write(plugins.path().join("broken.wasm"), b"not a component").unwrap();
    let toml = format!("{PROVIDER}\n[[transformers]]\nplugin = \"pii-redact\"\n");
    let (code, out, err, file) = check_config(&toml, Some(plugins.path()), &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        format!(
            "{file}: ok (1 providers, 1 models, 1 transformers; 2 plugins loaded from {})\n",
            plugins.path().display()
        )
    );
    assert!(
        err.contains(&format!(
            "warning: {}: plugin refused: ",
            plugins.path().join("broken.wasm").display()
        )),
        "{err}"
    );
}

#[test]
fn version_names_every_supported_plugin_contract() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!("llm-orchestrator {} ", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    let wit = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit");
    let mut contracts = 0;
    for entry in std::fs::read_dir(wit).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if let Some(version) = name.strip_prefix("plugin@") {
            contracts += 1;
            assert!(
                text.contains(&format!("llm-orchestrator:plugin@{version}")),
                "{version} in {text}"
            );
        }
    }
    assert!(contracts > 0);
    for version in orch_core::contract::SUPPORTED_CONTRACTS {
        assert!(text.contains(&format!("plugin@{version}")), "{text}");
    }
}

#[tokio::test]
async fn healthcheck_exits_0_on_200_and_1_otherwise() {
    let spec = crate::harness::Spec::openai("http://127.0.0.1:9/v1", "x");
    let gw = crate::harness::Gateway::start(spec).await;
    let run = |url: String| async move {
        tokio::process::Command::new(BIN)
            .args(["healthcheck", "--url", &url])
            .env_remove("ORCH_CONFIG")
            .output()
            .await
            .unwrap()
    };
    let out = run(gw.url("/livez")).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(gw.url("/no-such-page")).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = run(format!("http://{closed}/livez")).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));
    gw.stop().await;
}
