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
    once(pipeline, Demands { every_meter: !ceilometer_files, ..Demands::default() })
}

/// What a run must do to exit 0 besides no plugin failing, and how it runs.
pub(super) struct Demands {
    /// Every meter the sources name is provided by a plugin.
    pub every_meter: bool,
    /// Some sample came out, and none was refused (`plugins test`).
    pub clean_samples: bool,
    /// Print what the sinks' transformers make of the samples, not the samples polled.
    pub through_sinks: bool,
    /// Cycles to run (a transformer may need two to say anything).
    pub cycles: u32,
}

impl Default for Demands {
    fn default() -> Self {
        Self { every_meter: false, clean_samples: false, through_sinks: false, cycles: 1 }
    }
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
    let runtime = super::runtime()?;
    let (mut samples, mut failures, mut malformed) = (Vec::new(), 0, 0);
    for _ in 0..demands.cycles.max(1) {
        let output = runtime.block_on(schedule::poll_once(&agent));
        failures += output.failures.len();
        malformed += output.malformed;
        if !demands.through_sinks {
            samples.extend(output.samples.into_iter().flatten());
            continue;
        }
        for (source, polled) in agent.pipeline.sources.iter().zip(output.samples) {
            for chain in source.sinks.iter().filter_map(|sink| agent.chains.get(sink)) {
                let passed = chain.run(polled.clone(), &agent.registry);
                for failure in &passed.failures {
                    tracing::error!("{failure}");
                }
                failures += passed.failures.len();
                malformed += passed.malformed;
                samples.extend(passed.samples);
            }
        }
    }
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
    tracing::info!(samples = count, failures, malformed, "poll done");
    let unclean = demands.clean_samples && (count == 0 || malformed > 0);
    if demands.clean_samples && count == 0 {
        tracing::error!(
            "no sample came out: did its discoverers find resources (see above), and does it return samples?"
        );
    }
    let failed = failures > 0 || !unprovided.is_empty() || unclean;
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
