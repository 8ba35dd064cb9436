//! The `fake-upstream` binary.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

use super::{client, json_of};

#[tokio::test]
async fn binary_announces_its_address_and_serves() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fake-upstream"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--models",
            "a,b",
            "--workers",
            "2",
        ])
        .args(["--expect-key", "sk-bin"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = BufReader::new(stdout)
        .lines()
        .next_line()
        .await
        .unwrap()
        .unwrap();
    let base = line
        .strip_prefix("fake-upstream listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"));
    assert!(base.starts_with("http://127.0.0.1:"));

    let models = client()
        .get(format!("{base}/v1/models"))
        .bearer_auth("sk-bin")
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 200);
    let models = json_of(models).await;
    assert_eq!(models["data"][1]["id"], "b");
    let config = json_of(
        client()
            .get(format!("{base}/_fake/config"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(config["expect_key"], "sk-bin");

    child.kill().await.unwrap();
}
