//! `pollen run`: the daemon.

use super::ConfigArgs;
use crate::pipeline::{schedule, Agent};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

/// `pollen run`'s arguments.
#[derive(Args, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Reload when the configuration files or the plugin directory change (checked
    /// every 2 s), as on SIGHUP.
    #[arg(long)]
    watch: bool,
    /// Serve the samples to Prometheus at http://ADDR/metrics (e.g. `127.0.0.1:9101`;
    /// repeatable), instead of `agent.prometheus_listen`.
    #[arg(long, value_name = "ADDR")]
    prometheus_listen: Vec<std::net::SocketAddr>,
}

/// How often `--watch` looks at the files.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// Builds the agent and polls until SIGINT or SIGTERM, then flushes and exits 0.
/// SIGHUP (and, with `--watch`, a changed file) reloads the configuration.
pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let (config, listen) = (args.config.clone(), args.prometheus_listen.clone());
    let load: schedule::LoadConfig = Box::new(move || {
        let mut pipeline = config.load()?;
        if !listen.is_empty() {
            pipeline.agent.prometheus_listen = listen.iter().map(ToString::to_string).collect();
        }
        Ok(pipeline)
    });
    let pipeline = load()?;
    for warning in &pipeline.warnings {
        tracing::warn!("{warning}");
    }
    let mut watched_dirs = vec![pipeline.agent.plugin_dir.clone()];
    watched_dirs.extend(
        pipeline
            .agent
            .pollsters_definitions_dirs
            .clone()
            .unwrap_or_else(|| vec![crate::config::dynamic::DEFAULT_DIR.into()]),
    );
    let agent = Agent::start(pipeline)?;
    tracing::info!(
        plugins = agent.plugins.all.len(),
        libvirt_uri = %agent.hypervisor.uri(),
        "pollen started"
    );
    let watched = args.watch.then(|| watched_paths(&args.config, watched_dirs));
    let runtime = super::runtime()?;
    let summary = runtime.block_on(async move {
        let (reload, reloads) = mpsc::channel(4);
        tokio::spawn(reload_on_sighup(reload.clone()));
        if let Some(paths) = watched {
            tokio::spawn(reload_on_change(paths, reload));
        }
        schedule::run(agent, shutdown_signal(), reloads, load).await
    })?;
    // Everything is flushed. What still runs on a blocking thread (a reload abandoned
    // at shutdown, compiling a plugin) is not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    tracing::info!(
        cycles = summary.cycles,
        samples = summary.samples,
        overruns = summary.overruns,
        reloads = summary.reloads,
        "pollen stopped"
    );
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM.
pub(super) async fn shutdown_signal() {
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM; only SIGINT stops the agent");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = terminate.recv() => tracing::info!("SIGTERM received"),
    }
}

/// Asks for a reload on each SIGHUP.
async fn reload_on_sighup(reload: mpsc::Sender<()>) {
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(signal) => signal,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGHUP; the configuration is not reloaded on it");
            return;
        }
    };
    while hangup.recv().await.is_some() {
        tracing::info!("SIGHUP received");
        if reload.send(()).await.is_err() {
            return;
        }
    }
}

/// The configuration files, the plugin directory and the folders of dynamic-pollster
/// definitions.
fn watched_paths(config: &ConfigArgs, dirs: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> =
        [&config.config, &config.polling, &config.pipeline].into_iter().flatten().cloned().collect();
    if paths.is_empty() {
        paths.push(PathBuf::from("pipeline.yaml"));
    }
    paths.extend(config.ceilometer_conf.clone());
    paths.extend(dirs);
    paths
}

/// Asks for a reload when what `paths` hold changes and then stays the same for one
/// more look (a file being copied in is not read half-written).
async fn reload_on_change(paths: Vec<PathBuf>, reload: mpsc::Sender<()>) {
    let mut seen = stamp(&paths);
    let mut changed: Option<Vec<Stamp>> = None;
    let mut ticker = tokio::time::interval(WATCH_EVERY);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let now = stamp(&paths);
        match &changed {
            Some(previous) if *previous == now => {
                tracing::info!("configuration or plugin files changed");
                if reload.send(()).await.is_err() {
                    return;
                }
                seen = now;
                changed = None;
            }
            _ if now != seen => changed = Some(now),
            _ => changed = None,
        }
    }
}

/// A file's path, size and modification time.
type Stamp = (PathBuf, u64, Option<SystemTime>);

/// The stamps of `paths`, and of the `*.wasm` and `*.yaml` files of those that are
/// folders.
fn stamp(paths: &[PathBuf]) -> Vec<Stamp> {
    let one = |path: &Path| -> Stamp {
        let metadata = std::fs::metadata(path).ok();
        (path.to_path_buf(), metadata.as_ref().map_or(0, |m| m.len()), metadata.and_then(|m| m.modified().ok()))
    };
    let mut stamps = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .into_iter()
                .flatten()
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|ext| ext == "wasm" || ext == "yaml"))
                .collect();
            files.sort();
            stamps.extend(files.iter().map(|f| one(f)));
        } else {
            stamps.push(one(path));
        }
    }
    stamps
}
