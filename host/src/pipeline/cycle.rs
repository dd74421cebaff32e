//! One polling cycle for a group of sources: discover once, poll each pollster once
//! on the union of its resources, and hand each source the samples it selects.
//!
//! Every plugin call runs on a blocking thread (plugins, and the libvirt calls they
//! make through the host, never run on the async runtime's workers). A plugin that
//! fails costs only its own samples.

use super::PluginSet;
use crate::bindings::types;
use crate::config::Source;
use crate::convert;
use crate::hypervisor::{CycleSnapshot, Hypervisor};
use crate::plugin::{Plugin, PluginError};
use crate::registry::{Registry, ResourceHandle};
use crate::sample::{now_ns, Resource, Sample};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// What one cycle produced.
#[derive(Default)]
pub struct CycleOutput {
    /// Samples per source, in the order of the sources given.
    pub samples: Vec<Vec<Sample>>,
    /// Plugin calls that failed this cycle.
    pub failures: Vec<PluginError>,
    /// Samples refused because the plugin returned them malformed.
    pub malformed: usize,
    /// Domains whose statistics could not be read (gone, erroring, timed out).
    pub unreadable_domains: usize,
}

/// One pollster's part of the cycle: which meters each source wants from it.
struct PollPlan {
    pollster: Arc<Plugin>,
    /// Per source (index into the sources), the meter indices it selects.
    selections: Vec<(usize, BTreeSet<usize>)>,
    /// Discoverers whose resources it polls, per source.
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

/// Runs one cycle for `sources`.
pub async fn run_cycle(
    plugins: &Arc<PluginSet>,
    hypervisor: &Arc<Hypervisor>,
    registry: &Arc<Registry>,
    sources: &[Source],
) -> CycleOutput {
    let snapshot = hypervisor.cycle();
    let plans = plan(plugins, sources);
    let mut output = CycleOutput { samples: vec![Vec::new(); sources.len()], ..CycleOutput::default() };
    let reads_hypervisor =
        |plugin: &Plugin| plugin.info.imports.iter().any(|i| i.starts_with("pollen:plugin/hypervisor"));
    if plans.iter().any(|p| reads_hypervisor(&p.pollster)) || plugins.discoverers.values().any(|d| reads_hypervisor(d))
    {
        let prefetch = snapshot.clone();
        let started = std::time::Instant::now();
        let prefetched = tokio::task::spawn_blocking(move || prefetch.prefetch()).await;
        tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "hypervisor read");
        match prefetched {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "cannot read the hypervisor this cycle"),
            Err(error) => tracing::error!(%error, "the hypervisor read failed"),
        }
    }
    let started = std::time::Instant::now();
    let discovered = discover(plugins, registry, &snapshot, &plans, &mut output.failures).await;
    tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "discovery done");

    // Poll each pollster once, all at the same time, on the union of its sources' resources;
    // each chunk's samples are routed as soon as they return, so a large host's raw samples
    // are never all held at once.
    let mut calls = Vec::new();
    for plan in plans {
        let targets = targets(&plan, sources, &discovered, registry);
        if targets.resources.is_empty() {
            continue;
        }
        let (snapshot, registry, name) = (snapshot.clone(), registry.clone(), plan.pollster.name().to_string());
        let source_count = sources.len();
        let call = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let mut routed = CycleOutput { samples: vec![Vec::new(); source_count], ..CycleOutput::default() };
            poll_in_chunks(&plan, &targets, &snapshot, &registry, &mut routed);
            let samples: usize = routed.samples.iter().map(Vec::len).sum();
            let elapsed_ms = started.elapsed().as_millis() as u64;
            tracing::debug!(plugin = %plan.pollster.name(), resources = targets.resources.len(), samples, elapsed_ms, "polled and routed");
            routed
        });
        calls.push((name, call));
    }
    for (name, call) in calls {
        let routed = call
            .await
            .unwrap_or_else(|error| CycleOutput { failures: vec![host_task_failed(error)], ..CycleOutput::default() });
        for error in &routed.failures {
            tracing::error!(plugin = %name, %error, "poll failed; these resources' samples of this pollster are missing this cycle");
        }
        output.failures.extend(routed.failures);
        output.malformed += routed.malformed;
        for (all, some) in output.samples.iter_mut().zip(routed.samples) {
            all.extend(some);
        }
    }
    let unreadable = snapshot.unreadable();
    if let Some((uuid, error)) = unreadable.first() {
        tracing::warn!(domains = unreadable.len(), first = %uuid, %error,
            "some domains could not be read this cycle; only their samples are missing");
    }
    output.unreadable_domains = unreadable.len();
    output
}

/// Resources handed to one `poll` call: bounds a pollster's memory and the work under
/// one call deadline, however many domains the host runs.
const POLL_CHUNK: usize = 250;

/// Polls a plan's resources in chunks of [`POLL_CHUNK`] and routes each chunk's
/// samples into `output`. A failed chunk costs only its own samples.
fn poll_in_chunks(
    plan: &PollPlan,
    targets: &Targets,
    snapshot: &Arc<CycleSnapshot>,
    registry: &Registry,
    output: &mut CycleOutput,
) {
    let infos: Vec<types::ResourceInfo> =
        targets.resources.iter().map(|(_, r)| types::ResourceInfo { id: r.id.clone(), name: r.name.clone() }).collect();
    for (index, chunk) in infos.chunks(POLL_CHUNK).enumerate() {
        let offset = (index * POLL_CHUNK) as u32;
        match plan.pollster.poll(snapshot.clone(), chunk) {
            Ok(mut raw) => {
                for sample in &mut raw {
                    // Indices relative to the whole list; one beyond the chunk stays beyond
                    // it: still refused.
                    sample.resource =
                        if (sample.resource as usize) < chunk.len() { sample.resource + offset } else { u32::MAX };
                }
                route(plan, targets, raw, registry, output);
            }
            Err(error) => output.failures.push(error),
        }
    }
}

/// Runs every discoverer the plans need, once each and at the same time.
async fn discover(
    plugins: &PluginSet,
    registry: &Registry,
    snapshot: &Arc<CycleSnapshot>,
    plans: &[PollPlan],
    failures: &mut Vec<PluginError>,
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
            Ok(resources) => {
                let interned =
                    resources.into_iter().map(|r| intern(registry, convert::resource_from_discovered(r))).collect();
                discovered.insert(name, interned);
            }
            Err(error) => {
                tracing::error!(discoverer = %name, %error, "discovery failed");
                failures.push(error);
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

/// Hands a pollster's samples to the sources that asked for their meter and resource.
fn route(plan: &PollPlan, targets: &Targets, raw: Vec<types::Sample>, registry: &Registry, output: &mut CycleOutput) {
    let timestamp = now_ns();
    // The device of the previous sample: its base resource, id and handle.
    let mut last_device: Option<(usize, String, ResourceHandle)> = None;
    for sample in raw {
        let Some((meter_index, base)) = check_sample(&plan.pollster, targets.resources.len(), &sample) else {
            output.malformed += 1;
            continue;
        };
        let volume = sample.volume;
        let base_handle = targets.resources[base].0;
        let resource = match (&last_device, &sample.resource_id) {
            (Some((last_base, last_id, handle)), Some(id))
                if *last_base == base && last_id == id && sample.metadata.is_empty() =>
            {
                *handle
            }
            _ => {
                let id = sample.resource_id.clone();
                let handle = device_resource(registry, &targets.resources[base], sample);
                last_device = id.map(|id| (base, id, handle));
                handle
            }
        };
        let meter = plan.pollster.info.meters[meter_index].handle;
        for (source, meters) in &plan.selections {
            let polled_for_source =
                targets.per_source.iter().any(|(s, handles)| s == source && handles.contains(&base_handle));
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

/// Longest resource id a pollster may give a sample.
const MAX_RESOURCE_ID: usize = 1024;

/// The meter and resource indices of a sample, if it is well formed; otherwise the
/// sample is refused and logged with the plugin's name.
fn check_sample(pollster: &Plugin, resources: usize, sample: &types::Sample) -> Option<(usize, usize)> {
    let (meter, resource) = (sample.meter as usize, sample.resource as usize);
    let problem = if meter >= pollster.info.meters.len() {
        Some(format!("meter index {meter} but the pollster describes {} meters", pollster.info.meters.len()))
    } else if resource >= resources {
        Some(format!("resource index {resource} but it was given {resources} resources"))
    } else if !sample.volume.is_finite() {
        Some(format!("volume {} is not a finite number", sample.volume))
    } else if sample.resource_id.as_ref().is_some_and(|id| id.is_empty() || id.len() > MAX_RESOURCE_ID) {
        Some(format!("resource id must have 1 to {MAX_RESOURCE_ID} bytes"))
    } else {
        None
    };
    match problem {
        Some(problem) => {
            tracing::warn!(plugin = %pollster.name(), %problem, "malformed sample refused");
            None
        }
        None => Some((meter, resource)),
    }
}

/// The resource a sample is about: its base resource, or, when the pollster gave it
/// an id or metadata of its own (a disk, a vNIC), that device, sharing the base's
/// owner and metadata.
fn device_resource(
    registry: &Registry,
    (handle, base): &(ResourceHandle, Arc<Resource>),
    sample: types::Sample,
) -> ResourceHandle {
    if sample.resource_id.is_none() && sample.metadata.is_empty() {
        return *handle;
    }
    registry.intern_resource(Resource {
        id: sample.resource_id.unwrap_or_else(|| base.id.clone()),
        name: base.name.clone(),
        user_id: base.user_id.clone(),
        project_id: base.project_id.clone(),
        metadata: base.metadata.clone(),
        extra: sample.metadata.into_iter().map(|e| (e.key, convert::value_to_json(e.value))).collect(),
    })
}

/// Waits for a plugin call on a blocking thread.
async fn join<T>(call: tokio::task::JoinHandle<Result<T, PluginError>>) -> Result<T, PluginError> {
    call.await.unwrap_or_else(|error| Err(host_task_failed(error)))
}

/// The failure of a blocking task that called a plugin (it panicked or was cancelled).
fn host_task_failed(error: tokio::task::JoinError) -> PluginError {
    PluginError::Trap { plugin: "(host)".into(), message: format!("the host task calling the plugin failed: {error}") }
}
