//! `pollen poll --once`: one cycle, samples on stdout.

use super::ConfigArgs;
use crate::pipeline::{schedule, Agent};
use crate::publish::Batch;
use clap::Args;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

/// Arguments of `pollen poll`.
#[derive(Args)]
pub struct PollArgs {
    /// Poll once and exit (the only mode for now).
    #[arg(long, required = true)]
    once: bool,
    #[command(flatten)]
    config: ConfigArgs,
}

/// Polls every source once and writes the samples as JSON lines to stdout. Exits 1
/// if a plugin failed (its samples are missing; the others are printed) or a source
/// of Pollen's file names a meter no plugin provides.
pub fn poll(args: &PollArgs) -> anyhow::Result<ExitCode> {
    debug_assert!(args.once);
    let pipeline = args.config.load()?;
    for warning in &pipeline.warnings {
        tracing::warn!("{warning}");
    }
    let agent = Agent::build(pipeline)?;
    // A meter no plugin provides polls nothing: in one cycle run to see what comes
    // out of Pollen's own file, that is a mistake, said before the cycle and in the
    // exit code. Ceilometer's `polling.yaml` lists every namespace's meters (the
    // central agent's run skips the compute ones, as ceilometer-polling does).
    let ceilometer_files = args.config.polling.is_some() || args.config.pipeline.is_some();
    let unprovided = if ceilometer_files {
        Vec::new()
    } else {
        crate::pipeline::names::unprovided_meters(&agent.pipeline, &agent.plugins)
    };
    for missing in &unprovided {
        tracing::error!(sources = %missing.sources.join(","), "no loaded plugin provides the meter `{}`{}", missing.pattern, missing.suggestion);
    }
    let output = super::runtime()?.block_on(schedule::poll_once(&agent));
    let samples: Vec<_> = output.samples.into_iter().flatten().collect();
    let count = samples.len();
    let batch =
        Batch::new(samples, Arc::clone(&agent.registry), Arc::from(agent.pipeline.agent.sample_source.as_str()));
    let mut lines = Vec::new();
    batch.write_json_lines(&mut lines);
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&lines).and_then(|_| stdout.flush()) {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        other => other?,
    }
    tracing::info!(samples = count, failures = output.failures.len(), malformed = output.malformed, "poll done");
    Ok(if output.failures.is_empty() && unprovided.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
