//! Start a gateway on port 0 with a temporary database and plugins folder.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use orch_core::config::Config;
use tempfile::TempDir;

pub struct Provider {
    pub name: String,
    pub adapter: String,
    pub base_url: String,
    pub keys: Vec<String>,
}

pub struct Model {
    pub name: String,
    pub targets: Vec<(String, String, u32)>,
}

/// Open the request log of a stopped gateway's data folder.
pub async fn request_logs(data: &TempDir) -> Vec<orch_store::RequestLogRecord> {
    let url = format!("sqlite://{}", data.path().join("gw.db").display());
    let store = orch_store::Store::connect(&url).await.expect("open db");
    store
        .recent_request_logs(100_000)
        .await
        .expect("query logs")
}

#[derive(Default)]
pub struct Spec {
    pub providers: Vec<Provider>,
    pub models: Vec<Model>,
    /// (source component, file name in the plugins folder)
    pub plugins: Vec<(PathBuf, String)>,
    /// Extra TOML appended to the generated configuration.
    pub extra: String,
    pub client_keys: Vec<String>,
    /// `server.request_timeout_ms` (default 20 s).
    pub request_timeout_ms: Option<u64>,
    /// `upstream.idle_timeout_ms` (default 5 s).
    pub idle_timeout_ms: Option<u64>,
    /// `[admin] token` (a literal in tests).
    pub admin_token: Option<String>,
    /// `[secrets] master_key` (a literal in tests).
    pub master_key: Option<String>,
    /// `[database] url` (default: SQLite in the data folder).
    pub database_url: Option<String>,
    /// `[database] refresh_interval_ms` (default 500).
    pub refresh_interval_ms: Option<u64>,
    /// `[plugins] quarantine_after_faults` (default: the gateway's, 5).
    pub quarantine_after_faults: Option<u32>,
    /// More `[server]` keys, one `key = value` per line.
    pub server: String,
}

impl Spec {
    /// The OpenAI adapter, one provider `f` on `base_url`, and model `m`
    /// served by its `upstream_model`.
    pub fn openai(base_url: &str, upstream_model: &str) -> Self {
        Spec::default()
            .plugin("openai.wasm")
            .provider("f", "openai", base_url)
            .model("m", &[("f", upstream_model, 1)])
    }

    pub fn provider(mut self, name: &str, adapter: &str, base_url: &str) -> Self {
        self.providers.push(Provider {
            name: name.into(),
            adapter: adapter.into(),
            base_url: base_url.into(),
            keys: vec![],
        });
        self
    }

    pub fn key(mut self, key: &str) -> Self {
        if let Some(p) = self.providers.last_mut() {
            p.keys.push(key.into());
        }
        self
    }

    pub fn model(mut self, name: &str, targets: &[(&str, &str, u32)]) -> Self {
        self.models.push(Model {
            name: name.into(),
            targets: targets
                .iter()
                .map(|(p, m, w)| (p.to_string(), m.to_string(), *w))
                .collect(),
        });
        self
    }

    pub fn plugin(mut self, file: &str) -> Self {
        let src = orch_test_support::component(file);
        self.plugins.push((src, file.to_string()));
        self
    }
}

pub struct Gateway {
    pub addr: SocketAddr,
    pub plugins: TempDir,
    pub data: TempDir,
    pub http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).expect("string")
}

impl Gateway {
    pub async fn start(spec: Spec) -> Gateway {
        Self::start_in(spec, TempDir::new().expect("tempdir")).await
    }

    /// Start on an existing data folder (a restart).
    pub async fn start_in(spec: Spec, data: TempDir) -> Gateway {
        let (config, plugins) = Self::configure(&spec, &data);
        Self::launch(config, plugins, data).await
    }

    /// The configuration a spec makes, with its plugins folder.
    pub fn configure(spec: &Spec, data: &TempDir) -> (Config, TempDir) {
        let plugins = TempDir::new().expect("tempdir");
        for (src, name) in &spec.plugins {
            std::fs::copy(src, plugins.path().join(name)).expect("copy plugin");
        }
        let mut toml = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nrequest_timeout_ms = {}\nshutdown_grace_ms = 2000\ndrain_delay_ms = 0\n{}\n\
             [database]\nurl = {}\nrefresh_interval_ms = {}\n\
             [plugins]\ndir = {}\ndebounce_ms = 100\nrescan_interval_s = 1\nmax_instances = 256\n\
             quarantine_after_faults = {}\n\
             [request_log]\nflush_interval_ms = 50\n\
             [upstream]\nconnect_timeout_ms = 2000\nheader_timeout_ms = 10000\nidle_timeout_ms = {}\n\
             [auth]\nclient_keys = [{}]\n",
            spec.request_timeout_ms.unwrap_or(20_000),
            spec.server,
            toml_str(
                &spec
                    .database_url
                    .clone()
                    .unwrap_or_else(|| format!("sqlite://{}", data.path().join("gw.db").display()))
            ),
            spec.refresh_interval_ms.unwrap_or(500),
            toml_str(&plugins.path().display().to_string()),
            spec.quarantine_after_faults.unwrap_or(5),
            spec.idle_timeout_ms.unwrap_or(5_000),
            spec.client_keys
                .iter()
                .map(|k| toml_str(k))
                .collect::<Vec<_>>()
                .join(","),
        );
        for p in &spec.providers {
            toml.push_str(&format!(
                "[[providers]]\nname = {}\nadapter = {}\nbase_url = {}\napi_keys = [{}]\n",
                toml_str(&p.name),
                toml_str(&p.adapter),
                toml_str(&p.base_url),
                p.keys
                    .iter()
                    .map(|k| toml_str(k))
                    .collect::<Vec<_>>()
                    .join(","),
            ));
        }
        for m in &spec.models {
            let targets: Vec<String> = m
                .targets
                .iter()
                .map(|(p, model, w)| {
                    format!(
                        "{{ provider = {}, model = {}, weight = {w} }}",
                        toml_str(p),
                        toml_str(model)
                    )
                })
                .collect();
            toml.push_str(&format!(
                "[[models]]\nname = {}\ntargets = [{}]\n",
                toml_str(&m.name),
                targets.join(", ")
            ));
        }
        if let Some(t) = &spec.admin_token {
            toml.push_str(&format!("[admin]\ntoken = {}\n", toml_str(t)));
        }
        if let Some(k) = &spec.master_key {
            toml.push_str(&format!("[secrets]\nmaster_key = {}\n", toml_str(k)));
        }
        toml.push_str(&spec.extra);
        let config = Config::from_toml(Path::new("test.toml"), &toml, &|_| None)
            .unwrap_or_else(|e| panic!("test config invalid: {e}\n{toml}"));
        (config, plugins)
    }

    async fn launch(config: Config, plugins: TempDir, data: TempDir) -> Gateway {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(orch_server::serve(config, listener, async move {
            let _ = rx.await;
        }));
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .expect("client");
        let gw = Gateway {
            addr,
            plugins,
            data,
            http,
            shutdown: Some(tx),
            task: Some(task),
        };
        for _ in 0..500 {
            if let Ok(r) = gw.http.get(gw.url("/readyz")).send().await
                && r.status().is_success()
            {
                return gw;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("gateway did not become ready (is an adapter plugin in the spec?)");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `GET /health/providers` with the admin token; asserts 200.
    pub async fn health_view(&self, admin_token: &str) -> serde_json::Value {
        let r = self
            .http
            .get(self.url("/health/providers"))
            .bearer_auth(admin_token)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200);
        r.json().await.expect("json")
    }

    /// An admin API request with the token; `body` as JSON when given.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.expect("request")
    }

    pub async fn chat(&self, body: serde_json::Value) -> reqwest::Response {
        self.http
            .post(self.url("/v1/chat/completions"))
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    /// Stop the gateway and wait for it to drain and flush its log. Returns
    /// the data folder (with the database) for inspection.
    pub async fn stop(mut self) -> TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("join").expect("serve");
        }
        self.data
    }
}

/// A chat body.
pub fn chat_body(model: &str, stream: bool) -> serde_json::Value {
    serde_json::json!({
        "model": model,
        "stream": stream,
        "messages": [{"role": "user", "content": "Say hello to the gateway tests"}],
    })
}

/// Read an SSE body into its `data:` payloads.
pub async fn sse_data(resp: reqwest::Response) -> Vec<String> {
    let text = resp.text().await.expect("body");
    text.split("\n\n")
        .filter_map(|ev| {
            let data: Vec<&str> = ev
                .lines()
                .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
                .collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .collect()
}

/// This process's resident set size in bytes.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The real `llm-orchestrator serve` in a process of its own, for what an
/// in-process gateway cannot show (signals, exit status, the one global
/// tracing subscriber). Killed if the test ends early.
pub struct Process {
    pub child: tokio::process::Child,
    pub addr: String,
    /// Holds `gw.toml`, `gw.db`, `plugins/` and `stderr.log`.
    pub dir: TempDir,
    pub http: reqwest::Client,
}

impl Process {
    /// A temporary folder with `plugins/openai.wasm`; its `plugins` and
    /// `gw.db` paths are what [`Process::serve`]'s configuration names.
    pub fn folder() -> TempDir {
        let dir = TempDir::new().expect("tempdir");
        let plugins = dir.path().join("plugins");
        std::fs::create_dir(&plugins).expect("plugins folder");
        std::fs::copy(
            orch_test_support::component("openai.wasm"),
            plugins.join("openai.wasm"),
        )
        .expect("copy plugin");
        dir
    }

    /// Serve `config` (written to `dir/gw.toml`), with `env` adjusting the
    /// command's environment; wait until it listens and is ready.
    pub async fn serve(
        dir: TempDir,
        config: &str,
        env: impl FnOnce(&mut tokio::process::Command),
    ) -> Process {
        use tokio::io::AsyncBufReadExt;
        let file = dir.path().join("gw.toml");
        std::fs::write(&file, config).expect("write config");
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).expect("stderr.log");
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_llm-orchestrator"));
        command
            .args(["serve", "--config"])
            .arg(&file)
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true);
        env(&mut command);
        let mut child = command.spawn().expect("spawn the gateway");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let addr = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.expect("stdout line") {
                if let Some(a) = line.split("listening on http://").nth(1) {
                    return a.trim().to_string();
                }
            }
            panic!("the gateway exited before listening");
        })
        .await
        .expect("the gateway listens");
        let process = Process {
            child,
            addr,
            dir,
            http: reqwest::Client::new(),
        };
        for _ in 0..500 {
            if let Ok(r) = process.http.get(process.url("/readyz")).send().await
                && r.status() == 200
            {
                return process;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("not ready:\n{}", process.stderr());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What the gateway wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Send a signal by name (`TERM`, `INT`).
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-s", name, &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}
