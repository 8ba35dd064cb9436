//! `llm-orchestrator`: the gateway binary. Command-line parsing and wiring
//! only; the logic lives in the library crates.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A self-hosted LLM API gateway with WebAssembly provider adapters.
#[derive(Parser)]
#[command(name = "llm-orchestrator", version = version(), about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

fn version() -> &'static str {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (plugin contract llm-orchestrator:plugin@0.1.0)"
    )
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gateway.
    Serve {
        /// Configuration file.
        #[arg(long, short, env = "ORCH_CONFIG", default_value = orch_core::config::DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Validate a configuration file and exit (status 2 when invalid).
    CheckConfig {
        /// Configuration file.
        #[arg(long, short, env = "ORCH_CONFIG", default_value = orch_core::config::DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Print a new random master key for `[secrets] master_key` (base64).
    GenMasterKey,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::GenMasterKey => {
            println!("{}", orch_core::secrets::MasterKey::generate());
            ExitCode::SUCCESS
        }
        Command::CheckConfig { config } => match orch_core::config::Config::load(&config) {
            Ok(c) => {
                for w in &c.warnings {
                    eprintln!("warning: {w}");
                }
                println!(
                    "{}: ok ({} providers, {} models)",
                    config.display(),
                    c.providers.len(),
                    c.models.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
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
