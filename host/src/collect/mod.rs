//! `pollen collect`: the collector. It listens on its inputs (UDP datagrams and TCP
//! frames of msgpack metering messages, as Pollen's and Ceilometer's `udp://` and
//! Pollen's `tcp://` publishers send), checks each message's signature, and hands the
//! samples to the pipeline's sinks, batched. Bad input of any kind (not msgpack, not
//! a map, a missing field, a non-finite volume, a bad signature) is counted, logged at
//! a bounded rate, and skipped; it never stops an input.

pub mod config;
mod inputs;

use crate::publish::metering::decode::ReceivedSample;
use crate::publish::{Batch, PublishContext, PublisherHandle};
use crate::registry::Registry;
use crate::sample::{Metadata, Meter, Owner, Resource, Sample};
use config::CollectorFile;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Samples held before they go to the sinks.
const BATCH: usize = 1000;
/// How long a sample waits for its batch at most.
const BATCH_WAIT: Duration = Duration::from_millis(200);
/// Received samples on their way to the batcher at most.
const IN_FLIGHT: usize = 10_000;
/// How long shutdown waits for each publisher.
const DRAIN: Duration = Duration::from_secs(10);
/// Resources no message named for this long are forgotten (their next message makes
/// them anew), so that a long-running collector's registry stays bounded.
const RESOURCE_LIFETIME: Duration = Duration::from_secs(3600);

/// What the collector counted, all inputs together.
#[derive(Debug, Default)]
pub struct Counters {
    /// Messages taken.
    pub received: AtomicU64,
    /// Messages whose signature failed.
    pub rejected: AtomicU64,
    /// Messages that could not be read.
    pub malformed: AtomicU64,
    /// Samples handed to sinks.
    pub forwarded: AtomicU64,
}

impl Counters {
    /// Counts a refused message; logs the first and then every power of two, with why.
    fn refuse(&self, input: &str, signature: bool, why: &dyn std::fmt::Display) {
        let counter = if signature { &self.rejected } else { &self.malformed };
        let count = counter.fetch_add(1, Ordering::Relaxed) + 1;
        if count.is_power_of_two() {
            let what = if signature { "rejected (signature)" } else { "malformed" };
            tracing::warn!(input, count, "message {what}: {why}");
        }
    }
}

/// A received sample and the input it came through.
type Received = (usize, ReceivedSample);

/// Runs the collector until `shutdown` resolves, then drains: what was received goes
/// to the sinks, and the publishers send what they hold.
pub async fn run(file: CollectorFile, shutdown: impl Future<Output = ()>) -> anyhow::Result<Arc<Counters>> {
    let secrets = Arc::new(file.collector.telemetry_secrets.clone());
    // What it forwards is signed with the first secret, so another collector accepts it.
    let context = PublishContext { telemetry_secret: secrets.first().cloned().unwrap_or_default() };
    let mut sinks: HashMap<String, Vec<PublisherHandle>> = HashMap::new();
    for sink in &file.sinks {
        let mut handles = Vec::new();
        for url in &sink.publishers {
            handles.push(PublisherHandle::start(url, &context).await?);
        }
        sinks.insert(sink.name.clone(), handles);
    }
    let counters = Arc::new(Counters::default());
    let (sender, mut received) = mpsc::channel::<Received>(IN_FLIGHT);
    let mut listening = Vec::new();
    for (index, input) in file.collector.inputs.iter().enumerate() {
        let (kind, address) = input.parse().map_err(anyhow::Error::msg)?;
        let task = inputs::listen(kind, address, index, sender.clone(), secrets.clone(), counters.clone()).await?;
        tracing::info!(input = %input.url, "collector input listening");
        listening.push(task);
    }
    drop(sender);

    let registry = Arc::new(Registry::new());
    let routes: Vec<Vec<String>> = file.collector.inputs.iter().map(|i| i.sinks.clone()).collect();
    let mut pending: Vec<Vec<(Arc<str>, Sample)>> = vec![Vec::new(); routes.len()];
    let mut ticker = tokio::time::interval(BATCH_WAIT);
    let mut eviction = tokio::time::interval(Duration::from_secs(60));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            next = received.recv() => {
                let Some((input, sample)) = next else { break };
                let (source, sample) = intern(&registry, sample);
                pending[input].push((source, sample));
                if pending[input].len() >= BATCH {
                    forward(&registry, &sinks, &routes[input], &mut pending[input], &counters);
                }
            }
            _ = ticker.tick() => {
                for (input, samples) in pending.iter_mut().enumerate() {
                    forward(&registry, &sinks, &routes[input], samples, &counters);
                }
            }
            _ = eviction.tick() => {
                let evicted = registry.evict_resources_unused_for(RESOURCE_LIFETIME);
                if evicted > 0 {
                    tracing::info!(evicted, "resources no message named for an hour were forgotten");
                }
            }
        }
    }
    tracing::info!("collector stopping: what was received goes to the sinks, then the publishers drain");
    for task in listening {
        task.abort();
    }
    while let Ok((input, sample)) = received.try_recv() {
        let (source, sample) = intern(&registry, sample);
        pending[input].push((source, sample));
    }
    for (input, samples) in pending.iter_mut().enumerate() {
        forward(&registry, &sinks, &routes[input], samples, &counters);
    }
    for handle in sinks.into_values().flatten() {
        handle.shutdown(DRAIN).await;
    }
    Ok(counters)
}

/// A received sample in the registry: its source, and the sample on its meter and
/// resource (the resource's owner and metadata as the message carried them). The same
/// id with other metadata or another owner (a sample's own metadata, a resource
/// whose metadata changed) is a resource entry of its own, so that no message's
/// metadata is replaced by another's.
fn intern(registry: &Registry, received: ReceivedSample) -> (Arc<str>, Sample) {
    use std::hash::{Hash, Hasher};
    let meter = registry.intern_meter(Meter { name: received.name, kind: received.kind, unit: received.unit });
    let mut version = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(&received.metadata).unwrap_or_default().hash(&mut version);
    (&received.user_id, &received.project_id).hash(&mut version);
    let namespace = registry.namespace_of_plugin(&format!("collected-{:016x}", version.finish()));
    let owner = (received.user_id.is_some() || received.project_id.is_some()).then(|| {
        Arc::new(Owner { user_id: received.user_id.map(Into::into), project_id: received.project_id.map(Into::into) })
    });
    let resource = registry.intern_in(
        namespace,
        Resource { metadata: Metadata::from_map(&received.metadata), owner, ..Resource::bare(&received.resource_id) },
    );
    (Arc::from(received.source), Sample { meter, resource, volume: received.volume, timestamp: received.timestamp })
}

/// Hands an input's pending samples to its sinks, a batch per source.
fn forward(
    registry: &Arc<Registry>,
    sinks: &HashMap<String, Vec<PublisherHandle>>,
    route: &[String],
    pending: &mut Vec<(Arc<str>, Sample)>,
    counters: &Counters,
) {
    if pending.is_empty() {
        return;
    }
    let mut by_source: HashMap<Arc<str>, Vec<Sample>> = HashMap::new();
    for (source, sample) in pending.drain(..) {
        by_source.entry(source).or_default().push(sample);
    }
    for (source, samples) in by_source {
        counters.forwarded.fetch_add(samples.len() as u64, Ordering::Relaxed);
        let batch = Arc::new(Batch { samples, registry: registry.clone(), source });
        for sink in route {
            for handle in sinks.get(sink).into_iter().flatten() {
                handle.send(batch.clone());
            }
        }
    }
}
