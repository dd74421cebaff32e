//! `pollen collect`: the collector. It takes metering messages from its inputs
//! (RabbitMQ's notification queues; UDP datagrams and TCP frames of msgpack, as
//! Pollen's and Ceilometer's `udp://` and Pollen's `tcp://` publishers send), checks
//! each message's signature, and hands the samples to the pipeline's sinks, batched —
//! a `database` publisher stores them. Bad input of any kind (not msgpack, not a map,
//! a missing field, a non-finite volume, a bad signature) is counted, logged at a
//! bounded rate, and skipped; it never stops an input. An AMQP message is
//! acknowledged only once every publisher is done with its samples.

pub mod amqp;
pub mod config;
mod inputs;
mod interner;
pub mod metrics;
mod retention;

use crate::publish::metering::decode::{DecodeError, ReceivedSample};
use crate::publish::receipt::Receipt;
use crate::publish::{Batch, PublishContext, PublisherHandle, Received};
use crate::registry::Registry;
use crate::sample::Sample;
use config::CollectorFile;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Samples held before they go to the sinks.
const BATCH: usize = 1000;
/// How long a sample waits for its batch at most.
const BATCH_WAIT: Duration = Duration::from_millis(200);
/// Messages on their way to the batcher at most.
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
    /// AMQP messages acknowledged (every publisher done with their samples).
    pub acknowledged: AtomicU64,
    /// AMQP messages handed back to be tried again.
    pub requeued: AtomicU64,
    /// AMQP messages moved to the dead-letter queue.
    pub dead_lettered: AtomicU64,
    /// AMQP inputs not consuming now (the broker unreachable).
    down: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl Counters {
    /// Records whether an input consumes.
    pub(crate) fn consuming(&self, input: &str, consuming: bool) {
        let mut down = self.down.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if consuming {
            down.remove(input);
        } else {
            down.insert(input.to_string());
        }
    }

    /// The inputs not consuming now.
    pub fn inputs_down(&self) -> Vec<String> {
        self.down.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().cloned().collect()
    }

    /// Counts a refused message; logs the first and then every power of two, with why.
    fn refuse(&self, input: &str, signature: bool, why: &dyn std::fmt::Display) {
        let counter = if signature { &self.rejected } else { &self.malformed };
        let count = counter.fetch_add(1, Ordering::Relaxed) + 1;
        if count.is_power_of_two() {
            let what = if signature { "rejected (signature)" } else { "malformed" };
            tracing::warn!(input, count, "message {what}: {why}");
        }
    }

    /// Counts a message or sample that could not be read: rejected when its signature
    /// failed, malformed otherwise.
    fn refuse_decoded(&self, input: &str, error: &DecodeError) {
        let signature = matches!(error, DecodeError::BadSignature | DecodeError::Unsigned);
        self.refuse(input, signature, error);
    }
}

/// What an input hands on: the samples of one message, and, from an input that
/// acknowledges (AMQP), what settles the message once they are delivered.
pub(crate) struct Arrival {
    /// The input's index.
    pub input: usize,
    /// The message's samples.
    pub samples: Vec<ReceivedSample>,
    /// Settled when every batch holding its samples is done.
    pub ack: Option<Arc<amqp::MessageAck>>,
    /// Failed before: sent in a batch of its own, so it holds no other back.
    pub alone: bool,
}

/// An input's samples waiting for their batch, and the messages they came in.
#[derive(Default)]
struct Pending {
    samples: Vec<(Arc<str>, Sample, Box<str>)>,
    acks: Vec<Arc<amqp::MessageAck>>,
}

impl Pending {
    fn take(&mut self, interner: &mut interner::Interner, arrival: Arrival) {
        for mut sample in arrival.samples {
            let message_id: Box<str> = std::mem::take(&mut sample.message_id).into();
            let (source, sample) = interner.intern(sample);
            self.samples.push((source, sample, message_id));
        }
        self.acks.extend(arrival.ack);
    }
}

/// Runs the collector until `shutdown` resolves, then drains: what was received goes
/// to the sinks, the publishers send what they hold, and the AMQP inputs settle
/// what they took before they close.
pub async fn run(file: CollectorFile, shutdown: impl Future<Output = ()>) -> anyhow::Result<Arc<Counters>> {
    let secrets = Arc::new(file.collector.telemetry_secrets.clone());
    // What it forwards is signed with the first secret, so another collector accepts it.
    let context = PublishContext {
        telemetry_secret: secrets.first().cloned().unwrap_or_default(),
        state_dir: crate::store::state_dir(),
    };
    let mut sinks: HashMap<String, Vec<PublisherHandle>> = HashMap::new();
    for sink in &file.sinks {
        let mut handles = Vec::new();
        for url in &sink.publishers {
            handles.push(PublisherHandle::start_for_sink(&sink.name, url, &context).await?);
        }
        sinks.insert(sink.name.clone(), handles);
    }
    let retention = retention::start(&file);
    let counters = Arc::new(Counters::default());
    let mut listening = Vec::new();
    let addresses: Vec<std::net::SocketAddr> =
        file.collector.prometheus_listen.iter().filter_map(|a| a.parse().ok()).collect();
    if !addresses.is_empty() {
        let publishers = file
            .sinks
            .iter()
            .flat_map(|sink| {
                let handles = sinks.get(&sink.name).map(Vec::as_slice).unwrap_or_default();
                handles.iter().map(|h| (sink.name.clone(), crate::publish::shown_url(h.url()), h.shared_stats()))
            })
            .collect();
        let endpoint = metrics::CollectorEndpoint { counters: counters.clone(), publishers };
        listening.extend(crate::publish::prometheus::serve(Arc::new(endpoint), &addresses).await?);
    }
    if let Some(api) = &file.collector.api {
        let checked = api.check().map_err(|e| anyhow::anyhow!("collector.api: {e}"))?;
        let url = api.store_url(file.first_store()).map_err(|e| anyhow::anyhow!("collector.api: {e}"))?;
        let listener = crate::api::bind(checked.listen).await?;
        tracing::info!(listen = %checked.listen, store = %url.shown(), "API serving Ceilometer's v2 paths");
        listening.push(tokio::spawn(async move {
            let reader = crate::api::open_patiently(&url).await;
            crate::api::serve_on(listener, reader, checked.authenticator).await;
        }));
    }
    let (sender, mut received) = mpsc::channel::<Arrival>(IN_FLIGHT);
    let (stop, stopping) = watch::channel(false);
    let mut consuming = Vec::new();
    for (index, input) in file.collector.inputs.iter().enumerate() {
        let name = crate::publish::shown_url(&input.url);
        match input.parse().map_err(anyhow::Error::msg)? {
            config::Input::Amqp(config) => consuming.push(tokio::spawn(amqp::consume(
                config,
                name,
                index,
                sender.clone(),
                secrets.clone(),
                counters.clone(),
                stopping.clone(),
            ))),
            socket => {
                let task = inputs::listen(socket, index, sender.clone(), secrets.clone(), counters.clone()).await?;
                tracing::info!(input = %name, "collector input listening");
                listening.push(task);
            }
        }
    }
    drop(sender);
    crate::service::feed_watchdog();
    crate::service::ready(&format!("collecting from {} inputs", file.collector.inputs.len()));

    let registry = Arc::new(Registry::new());
    let mut interner = interner::Interner::new(registry.clone());
    let routes: Vec<Vec<String>> = file.collector.inputs.iter().map(|i| i.sinks.clone()).collect();
    let mut pending: Vec<Pending> = (0..routes.len()).map(|_| Pending::default()).collect();
    let mut ticker = tokio::time::interval(BATCH_WAIT);
    let mut eviction = tokio::time::interval(Duration::from_secs(60));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            next = received.recv() => {
                let Some(arrival) = next else { break };
                let input = arrival.input;
                if arrival.alone {
                    // A message that failed before goes in a batch of its own.
                    forward(&registry, &sinks, &routes[input], &mut pending[input], &counters);
                    pending[input].take(&mut interner, arrival);
                    forward(&registry, &sinks, &routes[input], &mut pending[input], &counters);
                    continue;
                }
                pending[input].take(&mut interner, arrival);
                if pending[input].samples.len() >= BATCH {
                    forward(&registry, &sinks, &routes[input], &mut pending[input], &counters);
                }
            }
            _ = ticker.tick() => {
                for (input, waiting) in pending.iter_mut().enumerate() {
                    forward(&registry, &sinks, &routes[input], waiting, &counters);
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
        // Awaited, so that its socket is closed (a reload binds it again).
        task.abort();
        let _ = task.await;
    }
    let _ = stop.send(true);
    while let Ok(arrival) = received.try_recv() {
        let input = arrival.input;
        pending[input].take(&mut interner, arrival);
    }
    for (input, waiting) in pending.iter_mut().enumerate() {
        forward(&registry, &sinks, &routes[input], waiting, &counters);
    }
    drop(received);
    for handle in sinks.into_values().flatten() {
        handle.shutdown(DRAIN).await;
    }
    for task in consuming {
        if tokio::time::timeout(DRAIN, task).await.is_err() {
            tracing::warn!("an AMQP input did not settle its messages in time; the broker hands them out again");
        }
    }
    if let Some(retention) = retention {
        retention.abort();
    }
    Ok(counters)
}

/// A source's samples and their message ids.
type SamplesAndIds = (Vec<Sample>, Vec<Box<str>>);

/// Hands an input's pending samples to its sinks, a batch per source, each with the
/// message ids they arrived with and a receipt that settles their messages.
fn forward(
    registry: &Arc<Registry>,
    sinks: &HashMap<String, Vec<PublisherHandle>>,
    route: &[String],
    pending: &mut Pending,
    counters: &Counters,
) {
    if pending.samples.is_empty() {
        // Messages all of whose samples were refused are settled with nothing to do.
        pending.acks.clear();
        return;
    }
    let acks = Arc::new(std::mem::take(&mut pending.acks));
    let mut by_source: HashMap<Arc<str>, SamplesAndIds> = HashMap::new();
    for (source, sample, message_id) in pending.samples.drain(..) {
        let (samples, ids) = by_source.entry(source).or_default();
        samples.push(sample);
        ids.push(message_id);
    }
    for (source, (samples, message_ids)) in by_source {
        counters.forwarded.fetch_add(samples.len() as u64, Ordering::Relaxed);
        let receipt = (!acks.is_empty()).then(|| {
            let acks = acks.clone();
            Receipt::new(move |delivered| {
                if !delivered {
                    acks.iter().for_each(|ack| ack.fail());
                }
            })
        });
        let mut batch = Batch::new(samples, registry.clone(), source);
        batch.received = Some(Received { message_ids, receipt });
        let batch = Arc::new(batch);
        for sink in route {
            for handle in sinks.get(sink).into_iter().flatten() {
                handle.send(batch.clone());
            }
        }
    }
}
