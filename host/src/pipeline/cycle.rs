//! One polling cycle for a group of sources: discover once, poll each pollster on the
//! union of its resources, chunk by chunk, and hand each source the samples it selects.
//!
//! Every plugin call runs on a blocking thread (plugins, and the libvirt calls they
//! make through the host, never run on the async runtime's workers). A plugin that
//! fails costs only its own samples.

use super::PluginSet;
use crate::bindings::types;
use crate::caps::bounds::{metadata_size, MAX_ID as MAX_RESOURCE_ID, MAX_METADATA};
use crate::config::Source;
use crate::convert;
use crate::hypervisor::{CycleSnapshot, Hypervisor, HypervisorError};
use crate::plugin::{plugin_text, Plugin, PluginError, Polled};
use crate::registry::{Namespace, Registry, ResourceHandle};
#[cfg(test)]
use crate::sample::Handed;
use crate::sample::{now_ns, Metadata, Resource, Sample};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

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

    /// One line per plugin that had samples refused.
    fn log_refused(&self) {
        for (plugin, (refused, first)) in &self.0 {
            tracing::warn!(plugin = %plugin, refused, first = %first, "malformed samples refused this cycle");
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

/// One pollster's part of the cycle: which meters each source wants from it.
#[derive(Clone)]
struct PollPlan {
    pollster: Arc<Plugin>,
    /// Per source (index into the sources), the meter indices it selects.
    selections: Vec<(usize, BTreeSet<usize>)>,
    /// Discoverers whose resources it polls, per source; none: the source's meters
    /// name no discoverer, and the pollster is called once per cycle for it.
    discoverers: Vec<(usize, Vec<String>)>,
}

/// A resource with its handle.
type Interned = (ResourceHandle, Arc<Resource>);

/// The resources one pollster polls this cycle, and which source each came from.
struct Targets {
    /// Each resource once, in the order handed to the pollster.
    resources: Vec<Interned>,
    /// Per source (index), the handles of the resources polled for it.
    per_source: Vec<(usize, BTreeSet<ResourceHandle>)>,
}

/// A pollster's plan with its targets, and which of them fall in each chunk of the
/// cycle (indices into `targets.resources`).
struct Work {
    plan: PollPlan,
    /// Shared by the pollsters fed by the same discoverers for the same sources.
    targets: Arc<Targets>,
    /// Likewise.
    chunks: Arc<Vec<Vec<usize>>>,
    /// Called once in the cycle's first chunk, with no resources: a pollster that names
    /// its own, for the sources whose meters name no discoverer.
    once: bool,
}

/// Resources read and polled together: bounds what the host holds of the hypervisor,
/// a pollster's memory, and the work under one call deadline, however many domains the
/// host runs.
const CHUNK: usize = 100;

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

/// Runs one cycle for `sources`, handing each chunk's samples (per source, in the
/// order of the sources) to `deliver` as soon as the chunk is polled, and waiting for
/// it: a large host's samples are never all held at once. The output's `samples` are
/// left empty.
///
/// The discoverers run first. The resources of every pollster are then taken in chunks
/// of [`CHUNK`]: the hypervisor's statistics of a chunk are read in bulk (the next
/// chunk's while the pollsters work on this one), every pollster polls its resources of
/// the chunk at the same time, their samples are routed and delivered, and the chunk's
/// statistics are dropped.
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
    let mut output = CycleOutput::default();
    let mut samples = 0;
    let started = std::time::Instant::now();
    let discovered = discover(plugins, &snapshot, &plans, &mut output).await;
    tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "discovery done");

    let reads_hypervisor =
        |plugin: &Plugin| plugin.info.imports.iter().any(|i| i.starts_with("pollen:plugin/hypervisor"));
    let prefetching = plans.iter().any(|p| reads_hypervisor(&p.pollster));
    let (order, work) = chunked(plans, sources, &discovered, registry);
    let work = Arc::new(work);
    let order = Arc::new(order);
    let chunk_count = order.len().div_ceil(CHUNK).max(usize::from(work.iter().any(|w| w.once)));
    let started = std::time::Instant::now();
    let mut next = prefetching.then(|| prefetch(&snapshot, &order, 0));
    let mut prefetch_failed = false;
    let mut failed_calls = PerPlugin::default();
    for chunk in 0..chunk_count {
        if let Some(read) = next.take() {
            finish_prefetch(read, &mut prefetch_failed).await;
        }
        if prefetching && chunk + 1 < chunk_count {
            next = Some(prefetch(&snapshot, &order, chunk + 1));
        }
        let mut calls = Vec::new();
        for index in 0..work.len() {
            let called_once = work[index].once && chunk == 0;
            if !called_once && work[index].chunks.get(chunk).is_none_or(Vec::is_empty) {
                continue;
            }
            let (work, snapshot, registry) = (work.clone(), snapshot.clone(), registry.clone());
            let source_count = sources.len();
            calls.push(tokio::task::spawn_blocking(move || {
                let work = &work[index];
                let mut routed = CycleOutput { samples: vec![Vec::new(); source_count], ..CycleOutput::default() };
                let resources = work.chunks.get(chunk).map_or(&[][..], Vec::as_slice);
                poll_chunk(work, resources, &snapshot, &registry, &mut routed);
                (work.plan.pollster.name().to_string(), routed)
            }));
        }
        let mut polled = vec![Vec::new(); sources.len()];
        for call in calls {
            let (name, routed) = call.await.unwrap_or_else(|error| {
                ("(host)".into(), CycleOutput { failures: vec![host_task_failed(error)], ..CycleOutput::default() })
            });
            for error in &routed.failures {
                failed_calls.add(&name, || error.to_string());
            }
            output.failures.extend(routed.failures);
            output.malformed += routed.malformed;
            output.refusals.merge(routed.refusals);
            for (all, some) in polled.iter_mut().zip(routed.samples) {
                all.extend(some);
            }
        }
        samples += polled.iter().map(Vec::len).sum::<usize>();
        deliver(polled).await;
        let released: Vec<&str> = chunk_ids(&order, chunk).collect();
        snapshot.release(&released);
    }
    tracing::debug!(
        resources = order.len(),
        chunks = chunk_count,
        samples,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "polled and routed"
    );
    let unreadable = snapshot.unreadable();
    if let Some((uuid, error)) = unreadable.first() {
        tracing::warn!(domains = unreadable.len(), first = %uuid, %error,
            "some domains could not be read this cycle; only their samples are missing");
    }
    output.unreadable_domains = unreadable.len();
    failed_calls.log_failed();
    output.refusals.log_refused();
    output
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

/// Every pollster's targets (made once for the pollsters fed by the same discoverers
/// for the same sources), and the cycle's order: each resource once, as the plans list
/// them, which the chunks cut.
fn chunked(
    plans: Vec<PollPlan>,
    sources: &[Source],
    discovered: &HashMap<String, Vec<Interned>>,
    registry: &Registry,
) -> (Vec<Arc<Resource>>, Vec<Work>) {
    let mut order = Vec::new();
    let mut position: HashMap<ResourceHandle, usize> = HashMap::new();
    let mut work = Vec::new();
    for mut plan in plans {
        // The sources whose meters name no discoverer: one call a cycle, of their own.
        let (once, discovering): (Vec<_>, Vec<_>) = plan
            .discoverers
            .iter()
            .cloned()
            .partition(|(source, names)| names.is_empty() && sources[*source].resources.is_empty());
        if !once.is_empty() {
            let once_sources: BTreeSet<usize> = once.iter().map(|(source, _)| *source).collect();
            let alone = |(source, _): &(usize, BTreeSet<usize>)| once_sources.contains(source);
            let selections = plan.selections.iter().filter(|s| alone(s)).cloned().collect();
            let per_source = once.iter().map(|(source, _)| (*source, BTreeSet::new())).collect();
            work.push(Work {
                plan: PollPlan { pollster: plan.pollster.clone(), selections, discoverers: once },
                targets: Arc::new(Targets { resources: Vec::new(), per_source }),
                chunks: Arc::new(Vec::new()),
                once: true,
            });
            plan.selections.retain(|s| !alone(s));
            plan.discoverers = discovering;
            if plan.selections.is_empty() {
                continue;
            }
        }
        let same = work.iter().find(|w: &&Work| !w.once && w.plan.discoverers == plan.discoverers);
        if let Some((targets, chunks)) = same.map(|w| (w.targets.clone(), w.chunks.clone())) {
            work.push(Work { plan, targets, chunks, once: false });
            continue;
        }
        let targets = targets(&plan, sources, discovered, registry);
        let mut chunks: Vec<Vec<usize>> = Vec::new();
        for (index, (handle, resource)) in targets.resources.iter().enumerate() {
            let at = *position.entry(*handle).or_insert_with(|| {
                order.push(resource.clone());
                order.len() - 1
            });
            let chunk = at / CHUNK;
            if chunks.len() <= chunk {
                chunks.resize_with(chunk + 1, Vec::new);
            }
            chunks[chunk].push(index);
        }
        if !targets.resources.is_empty() {
            work.push(Work { plan, targets: Arc::new(targets), chunks: Arc::new(chunks), once: false });
        }
    }
    (order, work)
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
        Ok(Polled { mut samples, named }) => {
            let given = work.targets.resources.len();
            for sample in &mut samples {
                // Indices into the chunk become indices into the targets, those of named
                // resources indices after them; any other stays beyond: still refused.
                let index = sample.resource as usize;
                sample.resource = match chunk.get(index) {
                    Some(target) => *target as u32,
                    None if index - chunk.len() < named.len() => (given + index - chunk.len()) as u32,
                    None => u32::MAX,
                };
            }
            route(&work.plan, &work.targets, &named, samples, registry, output);
        }
        Err(error) => output.failures.push(error),
    }
}

/// Runs every discoverer the plans need, once each and at the same time.
async fn discover(
    plugins: &PluginSet,
    snapshot: &Arc<CycleSnapshot>,
    plans: &[PollPlan],
    output: &mut CycleOutput,
) -> HashMap<String, Vec<Interned>> {
    let wanted: BTreeSet<&String> = plans.iter().flat_map(|p| p.discoverers.iter().flat_map(|(_, d)| d)).collect();
    let mut calls = Vec::new();
    for name in wanted {
        let Some(discoverer) = plugins.discoverers.get(name).cloned() else {
            tracing::warn!(discoverer = %name, "no plugin provides this discoverer; its meters get no resources");
            continue;
        };
        let snapshot = snapshot.clone();
        calls.push((name.clone(), tokio::task::spawn_blocking(move || discoverer.discover(snapshot))));
    }
    let mut discovered = HashMap::new();
    for (name, call) in calls {
        match join(call).await {
            Ok(found) => {
                tracing::debug!(discoverer = %name, resources = found.resources.len(), changed = found.changed, "discovered");
                output.malformed += found.refused.len();
                output.changed_resources += found.changed;
                discovered.insert(name, found.resources);
            }
            Err(error) => {
                tracing::error!(discoverer = %name, %error, "discovery failed");
                output.failures.push(error);
            }
        }
    }
    discovered
}

/// The resources a pollster polls: what its sources' discoverers found, plus their
/// static resources, each once.
fn targets(
    plan: &PollPlan,
    sources: &[Source],
    discovered: &HashMap<String, Vec<Interned>>,
    registry: &Registry,
) -> Targets {
    let mut targets = Targets { resources: Vec::new(), per_source: Vec::new() };
    let mut seen = BTreeSet::new();
    for (source, names) in &plan.discoverers {
        let mut handles = BTreeSet::new();
        let found = names.iter().flat_map(|n| discovered.get(n).into_iter().flatten().cloned());
        let fixed = sources[*source].resources.iter().map(|id| intern(registry, Resource::bare(id)));
        for (handle, resource) in found.chain(fixed) {
            handles.insert(handle);
            if seen.insert(handle) {
                targets.resources.push((handle, resource));
            }
        }
        targets.per_source.push((*source, handles));
    }
    targets
}

/// Hands a pollster's samples to the sources that asked for their meter and resource
/// (a resource the pollster named: every source it was polled for).
fn route(
    plan: &PollPlan,
    targets: &Targets,
    named: &[Interned],
    raw: Vec<types::Sample>,
    registry: &Registry,
    output: &mut CycleOutput,
) {
    let timestamp = now_ns();
    // The device of the previous sample: its base resource, id and handle.
    let mut last_device: Option<(usize, String, ResourceHandle)> = None;
    for sample in raw {
        let given = targets.resources.len();
        let (meter_index, base) = match check_sample(&plan.pollster, given + named.len(), &sample) {
            Ok(indices) => indices,
            Err(fault) => {
                output.malformed += 1;
                output.refusals.add(plan.pollster.name(), || fault.to_string());
                continue;
            }
        };
        let volume = sample.volume;
        let base_resource = if base < given { &targets.resources[base] } else { &named[base - given] };
        let base_handle = base_resource.0;
        let resource = match (&last_device, &sample.resource_id) {
            (Some((last_base, last_id, handle)), Some(id))
                if *last_base == base && last_id == id && sample.metadata.is_empty() =>
            {
                *handle
            }
            _ => {
                let id = sample.resource_id.clone();
                let handle = match device_resource(registry, base_resource, sample) {
                    Ok(handle) => handle,
                    Err(fault) => {
                        output.malformed += 1;
                        output.refusals.add(plan.pollster.name(), || fault.to_string());
                        continue;
                    }
                };
                last_device = id.map(|id| (base, id, handle));
                handle
            }
        };
        let meter = plan.pollster.info.meters[meter_index].handle;
        for (source, meters) in &plan.selections {
            let polled_for_source = base >= given
                || targets.per_source.iter().any(|(s, handles)| s == source && handles.contains(&base_handle));
            if polled_for_source && meters.contains(&meter_index) {
                output.samples[*source].push(Sample { meter, resource, volume, timestamp });
            }
        }
    }
}

fn intern(registry: &Registry, resource: Resource) -> Interned {
    let handle = registry.intern_resource(resource);
    (handle, registry.resource(handle).expect("a handle just interned resolves"))
}

/// Which pollster serves which sources, with which meters and discoverers.
fn plan(plugins: &PluginSet, sources: &[Source]) -> Vec<PollPlan> {
    let mut plans = Vec::new();
    for pollster in plugins.pollsters() {
        let mut selections = Vec::new();
        let mut discoverers = Vec::new();
        for (index, source) in sources.iter().enumerate() {
            let selected: BTreeSet<usize> = pollster
                .info
                .meters
                .iter()
                .enumerate()
                .filter(|(_, spec)| source.selects(&spec.meter.name))
                .map(|(meter, _)| meter)
                .collect();
            if selected.is_empty() {
                continue;
            }
            // Ceilometer's `name:parameter` discovery entries: the name picks the plugin.
            let names: BTreeSet<String> = if source.discovery.is_empty() {
                selected.iter().filter_map(|m| pollster.info.meters[*m].default_discoverer.clone()).collect()
            } else {
                source.discovery.iter().map(|d| d.split(':').next().unwrap_or(d).to_string()).collect()
            };
            selections.push((index, selected));
            discoverers.push((index, names.into_iter().collect()));
        }
        if !selections.is_empty() {
            plans.push(PollPlan { pollster: pollster.clone(), selections, discoverers });
        }
    }
    plans
}

/// What makes a sample a pollster returned malformed.
#[derive(Debug)]
enum Fault {
    Meter {
        meter: usize,
        meters: usize,
    },
    Resource {
        resource: usize,
        resources: usize,
    },
    Volume(f64),
    ResourceId(usize),
    Metadata(usize),
    /// A device id that does not carry the id of the resource it is a device of.
    NotItsDevice {
        id: String,
        of: String,
    },
    /// A device id that is another resource's.
    Taken(String),
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Meter { meter, meters } => {
                write!(f, "meter index {meter} but the pollster describes {meters} meters")
            }
            Self::Resource { resource, resources } => {
                write!(f, "resource index {resource} but it was given {resources} resources")
            }
            Self::Volume(volume) => write!(f, "volume {volume} is not a finite number"),
            Self::ResourceId(length) => write!(f, "resource id of {length} bytes; it must have 1 to {MAX_RESOURCE_ID}"),
            Self::Metadata(size) => write!(f, "{size} bytes of metadata; at most {MAX_METADATA}"),
            Self::NotItsDevice { id, of } => write!(
                f,
                "resource id `{}` carries neither the id nor the name of the resource `{}` it was given (a device's id does: `<id>-vda`)",
                plugin_text(id, 64),
                plugin_text(of, 64)
            ),
            Self::Taken(id) => write!(f, "resource id `{}` is another resource's", plugin_text(id, 64)),
        }
    }
}

/// The meter and resource indices of a sample, if it is well formed.
fn check_sample(pollster: &Plugin, resources: usize, sample: &types::Sample) -> Result<(usize, usize), Fault> {
    let (meter, resource) = (sample.meter as usize, sample.resource as usize);
    let meters = pollster.info.meters.len();
    if meter >= meters {
        return Err(Fault::Meter { meter, meters });
    }
    if resource >= resources {
        return Err(Fault::Resource { resource, resources });
    }
    if !sample.volume.is_finite() {
        return Err(Fault::Volume(sample.volume));
    }
    if let Some(length) = sample.resource_id.as_ref().map(String::len) {
        if length == 0 || length > MAX_RESOURCE_ID {
            return Err(Fault::ResourceId(length));
        }
    }
    match metadata_size(&sample.metadata) {
        size if size > MAX_METADATA => Err(Fault::Metadata(size)),
        _ => Ok((meter, resource)),
    }
}

/// The resource a sample is about: its base resource, or, when the pollster gave it
/// an id or metadata of its own (a disk, a vNIC), that device of it, sharing the
/// base's owner, metadata and namespace (each resource's devices are its own: see
/// [`Registry::intern_device`]). The id it gives must carry its base's id or name, as
/// Ceilometer's do (`<uuid>-vda`, `<name>-<uuid>-tap…`, a filter reference
/// `nova-instance-<name>-<mac>`), and must not be another resource's of the base's
/// discoverer: a pollster names devices of the resources it was given, it does not
/// publish under others' ids.
fn device_resource(
    registry: &Registry,
    (handle, base): &(ResourceHandle, Arc<Resource>),
    sample: types::Sample,
) -> Result<ResourceHandle, Fault> {
    if sample.resource_id.is_none() && sample.metadata.is_empty() {
        return Ok(*handle);
    }
    let namespace = registry.namespace(*handle).unwrap_or(Namespace::STATIC);
    if let Some(id) = sample.resource_id.as_deref().filter(|id| *id != &*base.id) {
        if !id.contains(&*base.id) && !id.contains(base.name()) {
            return Err(Fault::NotItsDevice { id: id.to_string(), of: base.id.to_string() });
        }
        if registry.resource_handle(namespace, id).is_some_and(|other| other != *handle) {
            return Err(Fault::Taken(id.to_string()));
        }
    }
    Ok(registry.intern_device(
        *handle,
        namespace,
        Resource {
            id: sample.resource_id.map_or_else(|| base.id.clone(), Into::into),
            handed: base.handed.clone(),
            owner: base.owner.clone(),
            metadata: base.metadata.clone(),
            extra: Metadata::from_map(&convert::metadata_to_json(sample.metadata)),
        },
    ))
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
    use crate::sample::Owner;

    /// A resource of `local_instances`, interned.
    fn owned(registry: &Registry, id: &str, user: &str) -> Interned {
        let resource = Resource { owner: Owner::of(Some(user), None), ..Resource::bare(id) };
        let handle = registry.intern_in(registry.namespace_of_plugin("local_instances"), resource);
        (handle, registry.resource(handle).unwrap())
    }

    fn on_device(id: &str) -> types::Sample {
        types::Sample {
            meter: 0,
            resource: 0,
            volume: 1.0,
            resource_id: Some(id.into()),
            metadata: vec![types::MetadataEntry { key: "disk_name".into(), value: types::Value::Text("vda".into()) }],
        }
    }

    /// A pollster given instance `a` names a disk of `b`, which has the same owner:
    /// refused (the disk would have taken `a`'s metadata), and `b`'s disk keeps its own.
    #[test]
    fn a_pollster_names_devices_of_its_own_resources_only() {
        let registry = Registry::new();
        let [a, b] = ["aaaa", "bbbb"].map(|id| owned(&registry, id, "same-user"));
        let b_disk = device_resource(&registry, &b, on_device("bbbb-vda")).expect("b names its own disk");
        let refused = device_resource(&registry, &a, on_device("bbbb-vda"));
        assert!(
            matches!(&refused, Err(Fault::NotItsDevice { id, of }) if id == "bbbb-vda" && of == "aaaa"),
            "{refused:?}"
        );
        assert_eq!(registry.resource(b_disk).unwrap().name(), "bbbb", "b's disk is still b's");
        let a_disk = device_resource(&registry, &a, on_device("aaaa-vda")).expect("a names its own disk");
        assert_ne!(a_disk, b_disk);
        // An id that carries `a`'s but is another resource's of the same discoverer.
        owned(&registry, "aaaa-other", "someone-else");
        let sample = types::Sample { metadata: Vec::new(), ..on_device("aaaa-other") };
        assert!(matches!(device_resource(&registry, &a, sample), Err(Fault::Taken(_))));
        // A device id of another resource that happens to carry `a`'s id: `a`'s own
        // entry, the other's device untouched.
        let c = owned(&registry, "aaaa-x", "other");
        let c_disk = device_resource(&registry, &c, on_device("aaaa-x-vda")).unwrap();
        let lookalike = device_resource(&registry, &a, on_device("aaaa-x-vda")).unwrap();
        assert_ne!(lookalike, c_disk);
        assert_eq!(registry.resource(c_disk).unwrap().user_id(), Some("other"), "c's disk keeps its owner");
    }

    /// A vNIC named by its filter reference (Ceilometer's `fref`), which carries the
    /// instance's name, not its id.
    #[test]
    fn a_device_id_may_carry_the_resource_s_name() {
        let registry = Registry::new();
        let resource = Resource { handed: Handed::named("instance-00000001"), ..Resource::bare("11111111-2222") };
        let handle = registry.intern_in(registry.namespace_of_plugin("local_instances"), resource);
        let base = (handle, registry.resource(handle).unwrap());
        let vnic = device_resource(&registry, &base, on_device("nova-instance-instance-00000001-fa163e000001"));
        assert!(vnic.is_ok(), "{vnic:?}");
    }
}
