//! `fake-upstream`: run the fake provider (OpenAI, Anthropic and Gemini
//! APIs) as a process.
//!
//! Prints `fake-upstream listening on http://ADDR` once ready; logs go to
//! stderr, filtered by `RUST_LOG` (warnings only by default).

use std::io::Write as _;
use std::net::SocketAddr;
use std::num::NonZeroUsize;

use anyhow::Context as _;
use clap::Parser;
use orch_fake_upstream::{FakeConfig, FakeUpstream};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// A fake LLM provider speaking the OpenAI (/v1/chat/completions), Anthropic
/// (/v1/messages) and Gemini (/v1beta/models/{model}:generateContent) APIs,
/// for tests and benchmarks.
#[derive(Debug, Parser)]
#[command(name = "fake-upstream", version, about)]
struct Cli {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: SocketAddr,
    /// Delay before the response headers of a generation or count-tokens
    /// request (any dialect).
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Streams: delay between the headers and the first chunk.
    #[arg(long, default_value_t = 0)]
    ttft_ms: u64,
    /// Content chunks per stream (also the output tokens of a text reply).
    #[arg(long, default_value_t = 8)]
    chunks: usize,
    /// Streams: delay before each content, tool-call or thinking chunk.
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
    /// Fraction (0.0..=1.0) of generation requests (any dialect) that fail.
    #[arg(long, default_value_t = 0.0, value_parser = parse_fraction)]
    fail_rate: f64,
    /// Statuses picked at random for failures (rendered in the request's
    /// dialect); 0 resets the connection.
    #[arg(long, value_delimiter = ',', default_value = "500")]
    fail_statuses: Vec<u16>,
    /// Streams: abort the connection after N events (SSE events, or Gemini
    /// JSON-array elements).
    #[arg(long)]
    cut_after: Option<usize>,
    /// Streams: send nothing after N events but keep the connection open.
    #[arg(long)]
    stall_after: Option<usize>,
    /// Accept only this API key: `Authorization: Bearer <KEY>` (OpenAI),
    /// `x-api-key: <KEY>` (Anthropic), `x-goog-api-key: <KEY>` or `?key=<KEY>`
    /// (Gemini). Without it any key is accepted (Anthropic and Gemini still
    /// need one).
    #[arg(long, env = "FAKE_UPSTREAM_EXPECT_KEY", hide_env_values = true)]
    expect_key: Option<String>,
    /// Served models (comma-separated); others get 404 (magic model names
    /// such as status-429 are always served).
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// OpenAI keys answered with 429 and `retry-after: 1` (comma-separated),
    /// as rate-limited keys would be.
    #[arg(long, value_delimiter = ',')]
    rate_limited_keys: Vec<String>,
    /// Tokio worker threads [default: available parallelism].
    #[arg(long)]
    workers: Option<NonZeroUsize>,
}

impl Cli {
    fn config(&self) -> FakeConfig {
        FakeConfig {
            latency_ms: self.latency_ms,
            ttft_ms: self.ttft_ms,
            chunks: self.chunks,
            chunk_delay_ms: self.chunk_delay_ms,
            fail_rate: self.fail_rate,
            fail_statuses: self.fail_statuses.clone(),
            cut_after: self.cut_after,
            stall_after: self.stall_after,
            expect_key: self.expect_key.clone(),
            rate_limited_keys: self.rate_limited_keys.clone(),
            models: self.models.clone(),
        }
    }
}

fn parse_fraction(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(fraction) if (0.0..=1.0).contains(&fraction) => Ok(fraction),
        Ok(_) => Err("must be between 0.0 and 1.0".to_owned()),
        Err(err) => Err(err.to_string()),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let workers = cli.workers.map_or_else(
        || std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
        NonZeroUsize::get,
    );
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .context("building the tokio runtime")?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let listener = TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("binding {}", cli.listen))?;
    let upstream = FakeUpstream::serve(listener, cli.config()).await?;
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "fake-upstream listening on http://{}",
        upstream.addr()
    )?;
    stdout.flush()?;
    drop(stdout);

    shutdown_signal().await?;
    tracing::info!("shutting down");
    upstream.shutdown().await;
    Ok(())
}

/// Resolves on Ctrl-C, or on SIGTERM on Unix.
async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("listening for Ctrl-C")?,
            _ = terminate.recv() => {}
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .context("listening for Ctrl-C")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_library() {
        let cli = Cli::try_parse_from(["fake-upstream"]).unwrap();
        assert_eq!(cli.config(), FakeConfig::default());
    }

    #[test]
    fn lists_are_comma_separated() {
        let cli = Cli::try_parse_from([
            "fake-upstream",
            "--fail-statuses",
            "500,503,0",
            "--models",
            "a,b",
            "--fail-rate",
            "0.5",
        ])
        .unwrap();
        assert_eq!(cli.fail_statuses, [500, 503, 0]);
        assert_eq!(cli.models, ["a", "b"]);
        assert!(Cli::try_parse_from(["fake-upstream", "--fail-rate", "2"]).is_err());
    }
}
