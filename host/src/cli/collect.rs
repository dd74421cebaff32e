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
    /// Without it, `collector.yaml` if there is one; else the embedded default:
    /// `udp://127.0.0.1:4952` into `database://` (SQLite in the state directory).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Check the file and exit (0, or 78 with every problem).
    #[arg(long)]
    check: bool,
}

/// The collector file used when none is named and there is no `collector.yaml`.
pub const EMBEDDED_DEFAULT: &str = "collector:
  inputs:
    - {url: \"udp://127.0.0.1:4952\", sinks: [store]}
sinks:
  - name: store
    publishers: [\"database://\"]
";

/// Runs the collector until SIGINT or SIGTERM.
pub fn collect(args: &CollectArgs) -> anyhow::Result<ExitCode> {
    let file = match &args.config {
        Some(path) => CollectorFile::load(path)?,
        None if std::path::Path::new("collector.yaml").exists() => CollectorFile::load("collector.yaml".as_ref())?,
        None => {
            tracing::info!(
                state_dir = %crate::store::state_dir().display(),
                "no collector file: udp://127.0.0.1:4952 into database:// (samples.db in the state directory)"
            );
            CollectorFile::parse(EMBEDDED_DEFAULT, "(embedded default)".as_ref())?
        }
    };
    if args.check {
        println!(
            "{}: valid ({} inputs, {} sinks)",
            file.origin.display(),
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
        acknowledged = counters.acknowledged.load(Ordering::Relaxed),
        requeued = counters.requeued.load(Ordering::Relaxed),
        dead_lettered = counters.dead_lettered.load(Ordering::Relaxed),
        "collector stopped"
    );
    Ok(ExitCode::SUCCESS)
}
