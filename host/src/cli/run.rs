//! `pollen run`: the daemon.

use super::ConfigArgs;
use crate::pipeline::{schedule, Agent};
use std::process::ExitCode;

/// Builds the agent and polls until SIGINT or SIGTERM, then flushes and exits 0.
pub fn run(args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    let pipeline = args.load()?;
    for warning in &pipeline.warnings {
        tracing::warn!("{warning}");
    }
    let agent = Agent::build(pipeline)?;
    tracing::info!(
        plugins = agent.plugins.all.len(),
        libvirt_uri = %agent.hypervisor.uri(),
        "pollen started"
    );
    let summary = super::runtime()?.block_on(schedule::run(agent, shutdown_signal()))?;
    tracing::info!(cycles = summary.cycles, samples = summary.samples, overruns = summary.overruns, "pollen stopped");
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
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
