//! `llm-orchestrator`: the gateway binary. Command-line parsing and wiring
//! only; the logic lives in the library crates.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::LazyLock;

use clap::{Parser, Subcommand};

/// A self-hosted LLM API gateway with WebAssembly provider adapters.
#[derive(Parser)]
#[command(name = "llm-orchestrator", version = version(), about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The version and every plugin contract version this build loads.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let contracts: Vec<String> = orch_core::contract::SUPPORTED_CONTRACTS
        .iter()
        .map(|v| format!("llm-orchestrator:plugin@{v}"))
        .collect();
    format!(
        "{} (plugin contracts: {})",
        env!("CARGO_PKG_VERSION"),
        contracts.join(", ")
    )
});

fn version() -> &'static str {
    VERSION.as_str()
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gateway.
    Serve {
        /// Configuration file.
        #[arg(long, short, env = "ORCH_CONFIG", default_value = orch_core::config::DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Validate a configuration file and exit: every problem as
    /// `FILE: KEY: REASON`, status 2 when there is one.
    CheckConfig {
        /// Configuration file.
        #[arg(long, short, env = "ORCH_CONFIG", default_value = orch_core::config::DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        /// Also check that this plugins folder provides every adapter,
        /// pinned adapter version and transformer the file names (loaded
        /// as `serve` loads it; refused files are warnings).
        #[arg(long)]
        plugins: Option<PathBuf>,
    },
    /// GET the gateway's `/livez` once: status 0 on 200, 1 otherwise (for
    /// container health checks).
    Healthcheck {
        /// What to probe (default: `/livez` on the `[server] listen` of the
        /// configuration, else http://127.0.0.1:8080/livez).
        #[arg(long)]
        url: Option<String>,
        /// The configuration whose listen address is probed.
        #[arg(long, short, env = "ORCH_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print a new random master key for `[secrets] master_key` (base64).
    GenMasterKey,
    /// Create and check plugins.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Create a ready-to-build plugin crate (see docs/plugins.md).
    New {
        /// What kind of plugin.
        kind: orch_server::scaffold::Kind,
        /// Its plugin id (and crate name): lower-case letters, digits, '-'.
        name: String,
        /// Where to create it (default: ./<name>); must be empty or absent.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The guest SDK (default: plugins/sdk of this checkout).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Check a built component as the gateway would load and run it, against
    /// the conformance cases of its kind (exit status 1 when a check fails).
    Check {
        /// The component (`.wasm`).
        file: PathBuf,
        /// A conformance folder laid out like plugins/conformance (default:
        /// the cases built into this binary).
        #[arg(long)]
        cases: Option<PathBuf>,
        /// A transformer's configuration (JSON object) to check and run the
        /// hooks with (default: `{}` is tried).
        #[arg(long)]
        config: Option<String>,
        /// The configuration whose `[plugins]` limits apply (default: the
        /// built-in defaults, which are the production limits).
        #[arg(long = "gateway-config")]
        gateway_config: Option<PathBuf>,
    },
}

/// `plugin check`: 0 when every check passes, 1 when one fails, 2 when
/// the check cannot run.
fn plugin_check(
    file: &std::path::Path,
    cases: Option<PathBuf>,
    transformer_config: Option<String>,
    gateway_config: Option<&std::path::Path>,
) -> ExitCode {
    if !file.is_file() {
        eprintln!("error: {} is not a file", file.display());
        return ExitCode::from(2);
    }
    let plugins = match gateway_config {
        Some(path) => match orch_core::config::Config::load(path) {
            Ok(c) => c.plugins,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        None => match orch_core::config::Config::from_toml(
            std::path::Path::new("(defaults)"),
            "",
            &|_| None,
        ) {
            Ok(c) => c.plugins,
            Err(e) => {
                eprintln!("error: the default configuration does not load: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let options = orch_plugin_check::CheckOptions {
        cases,
        limits: orch_plugin_host::Limits::from_config(&plugins),
        transformer_config,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let report = runtime.block_on(orch_plugin_check::check(file, &options));
    print!("{}", report.render());
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `healthcheck`: 0 when the gateway answers 200, 1 otherwise.
fn healthcheck(url: Option<&str>, config: Option<&std::path::Path>) -> ExitCode {
    use orch_server::healthcheck::{TIMEOUT, probe, target};
    let url = target(url, config);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{url}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(probe(&url, TIMEOUT)) {
        Ok(status) if status == 200 => {
            println!("{url}: {status}");
            ExitCode::SUCCESS
        }
        Ok(status) => {
            eprintln!("{url}: {status}");
            ExitCode::FAILURE
        }
        Err(reason) => {
            eprintln!("{url}: {reason}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Plugin {
            command:
                PluginCommand::New {
                    kind,
                    name,
                    dir,
                    sdk,
                },
        } => match orch_server::scaffold::create(kind, &name, dir.as_deref(), sdk.as_deref()) {
            Ok(dir) => {
                println!(
                    "created {}: build it with `cargo build --release` there, then check \
                     target/wasm32-wasip2/release/{}.wasm with `llm-orchestrator plugin check`",
                    dir.display(),
                    name.replace('-', "_")
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Plugin {
            command:
                PluginCommand::Check {
                    file,
                    cases,
                    config,
                    gateway_config,
                },
        } => plugin_check(&file, cases, config, gateway_config.as_deref()),
        Command::GenMasterKey => {
            println!("{}", orch_core::secrets::MasterKey::generate());
            ExitCode::SUCCESS
        }
        Command::CheckConfig { config, plugins } => {
            orch_server::check::check_config(&config, plugins.as_deref())
        }
        Command::Healthcheck { url, config } => healthcheck(url.as_deref(), config.as_deref()),
        Command::Serve { config } => {
            let config = match orch_core::config::Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(orch_server::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
