//! `pollen collect`: the collector daemon (see [`crate::collect`]).

use crate::collect::config::CollectorFile;
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

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
    let mut file = file;
    loop {
        let origin = file.origin.clone();
        let reloaded = Arc::new(Mutex::new(None));
        let next = reloaded.clone();
        let until = async move {
            match stop_or_reload(&origin).await {
                Some(new) => {
                    crate::service::reloading();
                    *next.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(new);
                }
                None => crate::service::stopping(),
            }
        };
        let counters = runtime.block_on(crate::collect::run(file, until))?;
        log_counters(&counters);
        let next = reloaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        match next {
            Some(new) => {
                tracing::info!(file = %new.origin.display(), "collector reloaded: it runs the new file");
                file = new;
            }
            None => return Ok(ExitCode::SUCCESS),
        }
    }
}

/// Waits for SIGINT or SIGTERM (none: stop), or for a SIGHUP whose file reads well
/// (the new file: reload). A file with problems is refused, each logged, and the
/// running one kept.
async fn stop_or_reload(origin: &Path) -> Option<CollectorFile> {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        super::run::shutdown_signal().await;
        return None;
    };
    let stop = super::run::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return None,
            _ = hangup.recv() => {
                if !origin.exists() {
                    tracing::warn!("SIGHUP: the collector runs its embedded default; there is no file to read again");
                    continue;
                }
                match CollectorFile::load(origin) {
                    Ok(file) => {
                        tracing::info!("SIGHUP: the collector drains, then runs the new file");
                        return Some(file);
                    }
                    Err(errors) => {
                        for error in &errors.0 {
                            tracing::error!("SIGHUP: reload refused, the running file is kept: {error}");
                        }
                    }
                }
            }
        }
    }
}

fn log_counters(counters: &crate::collect::Counters) {
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
}
