//! What a cycle polls: which pollster serves which sources with which meters and
//! discoverers ([`plan`]), and the resources each polls, cut in chunks ([`chunked`]).

use super::CHUNK;
use crate::config::Source;
use crate::pipeline::PluginSet;
use crate::plugin::Plugin;
use crate::registry::{Registry, ResourceHandle};
use crate::sample::Resource;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// One pollster's part of the cycle: which meters each source wants from it.
#[derive(Clone)]
pub(super) struct PollPlan {
    pub(super) pollster: Arc<Plugin>,
    /// Per source (index into the sources), the meter indices it selects.
    pub(super) selections: Vec<(usize, BTreeSet<usize>)>,
    /// Discoverers whose resources it polls, per source; none: the source's meters
    /// name no discoverer, and the pollster is called once per cycle for it.
    pub(super) discoverers: Vec<(usize, Vec<String>)>,
}

/// A resource with its handle.
pub(super) type Interned = (ResourceHandle, Arc<Resource>);

/// The resources one pollster polls this cycle, and which source each came from.
pub(super) struct Targets {
    /// Each resource once, in the order handed to the pollster.
    pub(super) resources: Vec<Interned>,
    /// Per source (index), the handles of the resources polled for it.
    pub(super) per_source: Vec<(usize, BTreeSet<ResourceHandle>)>,
}

/// A pollster's plan with its targets, and which of them fall in each chunk of the
/// cycle (indices into `targets.resources`).
pub(super) struct Work {
    pub(super) plan: PollPlan,
    /// Shared by the pollsters fed by the same discoverers for the same sources.
    pub(super) targets: Arc<Targets>,
    /// Likewise.
    pub(super) chunks: Arc<Vec<Vec<usize>>>,
    /// Called once in the cycle's first chunk, with no resources: a pollster that names
    /// its own, for the sources whose meters name no discoverer.
    pub(super) once: bool,
}

/// Which pollster serves which sources, with which meters and discoverers.
pub(super) fn plan(plugins: &PluginSet, sources: &[Source]) -> Vec<PollPlan> {
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
            // Ceilometer's `name:parameter` discovery entries are kept whole: the
            // parameter goes to the discoverer.
            let names: BTreeSet<String> = if source.discovery.is_empty() {
                selected.iter().filter_map(|m| pollster.info.meters[*m].default_discoverer.clone()).collect()
            } else {
                source.discovery.iter().cloned().collect()
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

/// Every pollster's targets (made once for the pollsters fed by the same discoverers
/// for the same sources), and the cycle's order: each resource once, as the plans list
/// them, which the chunks cut.
pub(super) fn chunked(
    plans: Vec<PollPlan>,
    sources: &[Source],
    discovered: &HashMap<String, Arc<Vec<Interned>>>,
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

/// The resources a pollster polls: what its sources' discoverers found, plus their
/// static resources, each once.
fn targets(
    plan: &PollPlan,
    sources: &[Source],
    discovered: &HashMap<String, Arc<Vec<Interned>>>,
    registry: &Registry,
) -> Targets {
    let mut targets = Targets { resources: Vec::new(), per_source: Vec::new() };
    let mut seen = BTreeSet::new();
    for (source, names) in &plan.discoverers {
        let mut handles = BTreeSet::new();
        // With coordination, this agent's share of each group, by the resource's id.
        let partition = sources[*source].partition.as_deref();
        let ours = |group: &str, id: &str| partition.is_none_or(|p| p.owns(group, id));
        let found = names.iter().flat_map(|name| {
            discovered
                .get(name)
                .into_iter()
                .flat_map(|found| found.iter())
                .filter(|(_, resource)| ours(name, &resource.id))
                .cloned()
        });
        let fixed = sources[*source]
            .resources
            .iter()
            .filter(|id| ours(crate::coordination::STATIC_GROUP, id))
            .map(|id| intern(registry, Resource::bare(id)));
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

pub(super) fn intern(registry: &Registry, resource: Resource) -> Interned {
    let handle = registry.intern_resource(resource);
    (handle, registry.resource(handle).expect("a handle just interned resolves"))
}
