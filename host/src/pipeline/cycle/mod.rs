//! One polling cycle for a group of sources: discover, poll each pollster on the
//! union of its resources, chunk by chunk, and hand each source the samples it selects.
//!
//! A cycle is made of parts that do not wait for each other: the pollsters that read
//! the hypervisor (they share its reads, chunk by chunk), and, for the others (API
//! pollsters), one part per set of discoverers. Each part starts as soon as its own
//! discoverers are done, and each chunk's samples go on as soon as its calls are (a
//! call still running [`STRAGGLER_GRACE`] after the chunk's first ended goes on by
//! itself): a hung API costs its own pollsters' samples, never the others'.
//!
//! Every plugin call runs on a blocking thread (plugins, and the libvirt calls they
//! make through the host, never run on the async runtime's workers). A plugin that
//! fails costs only its own samples.

mod plan;
mod route;

use super::PluginSet;
use crate::bindings::types;
use crate::config::Source;
use crate::hypervisor::{CycleSnapshot, Hypervisor, HypervisorError};
use crate::plugin::{Plugin, PluginError, Polled};
use crate::registry::Registry;
use crate::sample::{Resource, Sample};
use futures::future::{BoxFuture, FutureExt, Shared};
use plan::{chunked, plan, Interned, PollPlan, Work};
use route::route;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// What one cycle produced.
#[derive(Default)]
pub struct CycleOutput {
    /// Samples per source, in the order of the sources given ([`run_cycle`]; empty
    /// from [`stream_cycle`], which hands them over as it goes).
    pub samples: Vec<Vec<Sample>>,
    /// Plugin calls that failed this cycle.
    pub failures: Vec<PluginError>,
    /// Samples refused because the plugin returned them malformed.
    pub malformed: usize,
    /// The same per plugin, with the first one's problem: logged once per cycle.
    pub refusals: Refusals,
    /// Domains whose statistics could not be read (gone, erroring, timed out).
    pub unreadable_domains: usize,
    /// Resources the discoverers reported new or changed (the others, unchanged, cost
    /// only their id).
    pub changed_resources: usize,
    /// Samples each pollster gave (0 for one whose calls failed), by plugin name.
    pub per_pollster: BTreeMap<String, usize>,
}

/// Samples refused this cycle, per plugin: how many, and the first one's problem.
pub type Refusals = PerPlugin;

/// Something counted per plugin over a cycle (refused samples, failed calls): how
/// many, and the first one's problem. Logged as one line per plugin, however many
/// chunks or samples it came from.
#[derive(Debug, Default)]
pub struct PerPlugin(BTreeMap<String, (usize, String)>);

impl PerPlugin {
    /// Counts one for `plugin`; `problem` is asked for the first only.
    fn add(&mut self, plugin: &str, problem: impl FnOnce() -> String) {
        match self.0.get_mut(plugin) {
            Some((count, _)) => *count += 1,
            None => {
                self.0.insert(plugin.to_string(), (1, problem()));
            }
        }
    }

    fn merge(&mut self, other: PerPlugin) {
        for (plugin, (count, first)) in other.0 {
            self.0.entry(plugin).and_modify(|(total, _)| *total += count).or_insert((count, first));
        }
    }

    /// How many were counted for `plugin`.
    pub fn of(&self, plugin: &str) -> usize {
        self.0.get(plugin).map_or(0, |(count, _)| *count)
    }

    /// The first problem counted for `plugin`.
    pub fn first(&self, plugin: &str) -> Option<&str> {
        self.0.get(plugin).map(|(_, first)| first.as_str())
    }

    /// One line per plugin that had samples refused.
    fn log_refused(&self) {
        for (plugin, (refused, first)) in &self.0 {
            tracing::warn!(plugin = %plugin, refused, first = %first, "malformed samples refused this cycle");
            let errors = &crate::self_metrics::get().plugin_errors;
            errors.with_label_values(&[plugin.as_str(), "refused_output"]).inc_by(*refused as u64);
        }
    }

    /// One line per pollster that had calls fail.
    fn log_failed(&self) {
        for (plugin, (calls, first)) in &self.0 {
            tracing::error!(plugin = %plugin, calls, first = %first,
                "poll failed; these resources' samples of this pollster are missing this cycle");
        }
    }
}

/// Resources read and polled together: bounds what the host holds of the hypervisor,
/// a pollster's memory, and the work under one call deadline, however many domains the
/// host runs.
pub const CHUNK: usize = 100;

/// Runs one cycle for `sources` and returns every sample with it (see
/// [`stream_cycle`], which hands them over chunk by chunk instead).
pub async fn run_cycle(
    plugins: &Arc<PluginSet>,
    hypervisor: &Arc<Hypervisor>,
    registry: &Arc<Registry>,
    sources: &[Source],
) -> CycleOutput {
    let mut samples = vec![Vec::new(); sources.len()];
    let collect = |chunk: Vec<Vec<Sample>>| {
        for (all, some) in samples.iter_mut().zip(chunk) {
            all.extend(some);
        }
        std::future::ready(())
    };
    let mut output = stream_cycle(plugins, hypervisor, registry, sources, collect).await;
    output.samples = samples;
    output
}

/// The discoverers (`name` or `name:param`) whose resources each of `sources` polls,
/// by source index: the groups a coordinated agent joins.
pub fn discoverers_by_source(plugins: &PluginSet, sources: &[Source]) -> Vec<BTreeSet<String>> {
    let mut by_source = vec![BTreeSet::new(); sources.len()];
    for plan in plan(plugins, sources) {
        for (source, names) in plan.discoverers {
            by_source[source].extend(names);
        }
    }
    by_source
}

/// The meters `sources` poll (Ceilometer's heartbeat reports them by name).
pub fn polled_meters(plugins: &PluginSet, sources: &[Source]) -> BTreeSet<String> {
    let mut meters = BTreeSet::new();
    for plan in plan(plugins, sources) {
        for (_, selected) in &plan.selections {
            meters.extend(selected.iter().map(|index| plan.pollster.info.meters[*index].meter.name.clone()));
        }
    }
    meters
}

/// How long the calls of a chunk wait for the slowest once the first has ended,
/// before the others' samples go on without it.
const STRAGGLER_GRACE: Duration = Duration::from_millis(500);

/// Parts' outputs on their way to the cycle's caller, at most this many ahead of it:
/// a part waits for its samples to be delivered before it polls much further.
const PIECES_AHEAD: usize = 2;

/// What a part of the cycle hands over at once: calls' outputs, each with the pollster
/// it comes from (none: a discoverer's), in the order of the part's work.
type Piece = Vec<(Option<String>, CycleOutput)>;

/// Each discoverer's resources this cycle, made once and awaited by every part that
/// needs them.
type Discoveries = Arc<HashMap<String, Shared<BoxFuture<'static, Arc<Vec<Interned>>>>>>;

/// Runs one cycle for `sources`, handing each chunk's samples (per source, in the
/// order of the sources) to `deliver` as soon as they are polled, and waiting for it:
/// a large host's samples are never all held at once. The output's `samples` are left
/// empty.
pub async fn stream_cycle<F, D>(
    plugins: &Arc<PluginSet>,
    hypervisor: &Arc<Hypervisor>,
    registry: &Arc<Registry>,
    sources: &[Source],
    mut deliver: F,
) -> CycleOutput
where
    F: FnMut(Vec<Vec<Sample>>) -> D,
    D: std::future::Future<Output = ()>,
{
    let snapshot = hypervisor.cycle();
    let plans = plan(plugins, sources);
    let sources: Arc<[Source]> = sources.into();
    let started = std::time::Instant::now();
    let (pieces, mut received) = mpsc::channel::<Piece>(PIECES_AHEAD);
    let discoveries = start_discoveries(plugins, &snapshot, &plans, &pieces);

    let mut parts = JoinSet::new();
    for (reads_hypervisor, plans) in parts_of(plans) {
        let part = Part {
            plans,
            reads_hypervisor,
            discoveries: discoveries.clone(),
            snapshot: snapshot.clone(),
            registry: registry.clone(),
            sources: sources.clone(),
            pieces: pieces.clone(),
        };
        parts.spawn(part.run());
    }
    // The channel closes when the last part, and the discoveries it holds, are done.
    drop((pieces, discoveries));

    let mut output = CycleOutput::default();
    let mut failed_calls = PerPlugin::default();
    let mut samples = 0;
    while let Some(piece) = received.recv().await {
        let mut polled = vec![Vec::new(); sources.len()];
        for (pollster, routed) in piece {
            if let Some(name) = &pollster {
                *output.per_pollster.entry(name.clone()).or_default() +=
                    routed.samples.iter().map(Vec::len).sum::<usize>();
                for error in routed.failures.iter().filter(|e| !matches!(e, PluginError::NoCatalog { .. })) {
                    failed_calls.add(name, || error.to_string());
                }
            }
            output.failures.extend(routed.failures);
            output.malformed += routed.malformed;
            output.changed_resources += routed.changed_resources;
            output.refusals.merge(routed.refusals);
            for (all, some) in polled.iter_mut().zip(routed.samples) {
                all.extend(some);
            }
        }
        let count = polled.iter().map(Vec::len).sum::<usize>();
        if count > 0 {
            samples += count;
            deliver(polled).await;
        }
    }
    while let Some(ended) = parts.join_next().await {
        if let Err(error) = ended {
            output.failures.push(host_task_failed(error));
        }
    }
    tracing::debug!(samples, elapsed_ms = started.elapsed().as_millis() as u64, "polled and routed");
    let unreadable = snapshot.unreadable();
    if let Some((uuid, error)) = unreadable.first() {
        tracing::warn!(domains = unreadable.len(), first = %uuid, %error,
            "some domains could not be read this cycle; only their samples are missing");
    }
    output.unreadable_domains = unreadable.len();
    failed_calls.log_failed();
    log_no_catalog(&output.failures);
    output.refusals.log_refused();
    output
}

/// One line for the cycle's calls that failed for want of a Keystone token, however
/// many plugins needed the catalog.
fn log_no_catalog(failures: &[PluginError]) {
    let mut plugins = BTreeSet::new();
    let mut first = None;
    for failure in failures {
        if let PluginError::NoCatalog { plugin, keystone } = failure {
            plugins.insert(plugin.as_str());
            first.get_or_insert(keystone.as_str());
        }
    }
    if let Some(keystone) = first {
        let plugins = plugins.into_iter().collect::<Vec<_>>().join(", ");
        tracing::error!(%plugins, %keystone,
            "Keystone gave no token: these plugins could not read the OpenStack catalog, and their samples are missing this cycle");
    }
}

/// The cycle's parts: the plans that read the hypervisor together (they share its
/// reads), the others by the discoverers they need.
fn parts_of(plans: Vec<PollPlan>) -> Vec<(bool, Vec<PollPlan>)> {
    let reads_hypervisor =
        |plugin: &Plugin| plugin.info.imports.iter().any(|i| i.starts_with("pollen:plugin/hypervisor"));
    let mut parts: Vec<(bool, Vec<PollPlan>)> = Vec::new();
    let mut by_discoverers: BTreeMap<BTreeSet<String>, Vec<PollPlan>> = BTreeMap::new();
    let mut hypervisor = Vec::new();
    for plan in plans {
        if reads_hypervisor(&plan.pollster) {
            hypervisor.push(plan);
        } else {
            by_discoverers.entry(discoverers_of(std::slice::from_ref(&plan))).or_default().push(plan);
        }
    }
    if !hypervisor.is_empty() {
        parts.push((true, hypervisor));
    }
    parts.extend(by_discoverers.into_values().map(|plans| (false, plans)));
    parts
}

/// Every discoverer some of `plans` need.
fn discoverers_of(plans: &[PollPlan]) -> BTreeSet<String> {
    plans.iter().flat_map(|p| p.discoverers.iter().flat_map(|(_, names)| names.iter().cloned())).collect()
}

/// Starts every discoverer the plans need, once each and at the same time. Each hands
/// its counts and failure to the cycle's output through `pieces`.
fn start_discoveries(
    plugins: &PluginSet,
    snapshot: &Arc<CycleSnapshot>,
    plans: &[PollPlan],
    pieces: &mpsc::Sender<Piece>,
) -> Discoveries {
    let mut discoveries = HashMap::new();
    for entry in discoverers_of(plans) {
        // Ceilometer's `name:parameter` entries: the name picks the plugin.
        let (name, param) = match entry.split_once(':') {
            Some((name, param)) => (name.to_string(), Some(param.to_string())),
            None => (entry.clone(), None),
        };
        let Some(discoverer) = plugins.discoverers.get(&name).cloned() else {
            tracing::warn!(discoverer = %entry, "no plugin provides this discoverer; its meters get no resources");
            discoveries.insert(entry, std::future::ready(Arc::new(Vec::new())).boxed().shared());
            continue;
        };
        let snapshot = snapshot.clone();
        let call = tokio::task::spawn_blocking(move || discoverer.discover(snapshot, param.as_deref()));
        let name = entry;
        let (pieces, named) = (pieces.clone(), name.clone());
        let found = async move {
            let mut counts = CycleOutput::default();
            let found = match join(call).await {
                Ok(found) => {
                    tracing::debug!(discoverer = %named, resources = found.resources.len(), changed = found.changed, "discovered");
                    counts.malformed = found.refused.len();
                    counts.changed_resources = found.changed;
                    found.resources
                }
                Err(error) => {
                    match error {
                        // Logged once for the cycle, with the others Keystone failed.
                        PluginError::NoCatalog { .. } => {
                            tracing::debug!(discoverer = %named, %error, "discovery failed")
                        }
                        _ => tracing::error!(discoverer = %named, %error, "discovery failed"),
                    }
                    counts.failures.push(error);
                    Vec::new()
                }
            };
            let _ = pieces.send(vec![(None, counts)]).await;
            Arc::new(found)
        };
        discoveries.insert(name, found.boxed().shared());
    }
    Arc::new(discoveries)
}

/// One part of the cycle.
struct Part {
    plans: Vec<PollPlan>,
    /// Whether its pollsters read the hypervisor (then each chunk's statistics are read
    /// ahead, in bulk).
    reads_hypervisor: bool,
    discoveries: Discoveries,
    snapshot: Arc<CycleSnapshot>,
    registry: Arc<Registry>,
    sources: Arc<[Source]>,
    pieces: mpsc::Sender<Piece>,
}

impl Part {
    /// Waits for its discoverers, then polls its resources chunk by chunk (reading the
    /// next chunk's statistics while this one is polled), handing each chunk's samples
    /// over as its calls end and dropping its statistics.
    async fn run(self) {
        let mut discovered = HashMap::new();
        for name in discoverers_of(&self.plans) {
            if let Some(found) = self.discoveries.get(&name) {
                discovered.insert(name, found.clone().await);
            }
        }
        let (order, work) = chunked(self.plans, &self.sources, &discovered, &self.registry);
        let (work, order) = (Arc::new(work), Arc::new(order));
        let chunk_count = order.len().div_ceil(CHUNK).max(usize::from(work.iter().any(|w| w.once)));
        let mut next = self.reads_hypervisor.then(|| prefetch(&self.snapshot, &order, 0));
        let mut prefetch_failed = false;
        for chunk in 0..chunk_count {
            if let Some(read) = next.take() {
                finish_prefetch(read, &mut prefetch_failed).await;
            }
            if self.reads_hypervisor && chunk + 1 < chunk_count {
                next = Some(prefetch(&self.snapshot, &order, chunk + 1));
            }
            let mut calls = JoinSet::new();
            for index in 0..work.len() {
                let called_once = work[index].once && chunk == 0;
                if !called_once && work[index].chunks.get(chunk).is_none_or(Vec::is_empty) {
                    continue;
                }
                let (work, snapshot, registry) = (work.clone(), self.snapshot.clone(), self.registry.clone());
                let source_count = self.sources.len();
                calls.spawn_blocking(move || {
                    let work = &work[index];
                    let mut routed = CycleOutput { samples: vec![Vec::new(); source_count], ..CycleOutput::default() };
                    let resources = work.chunks.get(chunk).map_or(&[][..], Vec::as_slice);
                    poll_chunk(work, resources, &snapshot, &registry, &mut routed);
                    (index, work.plan.pollster.name().to_string(), routed)
                });
            }
            gather(calls, &self.pieces).await;
            let released: Vec<&str> = chunk_ids(&order, chunk).collect();
            self.snapshot.release(&released);
        }
        tracing::debug!(resources = order.len(), chunks = chunk_count, "part polled");
    }
}

/// Hands over the outputs of a chunk's calls: together, in the order of the work,
/// unless some are still running [`STRAGGLER_GRACE`] after the first ended; then what
/// is done goes on, and each straggler when it ends.
async fn gather(mut calls: JoinSet<(usize, String, CycleOutput)>, pieces: &mpsc::Sender<Piece>) {
    let ended = |joined: Result<(usize, String, CycleOutput), tokio::task::JoinError>| match joined {
        Ok((index, name, routed)) => (index, Some(name), routed),
        Err(error) => {
            (usize::MAX, None, CycleOutput { failures: vec![host_task_failed(error)], ..CycleOutput::default() })
        }
    };
    let Some(first) = calls.join_next().await else {
        return;
    };
    let mut together = vec![ended(first)];
    let grace = tokio::time::Instant::now() + STRAGGLER_GRACE;
    while let Ok(Some(joined)) = tokio::time::timeout_at(grace, calls.join_next()).await {
        together.push(ended(joined));
    }
    together.sort_by_key(|(index, _, _)| *index);
    let piece = together.into_iter().map(|(_, name, routed)| (name, routed)).collect();
    if pieces.send(piece).await.is_err() {
        return;
    }
    while let Some(joined) = calls.join_next().await {
        let (_, name, routed) = ended(joined);
        tracing::debug!(pollster = name.as_deref().unwrap_or("(host)"), "a chunk's straggler ended");
        if pieces.send(vec![(name, routed)]).await.is_err() {
            return;
        }
    }
}

/// The ids of the resources in chunk `chunk` of the cycle's order.
fn chunk_ids(order: &[Arc<Resource>], chunk: usize) -> impl Iterator<Item = &str> {
    order.iter().skip(chunk * CHUNK).take(CHUNK).map(|r| &*r.id)
}

/// Starts reading the hypervisor's statistics of chunk `chunk`, on a blocking thread.
fn prefetch(
    snapshot: &Arc<CycleSnapshot>,
    order: &Arc<Vec<Arc<Resource>>>,
    chunk: usize,
) -> tokio::task::JoinHandle<Result<(), HypervisorError>> {
    let (snapshot, order) = (snapshot.clone(), order.clone());
    tokio::task::spawn_blocking(move || {
        let ids: Vec<&str> = chunk_ids(&order, chunk).collect();
        snapshot.prefetch(&ids)
    })
}

/// Waits for a chunk's statistics; the cycle's first failure is logged (the pollsters
/// then read on demand, and report what they cannot). `failed` says whether one was.
async fn finish_prefetch(read: tokio::task::JoinHandle<Result<(), HypervisorError>>, failed: &mut bool) {
    let error = match read.await {
        Ok(Ok(())) => return,
        Ok(Err(error)) => error.to_string(),
        Err(error) => format!("the hypervisor read's task failed: {error}"),
    };
    if !std::mem::replace(failed, true) {
        tracing::warn!(%error, "cannot read the hypervisor this cycle");
    }
}

/// Polls a pollster's resources of one chunk (indices into its targets) and routes
/// the samples into `output`. A failed call costs only its own samples.
fn poll_chunk(
    work: &Work,
    chunk: &[usize],
    snapshot: &Arc<CycleSnapshot>,
    registry: &Registry,
    output: &mut CycleOutput,
) {
    let infos: Vec<types::ResourceInfo> = chunk
        .iter()
        .map(|i| {
            let resource = &work.targets.resources[*i].1;
            types::ResourceInfo {
                id: resource.id.to_string(),
                name: resource.name().to_string(),
                data: resource.handed.data.as_deref().map(str::to_string),
            }
        })
        .collect();
    match work.plan.pollster.poll(snapshot.clone(), &infos) {
        Ok(Polled { samples, named }) => {
            let given = work.targets.resources.len();
            let mut kept = Vec::with_capacity(samples.len());
            for mut sample in samples {
                // Indices into the chunk become indices into the targets, those of named
                // resources indices after them; any other is refused here, in the
                // plugin's own terms (the index it gave, the resources it was given).
                let index = sample.resource as usize;
                sample.resource = match chunk.get(index) {
                    Some(target) => *target as u32,
                    None if index - chunk.len() < named.len() => (given + index - chunk.len()) as u32,
                    None => {
                        output.malformed += 1;
                        output.refusals.add(work.plan.pollster.name(), || {
                            format!(
                                "resource index {index} but it was given {} resources (indices 0 to {})",
                                chunk.len() + named.len(),
                                (chunk.len() + named.len()).saturating_sub(1)
                            )
                        });
                        continue;
                    }
                };
                kept.push(sample);
            }
            route(&work.plan, &work.targets, &named, kept, registry, output);
        }
        Err(error) => output.failures.push(error),
    }
}

/// Waits for a plugin call on a blocking thread.
async fn join<T>(call: tokio::task::JoinHandle<Result<T, PluginError>>) -> Result<T, PluginError> {
    call.await.unwrap_or_else(|error| Err(host_task_failed(error)))
}

/// The failure of a blocking task that called a plugin (it panicked or was cancelled).
fn host_task_failed(error: tokio::task::JoinError) -> PluginError {
    PluginError::Trap { plugin: "(host)".into(), message: format!("the host task calling the plugin failed: {error}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn call_output(volume_marker: usize) -> CycleOutput {
        CycleOutput { malformed: volume_marker, ..CycleOutput::default() }
    }

    /// The calls of a chunk go on together, in the order of the work; one still
    /// running after the grace goes on by itself, without holding the others.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_straggler_does_not_hold_back_the_chunk_s_other_calls() {
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let mut calls = JoinSet::new();
        calls.spawn_blocking(move || {
            let _ = hold.recv();
            (0, "slow".to_string(), call_output(0))
        });
        let (done, quick_ended) = std::sync::mpsc::channel();
        for index in [2, 1] {
            let done = done.clone();
            calls.spawn_blocking(move || {
                let _ = done.send(());
                (index, format!("quick-{index}"), call_output(index))
            });
        }
        // Both quick calls have ended (however loaded the machine) before gathering.
        for _ in 0..2 {
            quick_ended.recv().unwrap();
        }
        let (pieces, mut received) = mpsc::channel(PIECES_AHEAD);
        let started = Instant::now();
        let gathering = tokio::spawn(async move { gather(calls, &pieces).await });
        let first = received.recv().await.expect("the quick calls' piece");
        let names: Vec<Option<String>> = first.iter().map(|(name, _)| name.clone()).collect();
        assert_eq!(names, [Some("quick-1".to_string()), Some("quick-2".to_string())], "in the order of the work");
        assert!(started.elapsed() >= STRAGGLER_GRACE, "the grace was given to the slow call");
        release.send(()).unwrap();
        let straggler = received.recv().await.expect("the straggler's piece");
        assert_eq!(straggler.len(), 1);
        assert_eq!(straggler[0].0.as_deref(), Some("slow"));
        gathering.await.unwrap();
        assert!(received.recv().await.is_none(), "nothing more");
    }

    /// Calls that all end within the grace go on as one piece.
    #[tokio::test(flavor = "multi_thread")]
    async fn calls_ending_together_go_on_together() {
        let mut calls = JoinSet::new();
        for index in 0..5 {
            calls.spawn_blocking(move || (index, format!("p{index}"), call_output(index)));
        }
        let (pieces, mut received) = mpsc::channel(PIECES_AHEAD);
        gather(calls, &pieces).await;
        drop(pieces);
        let piece = received.recv().await.unwrap();
        assert_eq!(piece.iter().map(|(_, o)| o.malformed).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
        assert!(received.recv().await.is_none());
    }
}
