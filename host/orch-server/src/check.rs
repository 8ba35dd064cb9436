//! `check-config`: every problem of a configuration file, one line each
//! (`FILE: KEY: REASON`), and with a plugins folder whether the plugins the
//! file names are in it, loaded as the gateway loads them.

use std::path::Path;
use std::process::ExitCode;

use orch_core::config::{AvailablePlugins, Config, ConfigError, Problem};
use orch_core::contract::PluginKind;
use orch_plugin_host::{FileState, Limits, PluginHost};

/// What loading a plugins folder found.
struct Folder {
    available: AvailablePlugins,
    loaded: usize,
    /// Files refused, with the reason.
    rejected: Vec<(std::path::PathBuf, String)>,
}

/// Check `path` (and the plugin references against `plugins`, when given).
/// Problems go to stderr; 0 when valid (with a summary on stdout and
/// warnings on stderr), 2 when not.
pub fn check_config(path: &Path, plugins: Option<&Path>) -> ExitCode {
    let file = path.display();
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(ConfigError::Invalid { problems, .. }) => return invalid(path, &problems),
        Err(e @ ConfigError::Parse { .. }) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut problems = Vec::new();
    let mut summary = format!(
        "{file}: ok ({} providers, {} models, {} transformers",
        config.provider_specs.len(),
        config.model_specs.len(),
        config.transformers.len()
    );
    if let Some(dir) = plugins {
        match load_folder(dir, &config) {
            Ok(folder) => {
                for (file, reason) in &folder.rejected {
                    eprintln!("warning: {}: plugin refused: {reason}", file.display());
                }
                problems = config.plugin_problems(&folder.available);
                summary.push_str(&format!(
                    "; {} plugins loaded from {}",
                    folder.loaded,
                    dir.display()
                ));
            }
            Err(reason) => problems.push(Problem {
                key: "--plugins".into(),
                reason,
            }),
        }
    }
    for w in &config.warnings {
        eprintln!("warning: {file}: {w}");
    }
    if !problems.is_empty() {
        return invalid(path, &problems);
    }
    println!("{summary})");
    ExitCode::SUCCESS
}

fn invalid(path: &Path, problems: &[Problem]) -> ExitCode {
    for p in problems {
        eprintln!("{}: {p}", path.display());
    }
    eprintln!(
        "{}: invalid ({} problem{})",
        path.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    ExitCode::from(2)
}

/// Load `dir` as `serve` does: the same host, the configuration's limits,
/// one reload.
fn load_folder(dir: &Path, config: &Config) -> Result<Folder, String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a folder", dir.display()));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let host = PluginHost::new(dir, Limits::from_config(&config.plugins))?;
        let report = host.reload().await;
        let snapshot = host.snapshot();
        let mut available = AvailablePlugins::default();
        let mut loaded = 0;
        for (_, state) in snapshot.files() {
            let FileState::Loaded(p) = state else {
                continue;
            };
            loaded += 1;
            let by_id = match p.info.kind {
                PluginKind::Adapter => &mut available.adapters,
                PluginKind::Transformer => &mut available.transformers,
                PluginKind::Dialect => continue,
            };
            by_id
                .entry(p.info.id.clone())
                .or_default()
                .push(p.info.version.clone());
        }
        Ok(Folder {
            available,
            loaded,
            rejected: report.rejected,
        })
    })
}
