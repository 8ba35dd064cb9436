//! `orch-bench`: measure the gateway's added latency, throughput, CPU time,
//! memory, routing with a failing target, plugin call and router decision
//! costs, and print them next to the targets.
//!
//! The table goes to stdout, progress to stderr. Missed targets do not fail
//! the run (it is a measurement); a process that fails to start or any
//! failed request does.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use orch_bench::load::{self, Api, Scenario};
use orch_bench::plugin_costs::{self, PluginCosts, TranslationCosts};
use orch_bench::procs::{self, GatewaySetup, Machine, Service};
use orch_bench::report::{
    ChainRun, Comparison, FailoverRun, LoopDeadline, Pacing, PersistenceRun, Report, Route,
    RouteComparison,
};
use orch_bench::router_cost;

/// The paced fake upstream: a slow first token, then slow chunks.
const PACING: Pacing = Pacing {
    ttft_ms: 20,
    chunk_delay_ms: 10,
    chunks: 10,
};

/// Content chunks per stream of the fast fake upstream (its default).
const FAST_CHUNKS: usize = 8;

/// Streams in flight against the paced upstream: enough samples in a short
/// window while the machine stays nearly idle.
const PACED_CONCURRENCY: usize = 4;

/// (streaming, concurrency) of the load scenarios, in the order they run.
const LOAD: [(bool, usize); 4] = [(false, 1), (true, 1), (false, 64), (true, 64)];

/// Concurrency of the failover runs (non-streaming, OpenAI API), in the
/// order they run.
const FAILOVER: [usize; 2] = [1, 64];

/// Router decisions timed per strategy, per plugin iteration (at least
/// [`router_cost::MIN_ITERATIONS`]).
const ROUTER_ITERATIONS_PER_PLUGIN_ITERATION: usize = 20;

/// The longest measured window of a route scenario: at c=1 a short window
/// already holds thousands of requests, and there are ten such windows.
const ROUTE_WINDOW: Duration = Duration::from_secs(2);
/// The longest warm-up of a route scenario.
const ROUTE_WARMUP: Duration = Duration::from_millis(500);

/// Gateway latency, throughput, CPU, memory and plugin-call benchmark.
#[derive(Debug, Parser)]
#[command(name = "orch-bench", version, about)]
struct Cli {
    /// The gateway binary (`llm-orchestrator`).
    #[arg(long)]
    gateway_bin: PathBuf,
    /// The fake upstream binary (`fake-upstream`).
    #[arg(long)]
    fake_bin: PathBuf,
    /// The folder with the bundled plugins (must hold `openai.wasm`,
    /// `anthropic.wasm`, `gemini.wasm`, `dialect-anthropic.wasm` and
    /// `dialect-gemini.wasm`).
    #[arg(long)]
    plugins: PathBuf,
    /// The folder with the fixture plugins; with `fixture_loop.wasm` there,
    /// the infinite-loop deadline overshoot is measured too.
    #[arg(long)]
    fixtures: Option<PathBuf>,
    /// Measured window per scenario, in seconds (route scenarios at c=1:
    /// at most 2 s).
    #[arg(long, default_value_t = 5)]
    duration_secs: u64,
    /// Warm-up before each measured window, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    warmup_ms: u64,
    /// Measured iterations per plugin call (the router's decision: 20 times
    /// as many, at least 50 000).
    #[arg(long, default_value_t = 5000)]
    plugin_iterations: usize,
    /// A smoke run: 1 s windows (route scenarios: 300 ms), 500 ms warm-ups
    /// (200 ms), fewer plugin iterations.
    #[arg(long)]
    quick: bool,
    /// The PostgreSQL server of the persistence runs (a database
    /// `orch_bench` is created afresh on it).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres: String,
    /// The MySQL / MariaDB server of the persistence runs.
    #[arg(long, default_value = "mysql://root@127.0.0.1:3306")]
    mysql: String,
    /// The Redis of the persistence run with shared limits.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis: String,
}

/// How long and how often to measure.
#[derive(Debug, Clone, Copy)]
struct Effort {
    window: Duration,
    warmup: Duration,
    /// The window of each route scenario.
    route_window: Duration,
    /// The warm-up of each route scenario.
    route_warmup: Duration,
    plugin_iterations: usize,
    loop_runs: usize,
}

impl Effort {
    /// One client at a time against `service`, with the route scenarios'
    /// warm-up and window.
    fn single(&self, service: &Service, api: Api, model: &str, stream: bool) -> Scenario {
        Scenario {
            addr: service.addr(),
            api,
            model: model.to_owned(),
            stream,
            concurrency: 1,
            warmup: self.route_warmup,
            window: self.route_window,
            bearer: None,
        }
    }
}

impl Cli {
    fn effort(&self) -> Effort {
        if self.quick {
            Effort {
                window: Duration::from_secs(1),
                warmup: Duration::from_millis(500),
                route_window: Duration::from_millis(300),
                route_warmup: Duration::from_millis(200),
                plugin_iterations: self.plugin_iterations.min(1000),
                loop_runs: 3,
            }
        } else {
            let window = Duration::from_secs(self.duration_secs.max(1));
            let warmup = Duration::from_millis(self.warmup_ms);
            Effort {
                window,
                warmup,
                route_window: window.min(ROUTE_WINDOW),
                route_warmup: warmup.min(ROUTE_WARMUP),
                plugin_iterations: self.plugin_iterations,
                loop_runs: 10,
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    let outcome = runtime.block_on(async {
        tokio::select! {
            r = run(&cli) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    match outcome {
        Ok(report) => {
            println!("{}", report.render());
            let errors = report.errors();
            if errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                eprintln!("error: requests failed:");
                for e in errors {
                    eprintln!("  {e}");
                }
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn require_file(path: &Path, what: &str) -> Result<()> {
    if !path.is_file() {
        bail!(
            "{what} not found at {} (build it with `cargo xtask build`)",
            path.display()
        );
    }
    Ok(())
}

/// Run every measurement.
async fn run(cli: &Cli) -> Result<Report> {
    let effort = cli.effort();
    require_file(&cli.gateway_bin, "the gateway binary")?;
    require_file(&cli.fake_bin, "the fake upstream binary")?;
    for file in std::iter::once("openai.wasm").chain(plugin_costs::TRANSLATION_PLUGINS) {
        require_file(&cli.plugins.join(file), file)?;
    }
    let machine = Machine::detect();

    let (plugins, translation, loop_deadline) = measure_plugins(cli, effort).await?;
    let router = measure_router(effort).await?;

    let scratch = tempfile::tempdir().context("cannot create a temporary folder")?;
    eprintln!(
        "starting the fake upstreams and the gateway (logs in {})…",
        scratch.path().display()
    );
    let mut services = Services::start(cli, scratch.path()).await?;
    // Let start-up work that follows readiness settle before reading RSS.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = procs::memory(services.gateway.pid())?;
    let (load, paced) = measure_load(&mut services, effort).await?;
    let routes = measure_routes(&mut services, effort).await?;
    let failover = measure_failover(&mut services, effort).await?;
    let chains = measure_chains(&mut services, effort).await?;
    let after_load = procs::memory(services.gateway.pid())?;
    let (persistence, idle_warm) =
        measure_persistence(cli, &mut services, effort, scratch.path()).await?;
    services.stop().await;

    Ok(Report {
        machine,
        warmup: effort.warmup,
        window: effort.window,
        load,
        pacing: PACING,
        paced,
        routes,
        route_warmup: effort.route_warmup,
        route_window: effort.route_window,
        failover,
        chains,
        stream_chunks: FAST_CHUNKS,
        persistence,
        persistence_concurrency: PERSISTENCE_CONCURRENCY,
        idle,
        idle_warm,
        after_load,
        plugins,
        translation,
        loop_deadline,
        router,
    })
}

/// The router's decision per strategy, in-process, on a blocking thread
/// (it is pure CPU work).
async fn measure_router(effort: Effort) -> Result<Vec<(String, load::Summary)>> {
    let iterations = effort
        .plugin_iterations
        .saturating_mul(ROUTER_ITERATIONS_PER_PLUGIN_ITERATION)
        .max(router_cost::MIN_ITERATIONS);
    eprintln!("measuring the router's decision ({iterations} decisions per strategy)…");
    tokio::task::spawn_blocking(move || router_cost::measure(iterations))
        .await
        .context("the router measurement did not finish")?
        .context("router decision costs")
}

/// Plugin call costs, stream-chunk translation costs, and the infinite-loop
/// deadline when the fixture is there.
async fn measure_plugins(
    cli: &Cli,
    effort: Effort,
) -> Result<(PluginCosts, TranslationCosts, LoopDeadline)> {
    eprintln!(
        "measuring plugin calls ({} iterations each)…",
        effort.plugin_iterations
    );
    let costs = plugin_costs::measure(&cli.plugins, effort.plugin_iterations)
        .await
        .context("plugin call costs")?;
    eprintln!(
        "measuring stream-chunk translation ({} chunks per call)…",
        effort.plugin_iterations
    );
    let translation = plugin_costs::measure_translation(&cli.plugins, effort.plugin_iterations)
        .await
        .context("stream-chunk translation costs")?;
    let loop_deadline = match cli.fixtures.as_ref().map(|d| d.join("fixture_loop.wasm")) {
        None => LoopDeadline::Skipped("no --fixtures".into()),
        Some(f) if !f.is_file() => LoopDeadline::Skipped(format!("{} not found", f.display())),
        Some(f) => {
            eprintln!(
                "measuring the infinite-loop deadline ({} calls)…",
                effort.loop_runs
            );
            LoopDeadline::Measured(
                plugin_costs::deadline_overshoot(&f, effort.loop_runs)
                    .await
                    .context("infinite-loop deadline")?,
            )
        }
    };
    Ok((costs, translation, loop_deadline))
}

/// The processes under test. Each is killed when this is dropped, so an
/// error or Ctrl-C never leaves one behind.
struct Services {
    fake: Service,
    paced: Service,
    faulty: Service,
    gateway: Service,
    /// The gateway has the transformer chain models.
    chains: bool,
}

impl Services {
    /// Start the fake upstreams (fast, paced, faulty), then the gateway
    /// routing to them, with logs and the generated configuration in
    /// `scratch`.
    async fn start(cli: &Cli, scratch: &Path) -> Result<Services> {
        let fake_banner = "fake-upstream listening on http://";
        let mut fake = Service::start(
            "fake-upstream",
            &cli.fake_bin,
            &args(&["--listen", "127.0.0.1:0"]),
            fake_banner,
            scratch,
        )
        .await?;
        let paced_args = args(&[
            "--listen",
            "127.0.0.1:0",
            "--ttft-ms",
            &PACING.ttft_ms.to_string(),
            "--chunk-delay-ms",
            &PACING.chunk_delay_ms.to_string(),
            "--chunks",
            &PACING.chunks.to_string(),
        ]);
        let mut paced = Service::start(
            "fake-upstream-paced",
            &cli.fake_bin,
            &paced_args,
            fake_banner,
            scratch,
        )
        .await?;
        let faulty_args = args(&[
            "--listen",
            "127.0.0.1:0",
            "--fail-rate",
            &procs::FAULTY_FAIL_RATE.to_string(),
            "--fail-statuses",
            procs::FAULTY_FAIL_STATUSES,
        ]);
        let mut faulty = Service::start(
            "fake-upstream-faulty",
            &cli.fake_bin,
            &faulty_args,
            fake_banner,
            scratch,
        )
        .await?;
        fake.wait_ready("/v1/models").await?;
        paced.wait_ready("/v1/models").await?;
        faulty.wait_ready("/v1/models").await?;

        let config = scratch.join("bench.toml");
        let (plugins, chains) = plugins_folder(cli, scratch)?;
        let text = procs::gateway_config(&GatewaySetup {
            database: scratch.join("bench.db"),
            plugins,
            fake: fake.addr(),
            paced: paced.addr(),
            faulty: faulty.addr(),
            chains,
        });
        std::fs::write(&config, text).context("writing the gateway configuration")?;
        let gateway_args = vec![
            OsString::from("serve"),
            OsString::from("--config"),
            config.into_os_string(),
        ];
        let mut gateway = Service::start(
            "llm-orchestrator",
            &cli.gateway_bin,
            &gateway_args,
            "llm-orchestrator listening on http://",
            scratch,
        )
        .await?;
        gateway.wait_ready("/readyz").await?;
        Ok(Services {
            fake,
            paced,
            faulty,
            gateway,
            chains,
        })
    }

    /// Fail if any process has exited.
    fn check_alive(&mut self) -> Result<()> {
        self.fake.check_alive()?;
        self.paced.check_alive()?;
        self.faulty.check_alive()?;
        self.gateway.check_alive()
    }

    async fn stop(self) {
        self.gateway.stop().await;
        self.fake.stop().await;
        self.paced.stop().await;
        self.faulty.stop().await;
    }
}

/// The gateway's plugins folder: `--plugins` itself, or (when the fixtures
/// have the no-op transformer) a copy of it with that transformer added, so
/// the transformer chains can be measured.
fn plugins_folder(cli: &Cli, scratch: &Path) -> Result<(PathBuf, bool)> {
    let bundled = std::path::absolute(&cli.plugins).context("resolving --plugins")?;
    let Some(noop) = cli
        .fixtures
        .as_ref()
        .map(|d| d.join(procs::NOOP_TRANSFORMER_FILE))
        .filter(|p| p.is_file())
    else {
        return Ok((bundled, false));
    };
    let folder = scratch.join("plugins");
    std::fs::create_dir_all(&folder).context("creating the plugins folder")?;
    for entry in std::fs::read_dir(&bundled).context("reading --plugins")? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "wasm")
            && let Some(name) = path.file_name()
        {
            std::fs::copy(&path, folder.join(name))
                .with_context(|| format!("copying {}", path.display()))?;
        }
    }
    std::fs::copy(&noop, folder.join(procs::NOOP_TRANSFORMER_FILE))
        .with_context(|| format!("copying {}", noop.display()))?;
    Ok((folder, true))
}

/// Added latency of transformer chains at c=1: the gateway model without
/// transformers, then with 1 and 3 no-op transformers, non-streaming then
/// streaming. Empty without the no-op transformer.
async fn measure_chains(services: &mut Services, effort: Effort) -> Result<Vec<ChainRun>> {
    if !services.chains {
        eprintln!("transformer chains: skipped (no --fixtures with the no-op transformer)");
        return Ok(Vec::new());
    }
    let gateway_pid = services.gateway.pid();
    let cpu_probe = move || procs::cpu_time(gateway_pid);
    let chains = std::iter::once((procs::OPENAI_MODEL, 0)).chain(procs::CHAIN_MODELS);
    let mut runs = Vec::new();
    for stream in [false, true] {
        for (model, transformers) in chains.clone() {
            eprintln!(
                "[chains] {transformers} transformer(s), {}: c=1 through the gateway…",
                if stream { "stream" } else { "non-stream" }
            );
            let scenario = effort.single(&services.gateway, Api::OpenAi, model, stream);
            let outcome = load::run(&scenario, Some(&cpu_probe)).await?;
            services.check_alive()?;
            runs.push(ChainRun {
                transformers,
                stream,
                outcome,
            });
        }
    }
    Ok(runs)
}

/// Every load scenario direct and through the gateway, then the paced
/// stream. The gateway's CPU time is read around each of its windows.
async fn measure_load(
    services: &mut Services,
    effort: Effort,
) -> Result<(Vec<Comparison>, Comparison)> {
    let gateway_pid = services.gateway.pid();
    let cpu_probe = move || procs::cpu_time(gateway_pid);
    let scenario = |service: &Service, model: &str, stream: bool, concurrency: usize| Scenario {
        addr: service.addr(),
        api: Api::OpenAi,
        model: model.to_owned(),
        stream,
        concurrency,
        warmup: effort.warmup,
        window: effort.window,
        bearer: None,
    };
    let compare = async |direct: Scenario, through: Scenario, services: &mut Services| {
        let direct = load::run(&direct, None).await?;
        services.check_alive()?;
        let gateway = load::run(&through, Some(&cpu_probe)).await?;
        services.check_alive()?;
        anyhow::Ok(Comparison {
            stream: through.stream,
            concurrency: through.concurrency,
            direct,
            gateway,
        })
    };

    let total = LOAD.len() + 1;
    let mut comparisons = Vec::with_capacity(LOAD.len());
    for (i, (stream, concurrency)) in LOAD.into_iter().enumerate() {
        let mode = if stream { "stream" } else { "non-stream" };
        eprintln!(
            "[{}/{total}] {mode} c={concurrency}: direct, then through the gateway…",
            i + 1
        );
        let direct = scenario(&services.fake, procs::DEFAULT_MODEL, stream, concurrency);
        let through = scenario(&services.gateway, procs::OPENAI_MODEL, stream, concurrency);
        comparisons.push(compare(direct, through, services).await?);
    }

    eprintln!(
        "[{total}/{total}] paced stream c={PACED_CONCURRENCY}: direct, then through the gateway…"
    );
    let direct = scenario(
        &services.paced,
        procs::DEFAULT_MODEL,
        true,
        PACED_CONCURRENCY,
    );
    let through = scenario(
        &services.gateway,
        procs::PACED_MODEL,
        true,
        PACED_CONCURRENCY,
    );
    let paced = compare(direct, through, services).await?;
    Ok((comparisons, paced))
}

/// The gateway model behind which the fast fake upstream speaks `api`.
fn gateway_model(api: Api) -> &'static str {
    match api {
        Api::OpenAi => procs::OPENAI_MODEL,
        Api::Anthropic => procs::ANTHROPIC_MODEL,
        Api::Gemini => procs::GEMINI_MODEL,
    }
}

/// The routes between other dialects at c=1, non-streaming then streaming:
/// per mode, the fake upstream directly in each provider dialect once
/// (routes with the same provider dialect share that run), each route
/// through the gateway right after its direct run.
async fn measure_routes(services: &mut Services, effort: Effort) -> Result<Vec<RouteComparison>> {
    let gateway_pid = services.gateway.pid();
    let cpu_probe = move || procs::cpu_time(gateway_pid);
    let scenario = |service: &Service, api: Api, model: &str, stream: bool| {
        effort.single(service, api, model, stream)
    };
    let total = 2 * Route::ALL.len();
    let mut done = 0;
    let mut routes = Vec::with_capacity(total);
    for stream in [false, true] {
        let mode = if stream { "stream" } else { "non-stream" };
        let mut direct: Option<(Api, load::Outcome)> = None;
        for route in Route::ALL {
            done += 1;
            let upstream = route.upstream();
            let baseline = match direct.take() {
                Some((api, outcome)) if api == upstream => {
                    eprintln!(
                        "[route {done}/{total}] {} {mode} c=1: through the gateway (direct {} run reused)…",
                        route.label(),
                        upstream.name()
                    );
                    outcome
                }
                _ => {
                    eprintln!(
                        "[route {done}/{total}] {} {mode} c=1: direct ({}), then through the gateway…",
                        route.label(),
                        upstream.name()
                    );
                    let d = scenario(&services.fake, upstream, procs::DEFAULT_MODEL, stream);
                    let outcome = load::run(&d, None).await?;
                    services.check_alive()?;
                    outcome
                }
            };
            let through = scenario(
                &services.gateway,
                route.client(),
                gateway_model(upstream),
                stream,
            );
            let gateway = load::run(&through, Some(&cpu_probe)).await?;
            services.check_alive()?;
            routes.push(RouteComparison {
                route,
                load: Comparison {
                    stream,
                    concurrency: 1,
                    direct: baseline.clone(),
                    gateway,
                },
            });
            direct = Some((upstream, baseline));
        }
    }
    Ok(routes)
}

/// Routing across three targets at each of [`FAILOVER`]'s concurrencies,
/// non-streaming: the model whose targets are all healthy, then the one
/// with a target failing [`procs::FAULTY_FAIL_RATE`] of its requests, both
/// through the gateway with its CPU time read.
async fn measure_failover(services: &mut Services, effort: Effort) -> Result<Vec<FailoverRun>> {
    let gateway_pid = services.gateway.pid();
    let cpu_probe = move || procs::cpu_time(gateway_pid);
    let addr = services.gateway.addr();
    let scenario = |model: &str, concurrency: usize| Scenario {
        addr,
        api: Api::OpenAi,
        model: model.to_owned(),
        stream: false,
        concurrency,
        warmup: effort.warmup,
        window: effort.window,
        bearer: None,
    };
    let total = FAILOVER.len();
    let mut runs = Vec::with_capacity(total);
    for (i, concurrency) in FAILOVER.into_iter().enumerate() {
        eprintln!(
            "[failover {}/{total}] non-stream c={concurrency}: {}, then {} through the gateway…",
            i + 1,
            procs::ROUTED_CLEAN_MODEL,
            procs::ROUTED_FAULTY_MODEL
        );
        let clean = load::run(
            &scenario(procs::ROUTED_CLEAN_MODEL, concurrency),
            Some(&cpu_probe),
        )
        .await?;
        services.check_alive()?;
        let faulty = load::run(
            &scenario(procs::ROUTED_FAULTY_MODEL, concurrency),
            Some(&cpu_probe),
        )
        .await?;
        services.check_alive()?;
        runs.push(FailoverRun {
            concurrency,
            clean,
            faulty,
        });
    }
    Ok(runs)
}

/// Requests in flight in the persistence runs.
const PERSISTENCE_CONCURRENCY: usize = 16;

/// Where a persistence run keeps its logs and limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    /// SQLite, request log off: the baseline.
    Nothing,
    Sqlite,
    Postgres,
    Mysql,
    /// SQLite logging, and a client key whose limits are shared through Redis.
    SqliteRedis,
}

impl Backend {
    const ALL: [Backend; 5] = [
        Backend::Nothing,
        Backend::Sqlite,
        Backend::Postgres,
        Backend::Mysql,
        Backend::SqliteRedis,
    ];

    fn label(self) -> &'static str {
        match self {
            Backend::Nothing => "no request log",
            Backend::Sqlite => "log → SQLite",
            Backend::Postgres => "log → PostgreSQL",
            Backend::Mysql => "log → MariaDB",
            Backend::SqliteRedis => "log → SQLite, Redis limits",
        }
    }
}

/// Rounds of the persistence runs; each backend's median round is kept.
const PERSISTENCE_ROUNDS: usize = 3;

/// The same non-streaming load through one gateway per backend, the first
/// (no request log) being the baseline. The gateways run side by side and
/// the backends take turns, round after round, so that a slow spell of the
/// machine does not land on one backend; each keeps its median round. A
/// server that cannot be reached is reported, not fatal.
async fn measure_persistence(
    cli: &Cli,
    services: &mut Services,
    effort: Effort,
    scratch: &Path,
) -> Result<(Vec<PersistenceRun>, Option<procs::Memory>)> {
    let plugins = std::path::absolute(&cli.plugins).context("resolving --plugins")?;
    let mut runs = Vec::new();
    let mut gateways: Vec<Option<(Service, Option<String>)>> = Vec::new();
    let mut idle_warm = None;
    for (i, backend) in Backend::ALL.into_iter().enumerate() {
        let sqlite = format!(
            "sqlite://{}",
            scratch.join(format!("persist-{i}.db")).display()
        );
        let url = match backend {
            Backend::Postgres => fresh_database(&cli.postgres, "postgres").await,
            Backend::Mysql => fresh_database(&cli.mysql, "mysql").await,
            _ => Ok(sqlite),
        };
        let url = match url {
            Ok(url) => url,
            Err(e) => {
                eprintln!("persistence: {} skipped: {e:#}", backend.label());
                runs.push(PersistenceRun {
                    backend: backend.label().to_owned(),
                    outcome: None,
                    note: Some(format!("{e:#}")),
                });
                gateways.push(None);
                continue;
            }
        };
        let redis = (backend == Backend::SqliteRedis).then_some(cli.redis.as_str());
        let config = scratch.join(format!("persist-{i}.toml"));
        std::fs::write(
            &config,
            procs::persistence_config(
                &url,
                &plugins,
                &scratch.join(procs::PLUGIN_CACHE),
                services.fake.addr(),
                backend != Backend::Nothing,
                redis,
            ),
        )
        .context("writing a persistence configuration")?;
        let mut gateway = Service::start(
            &format!("llm-orchestrator-persist-{i}"),
            &cli.gateway_bin,
            &[
                OsString::from("serve"),
                OsString::from("--config"),
                config.into_os_string(),
            ],
            "llm-orchestrator listening on http://",
            scratch,
        )
        .await?;
        gateway.wait_ready("/readyz").await?;
        if idle_warm.is_none() {
            // The first of these starts found every plugin compiled by the
            // benchmark's first gateway.
            tokio::time::sleep(Duration::from_secs(1)).await;
            idle_warm = Some(procs::memory(gateway.pid())?);
        }
        let bearer = match redis {
            Some(_) => Some(limited_client_key(gateway.addr()).await?),
            None => None,
        };
        runs.push(PersistenceRun {
            backend: backend.label().to_owned(),
            outcome: None,
            note: None,
        });
        gateways.push(Some((gateway, bearer)));
    }

    let mut outcomes: Vec<Vec<load::Outcome>> = vec![Vec::new(); gateways.len()];
    for round in 1..=PERSISTENCE_ROUNDS {
        for (i, slot) in gateways.iter_mut().enumerate() {
            let Some((gateway, bearer)) = slot else {
                continue;
            };
            eprintln!(
                "persistence round {round}/{PERSISTENCE_ROUNDS}: {} at c={PERSISTENCE_CONCURRENCY}…",
                Backend::ALL[i].label()
            );
            let pid = gateway.pid();
            let cpu_probe = move || procs::cpu_time(pid);
            let scenario = Scenario {
                addr: gateway.addr(),
                api: Api::OpenAi,
                model: procs::OPENAI_MODEL.to_owned(),
                stream: false,
                concurrency: PERSISTENCE_CONCURRENCY,
                warmup: effort.warmup,
                window: effort.window,
                bearer: bearer.clone(),
            };
            outcomes[i].push(load::run(&scenario, Some(&cpu_probe)).await?);
            gateway.check_alive()?;
            services.check_alive()?;
        }
    }
    for ((run, mut rounds), slot) in runs.iter_mut().zip(outcomes).zip(gateways) {
        if let Some((gateway, _)) = slot {
            gateway.stop().await;
        }
        rounds.sort_by(|a, b| a.throughput().total_cmp(&b.throughput()));
        let median = rounds.len() / 2;
        run.outcome = rounds.into_iter().nth(median);
    }
    Ok((runs, idle_warm))
}

/// A database `orch_bench` created afresh on `server`; its URL.
async fn fresh_database(server: &str, admin_db: &str) -> Result<String> {
    use sqlx::Connection as _;
    let server = server.trim_end_matches('/');
    let statements = [
        "DROP DATABASE IF EXISTS orch_bench",
        "CREATE DATABASE orch_bench",
    ];
    if server.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(&format!("{server}/{admin_db}"))
            .await
            .with_context(|| format!("cannot reach {server}"))?;
        for sql in statements {
            sqlx::query(sql).execute(&mut c).await?;
        }
    } else {
        let mut c = sqlx::MySqlConnection::connect(server)
            .await
            .with_context(|| format!("cannot reach {server}"))?;
        for sql in statements {
            sqlx::query(sql).execute(&mut c).await?;
        }
    }
    Ok(format!("{server}/orch_bench"))
}

/// A client key with requests-per-minute, tokens-per-minute and budget
/// limits far above what the run sends, created through the admin API: its
/// every request goes through the limits shared in Redis.
async fn limited_client_key(addr: std::net::SocketAddr) -> Result<String> {
    let body = serde_json::json!({
        "name": "bench",
        "rpm": 100_000_000u32,
        "tpm": 4_000_000_000u32,
        "budget": {"tokens": 1_000_000_000_000u64, "period": "day"},
    });
    let answer = reqwest::Client::new()
        .post(format!("http://{addr}/admin/v1/client-keys"))
        .bearer_auth(procs::BENCH_ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .context("creating the client key")?;
    let status = answer.status();
    let text = answer.text().await.context("reading the client key")?;
    if !status.is_success() {
        bail!("creating the client key: {status} {text}");
    }
    let v: serde_json::Value = serde_json::from_str(&text).context("the client key answer")?;
    v["key"]
        .as_str()
        .map(str::to_owned)
        .context("the client key answer has no key")
}

fn args(list: &[&str]) -> Vec<OsString> {
    list.iter().map(OsString::from).collect()
}
