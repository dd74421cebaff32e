//! `pollen collect`: the collector daemon (see [`crate::collect`]).

use crate::collect::config::CollectorFile;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

/// `pollen collect`'s arguments.
#[derive(Args)]
pub struct CollectArgs {
    /// The collector file (its `collector` section, and sinks as in a pipeline).
    #[arg(long, short, default_value = "collector.yaml")]
    config: PathBuf,
    /// Check the file and exit (0, or 78 with every problem).
    #[arg(long)]
    check: bool,
}

/// Runs the collector until SIGINT or SIGTERM.
pub fn collect(args: &CollectArgs) -> anyhow::Result<ExitCode> {
    let file = CollectorFile::load(&args.config)?;
    if args.check {
        println!(
            "{}: valid ({} inputs, {} sinks)",
            args.config.display(),
            file.collector.inputs.len(),
            file.sinks.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = super::runtime()?;
    let counters = runtime.block_on(crate::collect::run(file, super::run::shutdown_signal()))?;
    tracing::info!(
        received = counters.received.load(Ordering::Relaxed),
        forwarded = counters.forwarded.load(Ordering::Relaxed),
        rejected = counters.rejected.load(Ordering::Relaxed),
        malformed = counters.malformed.load(Ordering::Relaxed),
        "collector stopped"
    );
    Ok(ExitCode::SUCCESS)
}
