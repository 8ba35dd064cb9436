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
