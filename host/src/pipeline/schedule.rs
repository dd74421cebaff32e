//! The daemon's schedule: one polling task per distinct interval, each running a
//! cycle at start and then every interval, until shutdown; then the publishers are
//! flushed.

use super::cycle::{discoverers_by_source, polled_meters, run_cycle, stream_cycle, CycleOutput};
use super::Agent;
use crate::config::{ConfigErrors, Pipeline, Source};
use crate::coordination::Coordinator;
use crate::health::Health;
use crate::publish::{Batch, PublisherHandle};
use crate::sample::Sample;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

/// How long shutdown waits for a cycle in progress, then for each publisher.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// Publishers by sink name.
type Sinks = HashMap<String, Vec<PublisherHandle>>;

/// What a run did, reported at exit. Cycles, overruns and reloads are the counters
/// `/metrics` serves ([`crate::self_metrics`]), read when the run ends.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunSummary {
    /// Cycles completed.
    pub cycles: u64,
    /// Samples handed to publishers.
    pub samples: u64,
    /// Cycles that took longer than their interval (the next one started late).
    pub overruns: u64,
    /// Configurations reloaded.
    pub reloads: u64,
}

impl RunSummary {
    /// The run's `samples`, with the process's cycles, overruns and reloads.
    fn with_counters(samples: u64) -> Self {
        use crate::self_metrics::SelfMetrics;
        let metrics = crate::self_metrics::get();
        Self {
            cycles: SelfMetrics::total(&metrics.cycles),
            samples,
            overruns: SelfMetrics::total(&metrics.cycle_overruns),
            reloads: metrics.reloads.with_label_values(&["applied"]).get(),
        }
    }
}

/// Reads the configuration again (for a reload).
pub type LoadConfig = Box<dyn Fn() -> Result<Pipeline, ConfigErrors> + Send + Sync>;

/// Polls until `shutdown` resolves, then lets the cycles in progress finish, flushes
/// every sink's transformers and publishers, and returns.
///
/// Each message on `reloads` (SIGHUP, `--watch`) reads the configuration again with
/// `load` and, if it is valid, switches to it: the cycles in progress finish, plugins
/// and sinks that did not change are kept with their state, transformers that are
/// replaced are flushed first, publishers whose URL is kept keep their queue, and the
/// others are flushed and stopped. An invalid configuration is refused with its
/// errors and the running one kept.
pub async fn run(
    agent: Agent,
    shutdown: impl Future<Output = ()>,
    mut reloads: mpsc::Receiver<()>,
    load: LoadConfig,
) -> anyhow::Result<RunSummary> {
    let health = Arc::new(Health::new());
    if let Some(exporter) = &agent.exporter {
        let addresses = agent.pipeline.agent.prometheus_addresses();
        let endpoint = crate::publish::prometheus::AgentEndpoint { exporter: exporter.clone(), health: health.clone() };
        crate::publish::prometheus::serve(Arc::new(endpoint), &addresses).await?;
    }
    let socket = agent.pipeline.agent.heartbeat_socket();
    if let Some(path) = &socket {
        crate::health::serve_socket(path.clone(), health.clone()).await?;
    }
    let mut sinks = Arc::new(agent.start_publishers().await?);
    report_publishers(&health, &sinks);
    let coordinator = match &agent.pipeline.agent.coordination {
        Some(settings) => Some(Coordinator::start(settings)?),
        None => None,
    };
    let mut agent = Arc::new(agent);
    if let Some(coordinator) = &coordinator {
        join(coordinator, &agent, &health).await;
    }
    let mut running = Tasks::start(&agent, &sinks, coordinator.as_ref(), &health);
    // Samples handed to the sinks; the rest of the summary is the metrics' counters.
    let mut samples = 0;
    crate::service::feed_watchdog();
    crate::service::ready(&format!(
        "polling: {} plugins, {} sources",
        agent.plugins.all.len(),
        agent.pipeline.sources.len()
    ));
    // Pollsters still compiling join by a reload of their own once compiled.
    let (compiled, mut compiled_now) = mpsc::channel(1);
    reload_when_compiled(&agent, &compiled);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(()) = async {
                tokio::select! {
                    reload = reloads.recv() => reload,
                    compiled = compiled_now.recv() => {
                        tracing::info!("the plugins compiled in the background are ready: reloading to add them");
                        compiled
                    }
                }
            } => {
                // A shutdown asked for while the new configuration loads wins: the
                // reload is abandoned (its plugins are loading on a blocking thread).
                crate::service::reloading();
                let prepared = tokio::select! {
                    prepared = prepare_reload(&agent, &load) => prepared,
                    () = &mut shutdown => {
                        tracing::info!("shutdown asked for during a reload; the reload is abandoned");
                        break;
                    }
                };
                let Some((next, started)) = prepared else {
                    crate::self_metrics::get().reloads.with_label_values(&["refused"]).inc();
                    crate::service::ready("polling; the last reload was refused (see the log)");
                    continue;
                };
                if next.pipeline.agent.coordination != agent.pipeline.agent.coordination {
                    tracing::warn!("agent.coordination changed: the new settings are used after a restart");
                }
                running.stop(&mut samples).await;
                sinks = Arc::new(switch_sinks(&agent, &next, sinks, started).await?);
                report_publishers(&health, &sinks);
                agent = Arc::new(next);
                reload_when_compiled(&agent, &compiled);
                if let Some(coordinator) = &coordinator {
                    join(coordinator, &agent, &health).await;
                }
                running = Tasks::start(&agent, &sinks, coordinator.as_ref(), &health);
                crate::self_metrics::get().reloads.with_label_values(&["applied"]).inc();
                tracing::info!(plugins = agent.plugins.all.len(), sources = agent.pipeline.sources.len(),
                    sinks = agent.pipeline.sinks.len(), "configuration reloaded");
                crate::service::ready(&format!("polling: {} plugins, {} sources (reloaded)", agent.plugins.all.len(), agent.pipeline.sources.len()));
            }
        }
    }
    tracing::info!("shutting down: finishing cycles in progress, then flushing transformers and publishers");
    crate::service::stopping();
    running.stop(&mut samples).await;
    // The others take this agent's share at their next cycle.
    if let Some(coordinator) = coordinator {
        coordinator.leave().await;
    }
    // What the transformers still hold goes out before the publishers stop.
    for (name, chain) in &agent.chains {
        flush_chain(&agent, &sinks, name, chain.clone()).await;
    }
    if let Some(path) = socket {
        let _ = std::fs::remove_file(path);
    }
    let sinks = Arc::try_unwrap(sinks).map_err(|_| anyhow::anyhow!("publishers still in use at shutdown"))?;
    for handle in sinks.into_values().flatten() {
        stop_publisher(handle).await;
    }
    Ok(RunSummary::with_counters(samples))
}

/// Asks for a reload (on `compiled`) once the plugins still compiling when `agent`
/// was made are compiled, so that they join.
fn reload_when_compiled(agent: &Agent, compiled: &mpsc::Sender<()>) {
    if agent.pending.is_empty() {
        return;
    }
    let (jobs, compiled) = (agent.pending.clone(), compiled.clone());
    tokio::task::spawn_blocking(move || {
        for job in &jobs {
            job.wait_until(None);
        }
        let _ = compiled.blocking_send(());
    });
}

/// The polling tasks of one configuration, and how to stop them.
struct Tasks {
    stop: watch::Sender<bool>,
    /// Each task's samples handed to the sinks, once it ends.
    handles: Vec<JoinHandle<u64>>,
}

impl Tasks {
    /// One polling task per interval, and the evicting task. With a coordinator, the
    /// partitioned sources poll its share.
    fn start(agent: &Arc<Agent>, sinks: &Arc<Sinks>, coordinator: Option<&Coordinator>, health: &Arc<Health>) -> Self {
        let (stop, stopped) = watch::channel(false);
        let mut by_interval: BTreeMap<u64, Vec<Source>> = BTreeMap::new();
        for source in &agent.pipeline.sources {
            let mut source = source.clone();
            if let Some(coordinator) = coordinator.filter(|_| is_partitioned(&source)) {
                source.partition = Some(coordinator.partition());
            }
            by_interval.entry(source.interval).or_default().push(source);
        }
        let eviction = resource_lifetime(by_interval.keys().copied());
        health.tasks(by_interval.keys().copied());
        let mut handles = Vec::new();
        for (interval, sources) in by_interval {
            tracing::info!(interval, sources = sources.len(), "polling task started");
            let task = Task { agent: agent.clone(), sinks: sinks.clone(), health: health.clone(), interval, sources };
            handles.push(tokio::spawn(polling_task(task, stopped.clone())));
        }
        handles.push(tokio::spawn(evicting_task(agent.clone(), eviction, stopped)));
        Self { stop, handles }
    }

    /// Lets the cycles in progress finish (cancelling one that takes longer than the
    /// shutdown deadline) and adds the samples the tasks handed to the sinks to `samples`.
    async fn stop(self, samples: &mut u64) {
        let _ = self.stop.send(true);
        for mut task in self.handles {
            match tokio::time::timeout(SHUTDOWN_DEADLINE, &mut task).await {
                Ok(Ok(done)) => *samples += done,
                Ok(Err(error)) => tracing::error!(%error, "a polling task failed"),
                Err(_) => {
                    task.abort();
                    // Waiting for the cancelled task releases its hold on the publishers.
                    let _ = task.await;
                    tracing::error!("a cycle did not finish within {SHUTDOWN_DEADLINE:?}; it was cancelled");
                }
            }
        }
    }
}

/// Joins the groups of `agent`'s partitioned sources, and says so to `health`.
async fn join(coordinator: &Coordinator, agent: &Agent, health: &Health) {
    let groups = partition_groups(agent);
    health.coordination(coordinator.partition(), groups.iter().cloned().collect());
    coordinator.join(groups).await;
}

/// Lets `health` read the publishers of `sinks` while they run (without keeping them
/// from stopping).
fn report_publishers(health: &Health, sinks: &Arc<Sinks>) {
    let sinks = Arc::downgrade(sinks);
    health.report_publishers(move || {
        let Some(sinks) = sinks.upgrade() else { return Vec::new() };
        let mut statuses: Vec<_> =
            sinks.iter().flat_map(|(sink, handles)| handles.iter().map(move |handle| handle.status(sink))).collect();
        statuses.sort_by(|a, b| (&a.sink, &a.url).cmp(&(&b.sink, &b.url)));
        statuses
    });
}

/// Whether a source takes part in coordination (when the agent has it): unless it
/// says `partitioned: false`.
fn is_partitioned(source: &Source) -> bool {
    source.partitioned.unwrap_or(true)
}

/// The groups this agent joins: the discoverers of its partitioned sources, and the
/// static resources' group if one of them lists some.
fn partition_groups(agent: &Agent) -> BTreeSet<String> {
    let sources = &agent.pipeline.sources;
    let by_source = discoverers_by_source(&agent.plugins, sources);
    let mut groups = BTreeSet::new();
    for (source, discoverers) in sources.iter().zip(by_source) {
        if is_partitioned(source) {
            groups.extend(discoverers);
            if !source.resources.is_empty() {
                groups.insert(crate::coordination::STATIC_GROUP.to_string());
            }
        }
    }
    groups
}

/// Publishers started for a new configuration: by sink, by URL.
type StartedPublishers = HashMap<(String, String), PublisherHandle>;

/// Reads and builds the new configuration, and starts the publishers it adds; `None`
/// (with every error logged) if any of that fails: the running configuration stays.
async fn prepare_reload(agent: &Arc<Agent>, load: &LoadConfig) -> Option<(Agent, StartedPublishers)> {
    tracing::info!("reloading the configuration and the plugin directory");
    let pipeline = match load() {
        Ok(pipeline) => pipeline,
        Err(errors) => {
            tracing::error!("the new configuration is refused; the running one is kept: {errors}");
            return None;
        }
    };
    for warning in &pipeline.warnings {
        tracing::warn!("{warning}");
    }
    let current = agent.clone();
    let next = match tokio::task::spawn_blocking(move || current.rebuild(pipeline)).await {
        Ok(Ok(next)) => next,
        Ok(Err(error)) => {
            tracing::error!("the new configuration is refused; the running one is kept: {error}");
            return None;
        }
        Err(error) => {
            tracing::error!(%error, "reloading failed; the running configuration is kept");
            return None;
        }
    };
    let context = next.pipeline.agent.publish_context();
    let mut started = StartedPublishers::new();
    for sink in &next.pipeline.sinks {
        for url in &sink.publishers {
            if is_kept(agent, &next, &sink.name, url) {
                continue;
            }
            match PublisherHandle::start_for_sink(&sink.name, url, &context).await {
                Ok(handle) => {
                    started.insert((sink.name.clone(), url.clone()), handle);
                }
                Err(error) => {
                    tracing::error!("the new configuration is refused; the running one is kept: {error}");
                    for handle in started.into_values() {
                        stop_publisher(handle).await;
                    }
                    return None;
                }
            }
        }
    }
    Some((next, started))
}

/// Whether a sink's publisher carries over to the new configuration as it runs.
fn is_kept(current: &Agent, next: &Agent, sink: &str, url: &str) -> bool {
    let same_secret = current.pipeline.agent.telemetry_secret() == next.pipeline.agent.telemetry_secret();
    same_secret && current.pipeline.sinks.iter().any(|s| s.name == sink && s.publishers.iter().any(|u| u == url))
}

/// Moves from the current sinks to the next ones: transformer chains that are not
/// kept are flushed into their publishers, publishers that are kept move over with
/// their queue, new ones join, and the rest are flushed and stopped.
async fn switch_sinks(
    current: &Arc<Agent>,
    next: &Agent,
    sinks: Arc<Sinks>,
    mut started: StartedPublishers,
) -> anyhow::Result<Sinks> {
    for (name, chain) in &current.chains {
        let kept = next.chains.get(name).is_some_and(|n| Arc::ptr_eq(n, chain));
        if !kept {
            flush_chain(current, &sinks, name, chain.clone()).await;
        }
    }
    let mut old = Arc::try_unwrap(sinks).map_err(|_| anyhow::anyhow!("publishers still in use during a reload"))?;
    let context = next.pipeline.agent.publish_context();
    let mut new = Sinks::new();
    for sink in &next.pipeline.sinks {
        let mut handles = Vec::with_capacity(sink.publishers.len());
        for url in &sink.publishers {
            let kept = is_kept(current, next, &sink.name, url)
                .then(|| {
                    old.get_mut(&sink.name)
                        .and_then(|list| list.iter().position(|h| h.url() == url).map(|i| list.remove(i)))
                })
                .flatten();
            match kept.or_else(|| started.remove(&(sink.name.clone(), url.clone()))) {
                Some(handle) => handles.push(handle),
                // The same URL listed more often than before: one more of it.
                None => match PublisherHandle::start_for_sink(&sink.name, url, &context).await {
                    Ok(handle) => handles.push(handle),
                    Err(error) => tracing::error!(sink = %sink.name, %error, "cannot start a publisher after a reload"),
                },
            }
        }
        new.insert(sink.name.clone(), handles);
    }
    for handle in old.into_values().flatten().chain(started.into_values()) {
        stop_publisher(handle).await;
    }
    Ok(new)
}

/// Sends what a sink's transformers hold to its publishers (at shutdown, or when a
/// reload replaces them).
async fn flush_chain(agent: &Agent, sinks: &Sinks, name: &str, chain: Arc<super::chain::Chain>) {
    if chain.is_empty() {
        return;
    }
    let registry = agent.registry.clone();
    match tokio::task::spawn_blocking(move || chain.finish(&registry)).await {
        Ok(output) => {
            let longest = agent.pipeline.sources.iter().map(|s| s.interval).max().unwrap_or(60);
            let flushed = send(agent, sinks, name, output.samples, Duration::from_secs(longest));
            tracing::info!(sink = %name, flushed, "transformers flushed");
        }
        Err(error) => tracing::error!(sink = %name, %error, "flushing the transformers failed"),
    }
}

/// Flushes a publisher's queue and stops it.
async fn stop_publisher(handle: PublisherHandle) {
    let url = handle.url().to_string();
    let delivery = handle.shutdown(SHUTDOWN_DEADLINE).await;
    tracing::info!(publisher = %url, sent = delivery.sent, dropped = delivery.dropped, "publisher stopped");
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
async fn evicting_task(agent: Arc<Agent>, lifetime: Duration, mut stopped: watch::Receiver<bool>) -> u64 {
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
    0
}

/// A polling task's metrics, their label resolved once.
struct CycleFigures {
    cycles: prometheus::IntCounter,
    overruns: prometheus::IntCounter,
    seconds: prometheus::Histogram,
}

impl CycleFigures {
    fn of(interval: u64) -> Self {
        let metrics = crate::self_metrics::get();
        let label = interval.to_string();
        Self {
            cycles: metrics.cycles.with_label_values(&[&label]),
            overruns: metrics.cycle_overruns.with_label_values(&[&label]),
            seconds: metrics.cycle_seconds.with_label_values(&[&label]),
        }
    }
}

/// What one polling task runs: the sources of one interval.
struct Task {
    agent: Arc<Agent>,
    sinks: Arc<Sinks>,
    health: Arc<Health>,
    interval: u64,
    sources: Vec<Source>,
}

/// Runs the cycles of one interval until told to stop; returns the samples it handed
/// to the sinks.
async fn polling_task(task: Task, mut stopped: watch::Receiver<bool>) -> u64 {
    let Task { agent, sinks, health, interval, sources } = task;
    let meters = polled_meters(&agent.plugins, &sources);
    let period = Duration::from_secs(interval);
    let jitter = start_delay(agent.pipeline.agent.start_jitter);
    if !jitter.is_zero() {
        tracing::info!(interval, delay_ms = jitter.as_millis() as u64, "first cycle delayed (start_jitter)");
        tokio::select! {
            () = tokio::time::sleep(jitter) => {}
            _ = stopped.changed() => return 0,
        }
    }
    let mut ticker = tokio::time::interval(period);
    // A cycle that overruns its interval makes the next one wait; cycles never pile up.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut handed = 0;
    let figures = CycleFigures::of(interval);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stopped.changed() => break,
        }
        let started = Instant::now();
        // Each chunk of the cycle goes to the sinks as soon as it is polled.
        let published = AtomicUsize::new(0);
        let deliver = |samples| {
            let (agent, sinks, sources, published) = (&agent, &sinks, &sources, &published);
            async move {
                published.fetch_add(publish(agent, sinks, sources, samples).await, Ordering::Relaxed);
            }
        };
        health.cycle_started(interval, meters.iter().cloned());
        let output = stream_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &sources, deliver).await;
        health.cycle_done(interval, &output);
        let samples = published.into_inner();
        let elapsed = started.elapsed();
        handed += samples as u64;
        tracing::info!(interval, samples, elapsed_ms = elapsed.as_millis() as u64, "cycle done");
        figures.cycles.inc();
        figures.seconds.observe(elapsed.as_secs_f64());
        if elapsed > period {
            figures.overruns.inc();
            tracing::warn!(
                interval,
                elapsed_ms = elapsed.as_millis() as u64,
                overruns = figures.overruns.get(),
                "cycle overran its interval; the next one starts late"
            );
        }
        if *stopped.borrow() {
            break;
        }
    }
    handed
}

/// Hands samples of a cycle (per source) to each sink their sources name: through the
/// sink's transformers, then to its publishers. Returns how many samples were
/// published.
async fn publish(agent: &Arc<Agent>, sinks: &Sinks, sources: &[Source], samples: Vec<Vec<Sample>>) -> usize {
    let interval = Duration::from_secs(sources.iter().map(|s| s.interval).max().unwrap_or(60));
    let mut per_sink: BTreeMap<&str, Vec<Sample>> = BTreeMap::new();
    for (source, samples) in sources.iter().zip(&samples) {
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
        total += send(agent, sinks, sink, samples, interval);
    }
    total
}

/// Sends samples of sources polled every `interval` to one sink's publishers (and
/// to the Prometheus endpoint); returns how many.
fn send(agent: &Agent, sinks: &Sinks, sink: &str, samples: Vec<Sample>, interval: Duration) -> usize {
    let (Some(handles), false) = (sinks.get(sink), samples.is_empty()) else {
        return 0;
    };
    if let Some(exporter) = &agent.exporter {
        exporter.record(&samples, interval);
    }
    let count = samples.len();
    let batch =
        Arc::new(Batch::new(samples, agent.registry.clone(), Arc::from(agent.pipeline.agent.sample_source.as_str())));
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
