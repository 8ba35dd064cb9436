//! The processes under test (fake upstreams and the gateway) and what
//! `/proc` tells about them: CPU time and resident memory.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context as _, Result};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// How long a process may take to print its "listening" line. The gateway
/// compiles its plugins before it listens, which is slow on a busy machine.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a started process may take to answer its readiness probe.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Lines of a failed process's stderr quoted in the error.
const STDERR_TAIL_LINES: usize = 20;

/// A running child process that printed the address it listens on. It is
/// killed when dropped, so an error or Ctrl-C never leaves it behind.
pub struct Service {
    name: String,
    child: Child,
    pid: u32,
    addr: SocketAddr,
    stderr_log: PathBuf,
}

impl Service {
    /// Start `program args`, with stderr going to `<log_dir>/<name>.stderr.log`,
    /// and wait for the stdout line `<banner_prefix><address>`, e.g.
    /// `fake-upstream listening on http://127.0.0.1:1234`.
    pub async fn start(
        name: &str,
        program: &Path,
        args: &[OsString],
        banner_prefix: &str,
        log_dir: &Path,
    ) -> Result<Service> {
        let stderr_log = log_dir.join(format!("{name}.stderr.log"));
        let stderr = std::fs::File::create(&stderr_log)
            .with_context(|| format!("cannot create {}", stderr_log.display()))?;
        let mut command = Command::new(program);
        for (key, _) in std::env::vars_os() {
            if overrides_configuration(&key) {
                command.env_remove(&key);
            }
        }
        let mut child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {name} ({})", program.display()))?;
        let pid = child
            .id()
            .with_context(|| format!("{name} exited immediately"))?;
        let stdout = child
            .stdout
            .take()
            .with_context(|| format!("{name}: stdout was not captured"))?;
        let mut service = Service {
            name: name.to_owned(),
            child,
            pid,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr_log,
        };

        let mut lines = BufReader::new(stdout).lines();
        let found = tokio::time::timeout(START_TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(addr) = parse_banner(&line, banner_prefix) {
                    return Ok::<_, std::io::Error>(Some(addr));
                }
            }
            Ok(None)
        })
        .await;
        match found {
            Ok(Ok(Some(addr))) => service.addr = addr,
            Ok(Ok(None)) => return Err(service.failure("closed its stdout before listening")),
            Ok(Err(e)) => return Err(service.failure(&format!("stdout could not be read: {e}"))),
            Err(_) => {
                return Err(service.failure(&format!(
                    "printed no \"{banner_prefix}...\" line within {} s",
                    START_TIMEOUT.as_secs()
                )));
            }
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(service)
    }

    /// Poll `GET path` until it answers 200.
    pub async fn wait_ready(&mut self, path: &str) -> Result<()> {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        let mut last = String::from("no answer yet");
        while tokio::time::Instant::now() < deadline {
            match crate::load::get_status(self.addr, path).await {
                Ok(200) => return Ok(()),
                Ok(status) => last = format!("status {status}"),
                Err(e) => last = e,
            }
            self.check_alive()?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(self.failure(&format!(
            "GET {path} did not answer 200 within {} s (last: {last})",
            READY_TIMEOUT.as_secs()
        )))
    }

    /// Fail if the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(self.failure(&format!("exited ({status})"))),
            Err(e) => Err(self.failure(&format!("cannot be waited for: {e}"))),
        }
    }

    /// The address the process listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Kill the process and wait for it to exit.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }

    fn failure(&mut self, what: &str) -> anyhow::Error {
        let status = match self.child.try_wait() {
            Ok(Some(status)) => format!(" ({status})"),
            _ => String::new(),
        };
        let tail = stderr_tail(&self.stderr_log);
        anyhow::anyhow!(
            "{} {what}{status}; last lines of its stderr ({}):\n{tail}",
            self.name,
            self.stderr_log.display()
        )
    }
}

/// Environment variables that would change how a child is configured (the
/// gateway's `ORCH_*` overrides, the fake's `FAKE_UPSTREAM_*`, `RUST_LOG`).
/// Children run without them, so the benchmark measures exactly the
/// configuration it generated, whatever the caller's environment holds.
fn overrides_configuration(key: &std::ffi::OsStr) -> bool {
    key.to_str().is_some_and(|k| {
        k.starts_with("ORCH_") || k.starts_with("FAKE_UPSTREAM_") || k == "RUST_LOG"
    })
}

fn parse_banner(line: &str, prefix: &str) -> Option<SocketAddr> {
    line.trim()
        .strip_prefix(prefix)
        .and_then(|rest| rest.trim_end_matches('/').parse().ok())
}

fn stderr_tail(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(STDERR_TAIL_LINES);
            if lines.is_empty() {
                "  (empty)".to_owned()
            } else {
                lines[from..]
                    .iter()
                    .map(|l| format!("  {l}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
        Err(e) => format!("  (unreadable: {e})"),
    }
}

/// The model the fake upstreams serve (their default), named in direct
/// requests and as every target's upstream model.
pub const DEFAULT_MODEL: &str = "fake-model";

/// The gateway model served by the fast fake upstream's OpenAI API.
pub const OPENAI_MODEL: &str = "bench";
/// The gateway model served by the fast fake upstream's Anthropic API.
pub const ANTHROPIC_MODEL: &str = "bench-claude";
/// The gateway model served by the fast fake upstream's Gemini API.
pub const GEMINI_MODEL: &str = "bench-gemini";
/// The gateway model served by the paced fake upstream.
pub const PACED_MODEL: &str = "paced";
/// The gateway model with three healthy targets: providers `fake`, `fake-b`
/// and `fake-c`, all on the fast fake upstream, weight 1 each.
pub const ROUTED_CLEAN_MODEL: &str = "routed-clean";
/// The gateway model with three targets, one failing: providers `fake` and
/// `fake-b` on the fast fake upstream, and `faulty` on the faulty one.
pub const ROUTED_FAULTY_MODEL: &str = "routed-faulty";

/// The no-op transformer fixture's plugin id and file.
pub const NOOP_TRANSFORMER: &str = "fixture-transform-noop";
/// The no-op transformer's component in the fixtures folder.
pub const NOOP_TRANSFORMER_FILE: &str = "fixture_transform_noop.wasm";
/// Gateway models on the fast fake upstream's OpenAI API with 1 and 3
/// no-op transformers attached (`bench` has none).
pub const CHAIN_MODELS: [(&str, usize); 2] = [("chain-1", 1), ("chain-3", 3)];

/// Share of generation requests the faulty fake upstream fails.
pub const FAULTY_FAIL_RATE: f64 = 0.2;
/// The statuses the faulty fake upstream fails them with (its
/// `--fail-statuses`), picked at random.
pub const FAULTY_FAIL_STATUSES: &str = "500,503";

/// Where the generated gateway configuration points.
#[derive(Debug, Clone)]
pub struct GatewaySetup {
    /// The SQLite database file (created by the gateway).
    pub database: PathBuf,
    /// The plugins folder.
    pub plugins: PathBuf,
    /// The fast fake upstream, behind models `bench` (OpenAI API),
    /// `bench-claude` (Anthropic API) and `bench-gemini` (Gemini API).
    pub fake: SocketAddr,
    /// The paced fake upstream, behind model `paced`.
    pub paced: SocketAddr,
    /// The faulty fake upstream (it fails [`FAULTY_FAIL_RATE`] of its
    /// generation requests), one of the three targets of `routed-faulty`.
    pub faulty: SocketAddr,
    /// The plugins folder holds the no-op transformer: add the
    /// [`CHAIN_MODELS`] and their attachments.
    pub chains: bool,
}

/// The compile cache folder, beside the database: the gateways of one run
/// share it, so the first start compiles and later ones map.
pub const PLUGIN_CACHE: &str = "plugin-cache";

/// The gateway configuration for the benchmark. It listens on port 0: the
/// gateway prints the port it got, so there is no free-port race. The
/// Anthropic and Gemini providers get a literal key (the fake wants one,
/// whatever its value). The routed models' targets are on providers of their
/// own (`fake-b`, `fake-c`: the fast fake again; `faulty`), so each target
/// has its own health.
pub fn gateway_config(setup: &GatewaySetup) -> String {
    let database = toml_string(&format!("sqlite://{}", setup.database.display()));
    let plugins = toml_string(&setup.plugins.display().to_string());
    let cache = toml_string(
        &setup
            .database
            .with_file_name(PLUGIN_CACHE)
            .display()
            .to_string(),
    );
    let key = toml_string(crate::load::API_KEY);
    format!(
        r#"[server]
listen = "127.0.0.1:0"

[database]
url = {database}

[plugins]
dir = {plugins}
cache_dir = {cache}
watch = false

[logging]
filter = "warn"

[[providers]]
name = "fake"
adapter = "openai"
base_url = "http://{fake}/v1"

[[providers]]
name = "fake-anthropic"
adapter = "anthropic"
base_url = "http://{fake}"
api_keys = [{key}]

[[providers]]
name = "fake-gemini"
adapter = "gemini"
base_url = "http://{fake}"
api_keys = [{key}]

[[providers]]
name = "paced"
adapter = "openai"
base_url = "http://{paced}/v1"

[[providers]]
name = "fake-b"
adapter = "openai"
base_url = "http://{fake}/v1"

[[providers]]
name = "fake-c"
adapter = "openai"
base_url = "http://{fake}/v1"

[[providers]]
name = "faulty"
adapter = "openai"
base_url = "http://{faulty}/v1"

[[models]]
name = "{OPENAI_MODEL}"
targets = [{{ provider = "fake", model = "{DEFAULT_MODEL}", weight = 1 }}]

[[models]]
name = "{ANTHROPIC_MODEL}"
targets = [{{ provider = "fake-anthropic", model = "{DEFAULT_MODEL}", weight = 1 }}]

[[models]]
name = "{GEMINI_MODEL}"
targets = [{{ provider = "fake-gemini", model = "{DEFAULT_MODEL}", weight = 1 }}]

[[models]]
name = "{PACED_MODEL}"
targets = [{{ provider = "paced", model = "{DEFAULT_MODEL}", weight = 1 }}]

[[models]]
name = "{ROUTED_CLEAN_MODEL}"
targets = [
  {{ provider = "fake", model = "{DEFAULT_MODEL}", weight = 1 }},
  {{ provider = "fake-b", model = "{DEFAULT_MODEL}", weight = 1 }},
  {{ provider = "fake-c", model = "{DEFAULT_MODEL}", weight = 1 }},
]

[[models]]
name = "{ROUTED_FAULTY_MODEL}"
targets = [
  {{ provider = "fake", model = "{DEFAULT_MODEL}", weight = 1 }},
  {{ provider = "fake-b", model = "{DEFAULT_MODEL}", weight = 1 }},
  {{ provider = "faulty", model = "{DEFAULT_MODEL}", weight = 1 }},
]
"#,
        fake = setup.fake,
        paced = setup.paced,
        faulty = setup.faulty,
    ) + &if setup.chains {
        chain_config()
    } else {
        String::new()
    }
}

/// The [`CHAIN_MODELS`] and [`NOOP_TRANSFORMER`] attached once to each and
/// twice more to the longest chain.
fn chain_config() -> String {
    let mut text = String::new();
    let mut attached = Vec::new();
    for (model, n) in CHAIN_MODELS {
        text.push_str(&format!(
            "\n[[models]]\nname = \"{model}\"\ntargets = [{{ provider = \"fake\", model = \"{DEFAULT_MODEL}\", weight = 1 }}]\n"
        ));
        attached.push((model, n));
    }
    let most = attached.iter().map(|(_, n)| *n).max().unwrap_or(0);
    for position in 0..most {
        let models: Vec<String> = attached
            .iter()
            .filter(|(_, n)| *n > position)
            .map(|(m, _)| format!("\"{m}\""))
            .collect();
        text.push_str(&format!(
            "\n[[transformers]]\nplugin = \"{NOOP_TRANSFORMER}\"\nmodels = [{}]\n",
            models.join(", ")
        ));
    }
    text
}

/// A TOML basic string: JSON string escapes are valid TOML escapes.
/// The admin token of the persistence runs' gateways.
pub const BENCH_ADMIN_TOKEN: &str = "bench-admin-token-0123456789";

/// A gateway for one persistence run: model [`OPENAI_MODEL`] on the fast
/// fake upstream, logging to `database_url` (or not at all), client-key
/// limits shared through `redis` when given.
pub fn persistence_config(
    database_url: &str,
    plugins: &Path,
    cache: &Path,
    fake: SocketAddr,
    log: bool,
    redis: Option<&str>,
) -> String {
    let mut text = format!(
        r#"[server]
listen = "127.0.0.1:0"

[database]
url = {database}

[request_log]
enabled = {log}

[plugins]
dir = {plugins}
cache_dir = {cache}
watch = false

[logging]
filter = "warn"

[admin]
token = {token}

[[providers]]
name = "fake"
adapter = "openai"
base_url = "http://{fake}/v1"

[[models]]
name = "{OPENAI_MODEL}"
targets = [{{ provider = "fake", model = "{DEFAULT_MODEL}", weight = 1 }}]
"#,
        database = toml_string(database_url),
        plugins = toml_string(&plugins.display().to_string()),
        cache = toml_string(&cache.display().to_string()),
        token = toml_string(BENCH_ADMIN_TOKEN),
    );
    if let Some(url) = redis {
        text.push_str(&format!(
            "\n[redis]\nurl = {}\nprefix = \"orch-bench-{}\"\n",
            toml_string(url),
            std::process::id()
        ));
    }
    text
}

fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// CPU time (user + system, all threads) a process has used so far.
pub fn cpu_time(pid: u32) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let ticks = parse_stat_ticks(&stat).with_context(|| format!("unexpected {path}"))?;
    Ok(ticks_to_duration(ticks, clock_ticks_per_second()))
}

/// `utime + stime` in clock ticks from the text of `/proc/<pid>/stat`.
fn parse_stat_ticks(stat: &str) -> Result<u64> {
    // The command name (field 2) is in parentheses and may contain spaces or
    // parentheses itself; every later field follows the last ')'.
    let (_, rest) = stat
        .rsplit_once(')')
        .context("no ')' after the command name")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    let field = |i: usize, name: &str| -> Result<u64> {
        fields
            .get(i)
            .with_context(|| format!("no {name} field"))?
            .parse::<u64>()
            .with_context(|| format!("{name} is not a number"))
    };
    Ok(field(11, "utime")? + field(12, "stime")?)
}

fn ticks_to_duration(ticks: u64, per_second: u64) -> Duration {
    let per_second = u128::from(per_second.max(1));
    let nanos = u128::from(ticks) * 1_000_000_000 / per_second;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// `CLK_TCK`, the unit of the CPU times in `/proc` (100 on Linux unless
/// `getconf` says otherwise).
fn clock_ticks_per_second() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// Resident memory of a process, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// Current resident set size (`VmRSS`).
    pub rss_kib: u64,
    /// Peak resident set size so far (`VmHWM`).
    pub peak_kib: u64,
}

/// Read `VmRSS` and `VmHWM` from `/proc/<pid>/status`.
pub fn memory(pid: u32) -> Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_status_memory(&status).with_context(|| format!("unexpected {path}"))
}

fn parse_status_memory(status: &str) -> Result<Memory> {
    let kib = |key: &str| -> Result<u64> {
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .with_context(|| format!("no {key} line"))?;
        let value = line.trim().trim_end_matches("kB").trim();
        value
            .parse()
            .with_context(|| format!("{key} {value:?} is not a number of kB"))
    };
    Ok(Memory {
        rss_kib: kib("VmRSS:")?,
        peak_kib: kib("VmHWM:")?,
    })
}

/// The machine: processors available to this process and the CPU model.
#[derive(Debug, Clone)]
pub struct Machine {
    /// What `nproc` prints.
    pub nproc: usize,
    /// The CPU model from `/proc/cpuinfo`, if readable.
    pub cpu_model: Option<String>,
}

impl Machine {
    /// Describe the machine this runs on.
    pub fn detect() -> Machine {
        let nproc = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .and_then(|rest| rest.split_once(':'))
                    .map(|(_, model)| model.trim().to_owned())
            });
        Machine { nproc, cpu_model }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks_follow_the_last_parenthesis() {
        let stat = "1234 (we ird) name)) S 1 1234 1234 0 -1 4194560 1650 0 0 0 \
                    250 37 0 0 20 0 9 0 123456 1234567 890 18446744073709551615";
        assert_eq!(parse_stat_ticks(stat).unwrap(), 287);
    }

    #[test]
    fn stat_without_enough_fields_is_an_error() {
        assert!(parse_stat_ticks("1 (x) S 1 2 3").is_err());
        assert!(parse_stat_ticks("garbage").is_err());
    }

    #[test]
    fn ticks_convert_to_durations() {
        assert_eq!(ticks_to_duration(250, 100), Duration::from_millis(2500));
        assert_eq!(ticks_to_duration(3, 1000), Duration::from_millis(3));
    }

    #[test]
    fn status_memory_lines_are_parsed() {
        let status = "Name:\tllm-orchestrator\nVmPeak:\t  900000 kB\nVmHWM:\t   51234 kB\nVmRSS:\t   40960 kB\n";
        assert_eq!(
            parse_status_memory(status).unwrap(),
            Memory {
                rss_kib: 40960,
                peak_kib: 51234
            }
        );
        assert!(parse_status_memory("Name:\tx\n").is_err());
    }

    #[test]
    fn own_process_figures_are_readable() {
        let pid = std::process::id();
        let mem = memory(pid).unwrap();
        assert!(mem.rss_kib > 0 && mem.peak_kib >= mem.rss_kib);
        cpu_time(pid).unwrap();
    }

    #[test]
    fn configuration_overrides_are_recognised() {
        for key in [
            "ORCH_SERVER__LISTEN",
            "ORCH_TEST_PLUGINS",
            "FAKE_UPSTREAM_EXPECT_KEY",
            "RUST_LOG",
        ] {
            assert!(overrides_configuration(std::ffi::OsStr::new(key)), "{key}");
        }
        for key in ["PATH", "HOME", "RUST_BACKTRACE"] {
            assert!(!overrides_configuration(std::ffi::OsStr::new(key)), "{key}");
        }
    }

    #[test]
    fn banner_gives_the_address() {
        let prefix = "fake-upstream listening on http://";
        assert_eq!(
            parse_banner("fake-upstream listening on http://127.0.0.1:4321\n", prefix),
            Some(SocketAddr::from(([127, 0, 0, 1], 4321)))
        );
        assert_eq!(parse_banner("something else", prefix), None);
    }

    /// The benchmark's gateway configuration, as the gateway reads it.
    fn parsed_config(chains: bool) -> orch_core::config::Config {
        let dir = tempfile::tempdir().unwrap();
        let text = gateway_config(&GatewaySetup {
            database: dir.path().join("bench.db"),
            plugins: PathBuf::from("/tmp/plugins \"x\""),
            fake: SocketAddr::from(([127, 0, 0, 1], 1111)),
            paced: SocketAddr::from(([127, 0, 0, 1], 2222)),
            faulty: SocketAddr::from(([127, 0, 0, 1], 3333)),
            chains,
        });
        let no_env = |_: &str| None;
        orch_core::config::Config::from_toml(&dir.path().join("bench.toml"), &text, &no_env)
            .unwrap()
    }

    #[test]
    fn chains_attach_the_noop_transformer_once_per_position() {
        let config = parsed_config(true);
        assert_eq!(config.models.len(), 6 + CHAIN_MODELS.len());
        for (model, n) in CHAIN_MODELS {
            let applying = config
                .transformers
                .iter()
                .filter(|a| a.plugin == NOOP_TRANSFORMER && a.applies(model, None))
                .count();
            assert_eq!(applying, n, "{model}");
        }
        assert!(
            !config
                .transformers
                .iter()
                .any(|a| a.applies(OPENAI_MODEL, None))
        );
    }

    #[test]
    fn gateway_config_is_valid_for_the_gateway() {
        let config = parsed_config(false);
        assert_eq!(config.providers.len(), 7);
        assert_eq!(config.models.len(), 6);
        assert!(config.transformers.is_empty());
        assert_eq!(
            config.providers[0].base_url.as_str(),
            "http://127.0.0.1:1111/v1"
        );
        for (i, adapter) in [(1, "anthropic"), (2, "gemini")] {
            let provider = &config.providers[i];
            assert_eq!(provider.adapter, adapter);
            assert!(
                provider
                    .base_url
                    .as_str()
                    .starts_with("http://127.0.0.1:1111")
            );
            assert_eq!(provider.api_keys.len(), 1);
        }
        assert_eq!(
            config.providers[3].base_url.as_str(),
            "http://127.0.0.1:2222/v1"
        );
        let providers: Vec<(&str, &str, &str)> = config.providers[4..]
            .iter()
            .map(|p| (p.name.as_str(), p.adapter.as_str(), p.base_url.as_str()))
            .collect();
        assert_eq!(
            providers,
            [
                ("fake-b", "openai", "http://127.0.0.1:1111/v1"),
                ("fake-c", "openai", "http://127.0.0.1:1111/v1"),
                ("faulty", "openai", "http://127.0.0.1:3333/v1"),
            ]
        );
        assert!(config.providers[4..].iter().all(|p| p.api_keys.is_empty()));
        let names: Vec<&str> = config.models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                OPENAI_MODEL,
                ANTHROPIC_MODEL,
                GEMINI_MODEL,
                PACED_MODEL,
                ROUTED_CLEAN_MODEL,
                ROUTED_FAULTY_MODEL
            ]
        );
        let targets = |i: usize| -> Vec<(&str, &str, u32)> {
            config.models[i]
                .targets
                .iter()
                .map(|t| {
                    (
                        config.providers[t.provider].name.as_str(),
                        t.upstream_model.as_str(),
                        t.weight,
                    )
                })
                .collect()
        };
        assert_eq!(
            targets(4),
            [
                ("fake", DEFAULT_MODEL, 1),
                ("fake-b", DEFAULT_MODEL, 1),
                ("fake-c", DEFAULT_MODEL, 1),
            ]
        );
        assert_eq!(
            targets(5),
            [
                ("fake", DEFAULT_MODEL, 1),
                ("fake-b", DEFAULT_MODEL, 1),
                ("faulty", DEFAULT_MODEL, 1),
            ]
        );
        for model in &config.models[4..] {
            assert_eq!(model.strategy, orch_core::routing::Strategy::Weighted);
        }
        assert_eq!(config.plugins.dir, PathBuf::from("/tmp/plugins \"x\""));
        assert!(!config.plugins.watch);
    }

    #[tokio::test]
    async fn a_process_that_never_listens_is_reported_with_its_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let args = [
            OsString::from("-c"),
            OsString::from("echo boom >&2; exit 3"),
        ];
        let err = Service::start("shell", Path::new("/bin/sh"), &args, "never ", dir.path())
            .await
            .err()
            .unwrap();
        let text = format!("{err:#}");
        assert!(text.contains("closed its stdout"), "{text}");
        assert!(text.contains("boom"), "{text}");
    }

    #[tokio::test]
    async fn a_started_process_is_found_and_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let args = [
            OsString::from("-c"),
            OsString::from("echo 'demo listening on http://127.0.0.1:9'; exec sleep 30"),
        ];
        let mut service = Service::start(
            "demo",
            Path::new("/bin/sh"),
            &args,
            "demo listening on http://",
            dir.path(),
        )
        .await
        .unwrap();
        assert_eq!(service.addr(), SocketAddr::from(([127, 0, 0, 1], 9)));
        service.check_alive().unwrap();
        assert!(memory(service.pid()).is_ok());
        let pid = service.pid();
        service.stop().await;
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }
}
