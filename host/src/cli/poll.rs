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
    // Ceilometer's `polling.yaml` lists every namespace's meters (the central agent's
    // run skips the compute ones, as ceilometer-polling does): no error for those.
    let ceilometer_files = args.config.polling.is_some() || args.config.pipeline.is_some();
    once(pipeline, Demands { every_meter: !ceilometer_files, clean_samples: false })
}

/// What a cycle must do to exit 0 besides no plugin failing.
pub(super) struct Demands {
    /// Every meter the sources name is provided by a plugin.
    pub every_meter: bool,
    /// Some sample came out, and none was refused (`plugins test`).
    pub clean_samples: bool,
}

/// One cycle of `pipeline`, its samples as JSON lines on stdout. Exits 1 if a plugin
/// failed, or what `demands` asks is not so (a meter no plugin provides is a mistake
/// in one cycle run to see what comes out: said before the cycle, with a
/// did-you-mean).
pub(super) fn once(pipeline: crate::config::Pipeline, demands: Demands) -> anyhow::Result<ExitCode> {
    for warning in &pipeline.warnings {
        tracing::warn!("{warning}");
    }
    let agent = Agent::build(pipeline)?;
    let unprovided = if demands.every_meter {
        crate::pipeline::names::unprovided_meters(&agent.pipeline, &agent.plugins)
    } else {
        Vec::new()
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
    let unclean = demands.clean_samples && (count == 0 || output.malformed > 0);
    if demands.clean_samples && count == 0 {
        tracing::error!(
            "no sample came out: did its discoverers find resources (see above), and does it return samples?"
        );
    }
    let failed = !output.failures.is_empty() || !unprovided.is_empty() || unclean;
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
