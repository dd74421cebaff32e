//! The daemon's schedule: one polling task per distinct interval, each running a
//! cycle at start and then every interval, until shutdown; then the publishers are
//! flushed.

use super::cycle::{run_cycle, CycleOutput};
use super::Agent;
use crate::config::Source;
use crate::publish::{Batch, PublisherHandle};
use crate::sample::Sample;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

/// How long shutdown waits for a cycle in progress, then for each publisher.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// Publishers by sink name.
type Sinks = HashMap<String, Vec<PublisherHandle>>;

/// What a run did, reported at exit.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunSummary {
    /// Cycles completed.
    pub cycles: u64,
    /// Samples handed to publishers.
    pub samples: u64,
    /// Cycles that took longer than their interval (the next one started late).
    pub overruns: u64,
}

/// Polls until `shutdown` resolves, then lets the cycles in progress finish, flushes
/// every publisher and returns.
pub async fn run(agent: Agent, shutdown: impl Future<Output = ()>) -> anyhow::Result<RunSummary> {
    let sinks = Arc::new(agent.start_publishers().await?);
    let (stop, stopped) = watch::channel(false);
    let mut by_interval: BTreeMap<u64, Vec<Source>> = BTreeMap::new();
    for source in &agent.pipeline.sources {
        by_interval.entry(source.interval).or_default().push(source.clone());
    }
    let eviction = resource_lifetime(by_interval.keys().copied());
    let agent = Arc::new(agent);
    let mut tasks = Vec::new();
    for (interval, sources) in by_interval {
        tracing::info!(interval, sources = sources.len(), "polling task started");
        tasks.push(tokio::spawn(polling_task(agent.clone(), sinks.clone(), interval, sources, stopped.clone())));
    }
    tasks.push(tokio::spawn(evicting_task(agent.clone(), eviction, stopped.clone())));

    shutdown.await;
    tracing::info!("shutting down: finishing cycles in progress, then flushing publishers");
    let _ = stop.send(true);
    let mut summary = RunSummary::default();
    for mut task in tasks {
        match tokio::time::timeout(SHUTDOWN_DEADLINE, &mut task).await {
            Ok(Ok(done)) => {
                summary.cycles += done.cycles;
                summary.samples += done.samples;
                summary.overruns += done.overruns;
            }
            Ok(Err(error)) => tracing::error!(%error, "a polling task failed"),
            Err(_) => {
                task.abort();
                // Waiting for the cancelled task releases its hold on the publishers.
                let _ = task.await;
                tracing::error!("a cycle did not finish within {SHUTDOWN_DEADLINE:?}; it was cancelled");
            }
        }
    }
    // What the transformers still hold goes out before the publishers stop.
    for (name, chain) in &agent.chains {
        if chain.is_empty() {
            continue;
        }
        let (chain, registry) = (chain.clone(), agent.registry.clone());
        let finished = tokio::task::spawn_blocking(move || chain.finish(&registry)).await;
        match finished {
            Ok(output) => {
                let flushed = output.samples.len();
                send(&agent, &sinks, name, output.samples);
                tracing::info!(sink = %name, flushed, "transformers flushed");
            }
            Err(error) => tracing::error!(sink = %name, %error, "flushing the transformers failed"),
        }
    }
    let sinks = Arc::try_unwrap(sinks).map_err(|_| anyhow::anyhow!("publishers still in use at shutdown"))?;
    for handle in sinks.into_values().flatten() {
        let url = handle.url().to_string();
        let delivery = handle.shutdown(SHUTDOWN_DEADLINE).await;
        tracing::info!(publisher = %url, sent = delivery.sent, dropped = delivery.dropped, "publisher stopped");
    }
    Ok(summary)
}

/// A random delay between 0 and `jitter` seconds.
fn start_delay(jitter: f64) -> Duration {
    if jitter <= 0.0 {
        return Duration::ZERO;
    }
    Duration::from_secs_f64(fastrand::f64() * jitter)
}

/// How long a resource that no cycle sees any more (a deleted instance) stays in the
/// registry: five of the longest polling intervals, at least ten minutes, so that
/// batches still queued for a slow publisher resolve.
fn resource_lifetime(intervals: impl Iterator<Item = u64>) -> Duration {
    Duration::from_secs(intervals.max().unwrap_or(60).saturating_mul(5).max(600))
}

/// Evicts, every minute, the resources no cycle has seen for `lifetime`.
async fn evicting_task(agent: Arc<Agent>, lifetime: Duration, mut stopped: watch::Receiver<bool>) -> RunSummary {
    let mut ticker = tokio::time::interval(Duration::from_secs(60));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stopped.changed() => break,
        }
        let evicted = agent.registry.evict_resources_unused_for(lifetime);
        if evicted > 0 {
            tracing::info!(evicted, lifetime_s = lifetime.as_secs(), "resources no longer seen were forgotten");
        }
    }
    RunSummary::default()
}

/// Runs the cycles of one interval until told to stop.
async fn polling_task(
    agent: Arc<Agent>,
    sinks: Arc<Sinks>,
    interval: u64,
    sources: Vec<Source>,
    mut stopped: watch::Receiver<bool>,
) -> RunSummary {
    let period = Duration::from_secs(interval);
    let jitter = start_delay(agent.pipeline.agent.start_jitter);
    if !jitter.is_zero() {
        tracing::info!(interval, delay_ms = jitter.as_millis() as u64, "first cycle delayed (start_jitter)");
        tokio::select! {
            () = tokio::time::sleep(jitter) => {}
            _ = stopped.changed() => return RunSummary::default(),
        }
    }
    let mut ticker = tokio::time::interval(period);
    // A cycle that overruns its interval makes the next one wait; cycles never pile up.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut summary = RunSummary::default();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stopped.changed() => break,
        }
        let started = Instant::now();
        let output = run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &sources).await;
        let samples = publish(&agent, &sinks, &sources, output).await;
        let elapsed = started.elapsed();
        summary.cycles += 1;
        summary.samples += samples as u64;
        tracing::info!(interval, samples, elapsed_ms = elapsed.as_millis() as u64, "cycle done");
        if elapsed > period {
            summary.overruns += 1;
            tracing::warn!(
                interval,
                elapsed_ms = elapsed.as_millis() as u64,
                overruns = summary.overruns,
                "cycle overran its interval; the next one starts late"
            );
        }
        if *stopped.borrow() {
            break;
        }
    }
    summary
}

/// Hands a cycle's samples to each sink its sources name: through the sink's
/// transformers, then to its publishers. Returns how many samples were published.
async fn publish(agent: &Arc<Agent>, sinks: &Sinks, sources: &[Source], output: CycleOutput) -> usize {
    let mut per_sink: BTreeMap<&str, Vec<Sample>> = BTreeMap::new();
    for (source, samples) in sources.iter().zip(&output.samples) {
        for sink in &source.sinks {
            per_sink.entry(sink.as_str()).or_default().extend_from_slice(samples);
        }
    }
    let mut total = 0;
    for (sink, samples) in per_sink {
        let samples = match agent.chains.get(sink).filter(|chain| !chain.is_empty()) {
            Some(chain) => {
                let (chain, registry) = (chain.clone(), agent.registry.clone());
                match tokio::task::spawn_blocking(move || chain.run(samples, &registry)).await {
                    Ok(output) => output.samples,
                    Err(error) => {
                        tracing::error!(sink, %error, "the transformer chain's task failed; this batch is lost for this sink");
                        continue;
                    }
                }
            }
            None => samples,
        };
        total += send(agent, sinks, sink, samples);
    }
    total
}

/// Sends samples to one sink's publishers; returns how many.
fn send(agent: &Agent, sinks: &Sinks, sink: &str, samples: Vec<Sample>) -> usize {
    let (Some(handles), false) = (sinks.get(sink), samples.is_empty()) else {
        return 0;
    };
    let count = samples.len();
    let batch = Arc::new(Batch {
        samples,
        registry: agent.registry.clone(),
        source: Arc::from(agent.pipeline.agent.sample_source.as_str()),
    });
    for handle in handles {
        handle.send(batch.clone());
    }
    count
}

/// One cycle over every source, whatever its interval (`pollen poll --once`).
pub async fn poll_once(agent: &Agent) -> CycleOutput {
    run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_delays_stay_within_the_jitter() {
        assert_eq!(start_delay(0.0), Duration::ZERO);
        for _ in 0..100 {
            assert!(start_delay(2.5) <= Duration::from_secs_f64(2.5));
        }
        let delays: std::collections::BTreeSet<_> = (0..20).map(|_| start_delay(10.0)).collect();
        assert!(delays.len() > 1, "delays differ between tasks");
        assert_eq!(resource_lifetime([60, 300].into_iter()), Duration::from_secs(1500));
        assert_eq!(resource_lifetime([10].into_iter()), Duration::from_secs(600));
    }
}
