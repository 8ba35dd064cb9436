//! Project automation: `cargo xtask <build|run|test|bench|plugins>`.
//!
//! Only the standard library and anyhow, so it compiles in seconds.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};

const USAGE: &str = "usage: cargo xtask <command>

commands:
  build     release host binaries + bundled plugins into target/plugins
  run       build, start the fake upstream on 127.0.0.1:9090, serve config/orchestrator.toml
            (--no-fake-upstream to skip the fake)
  test      every test: host crates (nextest), plugin unit tests, end-to-end with the official SDKs
  bench     build release and run the latency/throughput benchmark
  plugins   build the plugins (bundled into target/plugins, fixtures into target/fixtures,
            the JavaScript example into target/examples: it needs Node.js 20+ and npm)";

/// Plugins shipped with the gateway: (crate wasm name, file name in the plugins folder).
const BUNDLED: &[(&str, &str)] = &[
    ("openai", "openai.wasm"),
    ("anthropic", "anthropic.wasm"),
    ("gemini", "gemini.wasm"),
    ("dialect_anthropic", "dialect-anthropic.wasm"),
    ("dialect_gemini", "dialect-gemini.wasm"),
    ("transform_pii", "pii-redact.wasm"),
    ("transform_prompt", "system-prompt.wasm"),
    ("transform_model", "model-rewrite.wasm"),
    ("transform_params", "param-policy.wasm"),
    ("transform_blocklist", "block-list.wasm"),
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = root()?;
    std::env::set_current_dir(&root)?;
    match args.first().map(String::as_str) {
        Some("build") => build(&root),
        Some("run") => run(&root, args.iter().any(|a| a == "--no-fake-upstream")),
        Some("test") => test(&root),
        Some("bench") => bench(&root, &args[1..]),
        Some("plugins") => plugins(&root).map(|_| ()),
        _ => {
            eprintln!("{USAGE}");
            bail!("unknown or missing command")
        }
    }
}

fn root() -> Result<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    dir.parent()
        .map(Path::to_path_buf)
        .context("xtask has no parent directory")
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn status(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {cmd:?}");
    let st = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !st.success() {
        bail!("command failed ({st}): {cmd:?}");
    }
    Ok(())
}

/// Build every plugin crate for wasm32-wasip2 and copy the results: bundled
/// plugins to `target/plugins`, fixtures to `target/fixtures`; then the
/// JavaScript example plugins into `target/examples` (not loaded by default:
/// a 12 MB component costs every gateway start seconds and ~80 MiB).
fn plugins(root: &Path) -> Result<PathBuf> {
    let pdir = root.join("plugins");
    status(
        cargo()
            .current_dir(&pdir)
            .args(["build", "--release", "--target", "wasm32-wasip2"]),
    )?;
    let out = pdir.join("target/wasm32-wasip2/release");
    let bundled = root.join("target/plugins");
    let fixtures = root.join("target/fixtures");
    std::fs::create_dir_all(&bundled)?;
    std::fs::create_dir_all(&fixtures)?;
    for (krate, file) in BUNDLED {
        install(&out.join(format!("{krate}.wasm")), &bundled.join(file))?;
    }
    for entry in std::fs::read_dir(&out)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if path.extension().is_some_and(|e| e == "wasm") {
            install(&path, &fixtures.join(name))?;
        }
    }
    let examples = root.join("target/examples");
    std::fs::create_dir_all(&examples)?;
    js_plugins(root, &examples)?;
    Ok(bundled)
}

/// The oldest Node.js major version the JavaScript plugins build with.
const NODE_MAJOR: u32 = 20;

/// Whether this runs in CI (`CI` set, and not to `false` or `0`), where a
/// missing prerequisite fails the build instead of being skipped.
fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Node.js's major version, if `node` runs.
fn node_major() -> Option<u32> {
    let out = Command::new("node").arg("--version").output().ok()?;
    let version = String::from_utf8(out.stdout).ok()?;
    version
        .trim()
        .strip_prefix('v')?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// Whether Node.js (20+) and npm are there for the JavaScript plugins.
/// Without them CI fails, and a developer's machine skips those plugins with
/// a warning (the gateway runs without them).
fn node_toolchain() -> Result<bool> {
    let node = node_major();
    let npm = have("npm", "--version");
    if node.is_some_and(|major| major >= NODE_MAJOR) && npm {
        return Ok(true);
    }
    let why = format!(
        "the JavaScript plugins (plugins/js) need Node.js {NODE_MAJOR}+ and npm on the PATH \
         (found: node {}, npm {})",
        node.map_or_else(|| "none".to_owned(), |m| format!("v{m}")),
        if npm { "yes" } else { "none" },
    );
    if in_ci() {
        bail!("{why}; with CI set they are not skipped");
    }
    eprintln!("warning: {why}; skipping them (the gateway does not need them)");
    Ok(false)
}

/// Build the JavaScript plugins (`plugins/js/*/`) with componentize-js into
/// `out` (`openai-js.wasm`, ...), when Node.js is there.
fn js_plugins(root: &Path, out: &Path) -> Result<()> {
    if !node_toolchain()? {
        return Ok(());
    }
    let dir = root.join("plugins/js");
    // `npm ci` deletes and reinstalls node_modules (about 15 s): only when it
    // is missing or the lock file changed since the last install. A copy of
    // the lock file in node_modules remembers what was installed.
    let lock = dir.join("package-lock.json");
    let installed = dir.join("node_modules/.xtask-package-lock.json");
    let current = std::fs::read(&lock).with_context(|| format!("reading {}", lock.display()))?;
    if std::fs::read(&installed).ok().as_deref() != Some(current.as_slice()) {
        status(
            Command::new("npm")
                .current_dir(&dir)
                .args(["ci", "--no-audit", "--no-fund"]),
        )?;
        std::fs::write(&installed, &current)?;
    }
    // build.mjs writes each component atomically and skips unchanged ones.
    status(
        Command::new("node")
            .current_dir(&dir)
            .arg("build.mjs")
            .arg(out),
    )
}

/// Copy atomically (write a hidden temp file, then rename), so a running
/// gateway watching the folder never sees a half-written plugin.
fn install(from: &Path, to: &Path) -> Result<()> {
    let dir = to.parent().context("no parent")?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        to.file_name().and_then(|n| n.to_str()).unwrap_or("plugin")
    ));
    std::fs::copy(from, &tmp).with_context(|| format!("copy {}", from.display()))?;
    std::fs::rename(&tmp, to)?;
    Ok(())
}

fn build(root: &Path) -> Result<()> {
    plugins(root)?;
    status(cargo().args([
        "build",
        "--release",
        "-p",
        "orch-server",
        "-p",
        "orch-fake-upstream",
    ]))?;
    eprintln!(
        "built target/release/llm-orchestrator, target/release/fake-upstream and the plugins in target/plugins"
    );
    Ok(())
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(root: &Path, no_fake: bool) -> Result<()> {
    build(root)?;
    let _fake = if no_fake {
        None
    } else {
        let child = Command::new(root.join("target/release/fake-upstream"))
            .args(["--listen", "127.0.0.1:9090"])
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start the fake upstream")?;
        eprintln!(
            "fake upstream on http://127.0.0.1:9090/v1 (pid {})",
            child.id()
        );
        Some(KillOnDrop(child))
    };
    status(
        Command::new(root.join("target/release/llm-orchestrator")).args([
            "serve",
            "--config",
            "config/orchestrator.toml",
        ]),
    )
}

fn have(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn test(root: &Path) -> Result<()> {
    plugins(root)?;
    let plugin_dir = root.join("target/plugins");
    let fixture_dir = root.join("target/fixtures");
    let example_dir = root.join("target/examples");

    // Host crates. The plugin-dependent tests find the built components here.
    let envs = [
        ("ORCH_TEST_PLUGINS", plugin_dir.clone()),
        ("ORCH_TEST_FIXTURES", fixture_dir.clone()),
        ("ORCH_TEST_EXAMPLES", example_dir.clone()),
    ];
    status(cargo().args(["build", "--workspace", "--tests", "--bins"]))?;
    if have("cargo-nextest", "--version") || have("cargo", "nextest") {
        status(
            cargo()
                .args(["nextest", "run", "--workspace", "--no-fail-fast"])
                .envs(envs.iter().cloned()),
        )?;
    } else {
        status(
            cargo()
                .args(["test", "--workspace", "--no-fail-fast"])
                .envs(envs.iter().cloned()),
        )?;
    }

    // Plugin unit tests, natively.
    status(cargo().current_dir(root.join("plugins")).args([
        "test",
        "--target",
        "x86_64-unknown-linux-gnu",
        "--workspace",
        "--exclude",
        "fixture-wrong-version",
        "--exclude",
        "fixture-wrong-world",
    ]))?;

    // The JavaScript plugins' unit tests, in Node.js (built above, if at all).
    if node_toolchain()? {
        status(
            Command::new("npm")
                .current_dir(root.join("plugins/js"))
                .arg("test"),
        )?;
    }

    // End to end with the official SDKs, in a local virtualenv.
    let venv = root.join(".venv");
    let py = venv.join("bin/python");
    if !py.exists() {
        status(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    status(Command::new(&py).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "-r",
        "tests/e2e/requirements.txt",
    ]))?;
    status(
        Command::new(&py)
            .args(["-m", "pytest", "-q", "tests/e2e"])
            .env("ORCH_BIN", root.join("target/debug/llm-orchestrator"))
            .env("FAKE_UPSTREAM_BIN", root.join("target/debug/fake-upstream"))
            .env("ORCH_TEST_PLUGINS", &plugin_dir)
            .env("ORCH_TEST_EXAMPLES", &example_dir),
    )?;
    Ok(())
}

fn bench(root: &Path, extra: &[String]) -> Result<()> {
    plugins(root)?;
    status(cargo().args([
        "build",
        "--release",
        "-p",
        "orch-server",
        "-p",
        "orch-fake-upstream",
        "-p",
        "orch-bench",
    ]))?;
    status(
        Command::new(root.join("target/release/orch-bench"))
            .arg("--gateway-bin")
            .arg(root.join("target/release/llm-orchestrator"))
            .arg("--fake-bin")
            .arg(root.join("target/release/fake-upstream"))
            .arg("--plugins")
            .arg(root.join("target/plugins"))
            .arg("--fixtures")
            .arg(root.join("target/fixtures"))
            .args(extra),
    )
}
