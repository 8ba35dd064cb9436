//! The container image and the compose stack, checked without a Docker
//! engine: the Dockerfile's runtime stage is read, then the gateway binary
//! runs as the image runs it (same arguments, environment, user and working
//! directory; the image's paths under a temporary root, everything but the
//! data volume read-only), and the compose stack's files and gateway
//! configuration are checked.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use orch_fake_upstream::{FakeConfig, FakeUpstream};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_llm-orchestrator");
const ADMIN_TOKEN: &str = "docker-test-admin-token-0123456789";
const PROVIDER_KEY: &str = "sk-docker-test-provider-key";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    let file = repo().join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// One Dockerfile instruction: its keyword (upper case) and the rest.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

#[derive(Debug)]
struct Stage {
    name: String,
    instructions: Vec<Instruction>,
}

impl Stage {
    fn all<'a>(&'a self, keyword: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.instructions
            .iter()
            .filter(move |i| i.keyword == keyword)
            .map(|i| i.args.as_str())
    }

    /// The last instruction of a kind (the one that takes effect).
    fn last<'a>(&'a self, keyword: &'a str) -> &'a str {
        self.all(keyword)
            .last()
            .unwrap_or_else(|| panic!("the {} stage has no {keyword}", self.name))
    }

    fn text(&self) -> String {
        self.instructions
            .iter()
            .map(|i| format!("{} {}\n", i.keyword, i.args))
            .collect()
    }
}

/// The stages of a Dockerfile: continuation lines joined, comments dropped.
fn stages(text: &str) -> Vec<Stage> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(start) => {
                current.push_str(start);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                lines.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<Stage> = Vec::new();
    for line in lines {
        let (keyword, args) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let instruction = Instruction {
            keyword: keyword.to_ascii_uppercase(),
            args: args.trim().to_string(),
        };
        if instruction.keyword == "FROM" {
            let name = instruction
                .args
                .split_whitespace()
                .skip_while(|w| !w.eq_ignore_ascii_case("as"))
                .nth(1)
                .unwrap_or("(unnamed)")
                .to_string();
            stages.push(Stage {
                name,
                instructions: vec![],
            });
        }
        stages
            .last_mut()
            .expect("an instruction before FROM")
            .instructions
            .push(instruction);
    }
    stages
}

/// An exec-form (JSON array) argument list.
fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("not an exec-form list: {args}: {e}"))
}

/// A COPY: (`--from` stage, source, destination).
fn copy(args: &str) -> (Option<String>, String, String) {
    let words: Vec<&str> = args.split_whitespace().collect();
    let from = words
        .iter()
        .find_map(|w| w.strip_prefix("--from="))
        .map(String::from);
    let paths: Vec<&str> = words
        .iter()
        .copied()
        .filter(|w| !w.starts_with("--"))
        .collect();
    assert_eq!(paths.len(), 2, "one source, one destination: COPY {args}");
    (from, paths[0].to_string(), paths[1].to_string())
}

fn dockerfile() -> (Stage, Stage) {
    let mut stages = stages(&read("docker/Dockerfile"));
    assert_eq!(stages.len(), 2, "a build stage and a runtime stage");
    let runtime = stages.remove(1);
    (stages.remove(0), runtime)
}

/// An image path under `root`.
fn rooted(root: &Path, image_path: &str) -> PathBuf {
    root.join(image_path.trim_start_matches('/'))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Every file and folder under `root` (but not under `skip`) with its size
/// and modification time.
fn tree(root: &Path, skip: &Path) -> BTreeMap<PathBuf, (u64, i64, i64)> {
    let mut found = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.starts_with(skip) {
                continue;
            }
            let m = std::fs::symlink_metadata(&path).unwrap();
            found.insert(path.clone(), (m.len(), m.mtime(), m.mtime_nsec()));
            if m.is_dir() {
                todo.push(path);
            }
        }
    }
    found
}

/// `chmod` every folder and file under `root` (files keep their execute bit).
fn set_mode(root: &Path, dir_mode: u32, file_mode: u32) {
    let mut todo = vec![root.to_path_buf()];
    while let Some(path) = todo.pop() {
        let m = std::fs::symlink_metadata(&path).unwrap();
        let mode = if m.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                todo.push(entry.unwrap().path());
            }
            dir_mode
        } else if m.mode() & 0o100 != 0 {
            file_mode | 0o555
        } else {
            file_mode
        };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

/// The image as it would be laid out, under `root`: the binary, the bundled
/// plugins, the data volume, the configuration file (its volume paths and
/// listen port mapped as `docker run -p PORT:8080 -v ...` would).
struct Image {
    root: tempfile::TempDir,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    healthcheck: Vec<String>,
    env: Vec<(String, String)>,
    workdir: PathBuf,
    data: PathBuf,
    user: (u32, u32),
    port: u16,
}

fn lay_out_image(runtime: &Stage, build: &Stage) -> Image {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let volumes = exec_form(runtime.last("VOLUME"));
    let expose: u16 = runtime.last("EXPOSE").parse().unwrap();
    let port = free_port();
    // What the build stage produces, and what stands for it here.
    let build_text = build.text();
    let local: BTreeMap<&str, Option<PathBuf>> = BTreeMap::from([
        ("/out/bin/llm-orchestrator", Some(PathBuf::from(BIN))),
        ("/out/plugins", Some(orch_test_support::plugins_dir())),
        ("/out/data", None),
    ]);
    let mut config_file = None;
    let mut plugins = None;
    for args in runtime.all("COPY") {
        let (from, src, dst) = copy(args);
        let target = rooted(r, &dst);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        match from.as_deref() {
            Some("build") => {
                let dir = Path::new(&src).parent().unwrap().to_str().unwrap();
                assert!(
                    build_text.contains(&src) || build_text.contains(&format!("{dir}/")),
                    "the build stage produces {src}"
                );
                let standin = local
                    .get(src.as_str())
                    .unwrap_or_else(|| panic!("the test knows no stand-in for {src}"));
                match standin {
                    Some(p) if p.is_dir() => {
                        plugins = Some(target.clone());
                        std::fs::create_dir_all(&target).unwrap();
                        for e in std::fs::read_dir(p).unwrap() {
                            let e = e.unwrap().path();
                            if e.extension().is_some_and(|x| x == "wasm") {
                                std::fs::copy(&e, target.join(e.file_name().unwrap())).unwrap();
                            }
                        }
                    }
                    Some(p) => {
                        std::fs::copy(p, &target).unwrap();
                    }
                    None => std::fs::create_dir_all(&target).unwrap(),
                }
            }
            Some(other) => panic!("COPY --from={other}: no such stage"),
            None => {
                assert!(repo().join(&src).is_file(), "{src} is in the repository");
                config_file = Some((src, target));
            }
        }
    }
    orch_test_support::component("openai.wasm");
    assert!(
        std::fs::read_dir(plugins.expect("the image has the bundled plugins"))
            .unwrap()
            .any(|e| e.unwrap().file_name() == "openai.wasm"),
        "the bundled plugins are in the image's plugins folder"
    );

    // The configuration, its volume paths and port mapped.
    let (src, target) = config_file.expect("the image has a configuration file");
    let mut text = read(&src);
    let root_str = r.to_str().unwrap();
    let data = volumes
        .iter()
        .find(|v| text.contains(&format!("\"sqlite://{v}/")))
        .map(|v| rooted(r, v))
        .expect("the SQLite database is in a volume");
    for v in &volumes {
        assert!(
            text.contains(&format!("\"{v}")) || text.contains(&format!("://{v}")),
            "{src} uses the volume {v}"
        );
        text = text
            .replace(&format!("\"{v}"), &format!("\"{root_str}{v}"))
            .replace(&format!("://{v}"), &format!("://{root_str}{v}"));
    }
    let listen = format!("\"0.0.0.0:{expose}\"");
    assert!(text.contains(&listen), "{src} listens on the exposed port");
    text = text.replace(&listen, &format!("\"0.0.0.0:{port}\""));
    std::fs::write(&target, text).unwrap();

    let env: Vec<(String, String)> = runtime
        .all("ENV")
        .flat_map(|args| {
            args.split_whitespace().map(|kv| {
                let (k, v) = kv.split_once('=').expect("ENV KEY=VALUE");
                (k.to_string(), v.to_string())
            })
        })
        .map(|(k, v)| {
            let v = if v.starts_with('/') {
                rooted(r, &v).to_str().unwrap().to_string()
            } else {
                v
            };
            (k, v)
        })
        .collect();
    let user = runtime.last("USER");
    let (uid, gid) = user.split_once(':').unwrap_or((user, user));
    let user = (
        uid.parse::<u32>().expect("USER is numeric (uid:gid)"),
        gid.parse::<u32>().expect("USER is numeric (uid:gid)"),
    );
    Image {
        entrypoint: exec_form(runtime.last("ENTRYPOINT")),
        cmd: exec_form(runtime.last("CMD")),
        healthcheck: {
            let args = runtime.last("HEALTHCHECK");
            exec_form(&args[args.find("CMD").expect("HEALTHCHECK CMD") + 3..])
        },
        env,
        workdir: rooted(r, runtime.last("WORKDIR")),
        data,
        user,
        port,
        root,
    }
}

impl Image {
    /// A command as the image would run it: the program under the root,
    /// only the image's environment plus `extra`, its working directory, and
    /// its user when this process may switch to it.
    fn command(&self, argv: &[String], extra: &[(&str, &str)]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(rooted(self.root.path(), &argv[0]));
        c.args(&argv[1..])
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(extra.iter().copied())
            .current_dir(&self.workdir)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if running_as_root() {
            c.uid(self.user.0).gid(self.user.1);
        }
        c
    }
}

/// Whether this process may run the gateway as the image's user.
fn running_as_root() -> bool {
    tempfile::tempfile().unwrap().metadata().unwrap().uid() == 0
}

#[tokio::test(flavor = "multi_thread")]
async fn the_image_runs_as_its_user_writing_only_to_its_data_volume() {
    let (build, runtime) = dockerfile();
    let image = lay_out_image(&runtime, &build);
    assert_ne!(image.user.0, 0, "USER is not root");
    assert_eq!(image.entrypoint, ["/usr/local/bin/llm-orchestrator"]);
    assert_eq!(image.cmd, ["serve"]);
    assert_eq!(
        image.healthcheck,
        ["/usr/local/bin/llm-orchestrator", "healthcheck"]
    );
    assert!(
        image.env.iter().any(|(k, _)| k == "ORCH_CONFIG"),
        "the image names its configuration file"
    );

    // Read-only but for the data volume, owned by the image's user.
    let root = image.root.path();
    set_mode(root, 0o555, 0o444);
    std::fs::set_permissions(&image.data, std::fs::Permissions::from_mode(0o755)).unwrap();
    if running_as_root() {
        std::os::unix::fs::chown(&image.data, Some(image.user.0), Some(image.user.1)).unwrap();
    }
    let before = tree(root, &image.data);

    let fake = FakeUpstream::spawn(FakeConfig::default()).await.unwrap();
    let master_key = orch_core::secrets::MasterKey::generate();
    let secrets = [
        ("ORCH_ADMIN_TOKEN", ADMIN_TOKEN),
        ("ORCH_MASTER_KEY", master_key.as_str()),
    ];
    let logs = tempfile::tempdir().unwrap();
    let log_file = logs.path().join("gateway.log");
    let argv: Vec<String> = image.entrypoint.iter().chain(&image.cmd).cloned().collect();
    let mut gateway = image
        .command(&argv, &secrets)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_file).unwrap())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&log_file).unwrap_or_default();

    let base = format!("http://127.0.0.1:{}", image.port);
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Ok(r) = http.get(format!("{base}/livez")).send().await {
            assert_eq!(r.status(), 200);
            break;
        }
        if let Some(status) = gateway.try_wait().unwrap() {
            panic!("the gateway exited ({status}):\n{}", log());
        }
        assert!(
            Instant::now() < deadline,
            "the gateway did not start:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // HEALTHCHECK as the image runs it (the port from ORCH_CONFIG), and
    // against a closed port.
    let status = image
        .command(&image.healthcheck, &[])
        .output()
        .await
        .unwrap();
    assert_eq!(
        status.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let closed = format!("http://127.0.0.1:{}/livez", free_port());
    let mut argv = image.healthcheck.clone();
    argv.extend(["--url".to_string(), closed]);
    let status = image.command(&argv, &[]).output().await.unwrap();
    assert_eq!(status.status.code(), Some(1));

    // Configured through the admin API, as the image expects, then served.
    let admin = |path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
    };
    let r = admin(
        "/admin/v1/providers",
        json!({"name": "fake", "adapter": "openai", "base_url": fake.base_url(), "api_keys": [PROVIDER_KEY]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = admin(
        "/admin/v1/models",
        json!({"name": "m", "targets": [{"provider": "fake", "model": "fake-model"}]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let r = admin("/admin/v1/client-keys", json!({"name": "docker"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let client_key = r.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let r = http
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(&client_key)
        .json(&crate::harness::chat_body("m", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["choices"][0]["message"]["content"].is_string(),
        "{body}"
    );
    assert_eq!(fake.stats().chat_requests, 1);

    gateway.kill().await.unwrap();
    assert!(
        image.data.join("orchestrator.db").is_file(),
        "the SQLite database is in the data volume"
    );
    let cached = std::fs::read_dir(image.data.join("plugin-cache"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
                .count()
        })
        .unwrap_or(0);
    assert!(cached > 0, "the compile cache is in the data volume");
    assert_eq!(
        tree(root, &image.data),
        before,
        "nothing outside the data volume was written"
    );
    let log = log();
    for secret in [ADMIN_TOKEN, master_key.as_str(), PROVIDER_KEY, &client_key] {
        assert!(!log.contains(secret), "a secret in the log:\n{log}");
    }
    set_mode(root, 0o755, 0o644);
}

#[test]
fn the_image_is_built_by_xtask_with_the_pinned_toolchain() {
    let (build, runtime) = dockerfile();
    let toolchain = read("rust-toolchain.toml");
    let channel = toolchain
        .lines()
        .find_map(|l| l.strip_prefix("channel = "))
        .unwrap()
        .trim_matches('"');
    let from = build.last("FROM");
    assert!(
        from.starts_with(&format!("rust:{channel}-")),
        "the build image ({from}) is the toolchain file's Rust {channel}"
    );
    let text = build.text();
    assert!(text.contains("wasm32-wasip2"), "{text}");
    assert!(text.contains("cargo xtask build"), "{text}");
    // Where `cargo xtask build` puts its outputs.
    let xtask = read("xtask/src/main.rs");
    for output in ["target/release/llm-orchestrator", "target/plugins"] {
        assert!(xtask.contains(output), "xtask builds {output}");
        assert!(
            text.contains(&format!("cp {output}")),
            "{output} is copied out"
        );
    }
    let ignored = read(".dockerignore");
    for path in ["target/", ".git/", ".venv/"] {
        assert!(
            ignored.lines().any(|l| l == path),
            ".dockerignore has {path}"
        );
    }
    for args in runtime.all("COPY") {
        if let (None, src, _) = copy(args) {
            assert!(
                !ignored
                    .lines()
                    .any(|l| !l.starts_with('#') && !l.is_empty() && src.starts_with(l)),
                "{src} is not excluded from the build context"
            );
        }
    }
}

/// Every `${NAME...}` a compose file interpolates.
fn interpolated(text: &str) -> Vec<String> {
    text.split("${")
        .skip(1)
        .map(|s| {
            s.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

#[test]
fn the_compose_stack_uses_files_that_exist_and_a_valid_configuration() {
    let compose = read("docker/compose.yml");
    let dir = repo().join("docker");
    // Bind mounts (`- ./file:/path`), the build context and Dockerfile.
    let mut mounts = BTreeMap::new();
    for line in compose.lines().map(str::trim) {
        if let Some(mount) = line.strip_prefix("- ./") {
            let (src, dst) = mount.split_once(':').unwrap();
            let dst = dst.trim_end_matches(":ro");
            assert!(dir.join(src).is_file(), "docker/{src} exists");
            mounts.insert(dst.to_string(), src.to_string());
        }
        if let Some(context) = line.strip_prefix("context: ") {
            assert_eq!(
                dir.join(context).canonicalize().unwrap(),
                repo().canonicalize().unwrap()
            );
        }
        if let Some(file) = line.strip_prefix("dockerfile: ") {
            assert!(repo().join(file).is_file(), "{file} exists");
        }
    }
    for needed in ["haproxy.cfg", "stack.toml"] {
        assert!(
            mounts.values().any(|m| m == needed),
            "compose mounts {needed}"
        );
    }

    // Every interpolated variable is in .env.example, which holds no secret.
    let example = read("docker/.env.example");
    for name in interpolated(&compose) {
        assert!(
            example
                .lines()
                .any(|l| l.trim_start_matches("# ").starts_with(&format!("{name}="))),
            "docker/.env.example lists {name}"
        );
    }
    for line in example
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
    {
        assert!(
            line.ends_with('='),
            "no value in docker/.env.example: {line}"
        );
    }

    // The gateway configuration: every env: reference is set by compose, and
    // with those set (to stand-ins) it passes check-config.
    let config_path = compose
        .lines()
        .find_map(|l| l.trim().strip_prefix("ORCH_CONFIG: "))
        .expect("compose sets ORCH_CONFIG");
    let config = mounts
        .get(config_path)
        .unwrap_or_else(|| panic!("{config_path} is mounted from docker/"));
    let text = read(&format!("docker/{config}"));
    let references: Vec<&str> = text
        .split("\"env:")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .collect();
    assert!(references.contains(&"ORCH_DATABASE_URL"));
    assert!(text.contains("[redis]"), "the replicas share Redis");
    let master_key = orch_core::secrets::MasterKey::generate();
    let mut check = std::process::Command::new(BIN);
    check
        .args(["check-config", "--config"])
        .arg(dir.join(config))
        .arg("--plugins")
        .arg(orch_test_support::plugins_dir())
        .env_remove("ORCH_CONFIG");
    for name in &references {
        assert!(
            compose.contains(&format!("      {name}: ")),
            "compose sets {name} for the gateway"
        );
        let value = match *name {
            "ORCH_DATABASE_URL" => "postgres://orchestrator:password@postgres:5432/orchestrator",
            "ORCH_REDIS_URL" => "redis://redis:6379",
            "ORCH_MASTER_KEY" => master_key.as_str(),
            _ => "a-stand-in-value-long-enough",
        };
        check.env(name, value);
    }
    let out = check.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains(master_key.as_str()));

    // The load balancer checks every replica on the port they listen on.
    let lb = read("docker/haproxy.cfg");
    assert!(text.contains("listen = \"0.0.0.0:8080\""));
    assert!(lb.contains("gateway:8080"), "{lb}");
    assert!(lb.contains("option httpchk GET /readyz"), "{lb}");
    assert!(
        !lb.contains("compression"),
        "streams are not buffered: {lb}"
    );
    assert!(compose.contains("- plugins:/plugins") && text.contains("dir = \"/plugins\""));
}
