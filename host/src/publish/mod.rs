//! Publishers: where samples go, chosen by URL in a sink (`notifier://`, `udp://`,
//! `tcp://`, `http(s)://`, `file://`, `stdout://`), options as query parameters.
//!
//! Each publisher runs in its own task behind a bounded queue, so one that is slow
//! never blocks polling or the others; what a full queue refuses is counted and
//! logged, never dropped silently.

mod database;
pub mod disk;
mod file;
pub mod gnocchi;
mod http;
mod local_queue;
pub mod metering;
pub(crate) mod notifier;
pub(crate) mod options;
pub mod otlp;
pub mod prometheus;
pub mod receipt;
pub mod signature;
mod stdout;
mod tcp;
mod udp;

pub use local_queue::Policy;
pub use notifier::NotifierOptions;

use crate::registry::Registry;
use crate::registry::{MeterHandle, ResourceHandle};
use crate::sample::{iso8601, EncodedResource, Meter, Sample, SampleRecord};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Batches a publisher's queue holds before it refuses more.
const QUEUE_BATCHES: usize = 64;
/// Samples a publisher's queue holds at most, all batches together (24 bytes each:
/// about 24 MiB), however large the batches are. A batch that finds the queue empty is
/// always taken, so that one cycle larger than this still goes out whole.
pub const QUEUE_SAMPLES: u64 = 1_000_000;

/// A publisher that could not be built or could not send.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The URL is malformed, of an unknown scheme, or has bad options.
    #[error("publisher `{url}`: {message}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// Writing or sending failed.
    #[error("publisher `{url}`: {source}")]
    Io {
        /// The URL.
        url: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The publisher a URL names, with its options.
#[derive(Debug, Clone, PartialEq)]
pub enum PublisherConfig {
    /// `stdout://`: JSON lines on standard output.
    Stdout,
    /// `file:///path?max_bytes=N&backup_count=N`: JSON lines appended to a file.
    File(file::FileOptions),
    /// `notifier://...`: oslo.messaging notifications over AMQP.
    Notifier(notifier::NotifierOptions),
    /// `udp://host:port`: one msgpack datagram per sample.
    Udp(options::SocketOptions),
    /// `tcp://host:port`: length-prefixed msgpack over a stream.
    Tcp(options::SocketOptions),
    /// `http(s)://...`: JSON POSTs.
    Http(http::HttpOptions),
    /// `prometheus://host:port/metrics/job/NAME`: pushes to a Pushgateway.
    Prometheus(http::HttpOptions),
    /// `otlp://host:4318`: OpenTelemetry metrics over OTLP/HTTP.
    Otlp(otlp::OtlpOptions),
    /// `gnocchi://...`: measures through Gnocchi's REST API.
    Gnocchi(Box<gnocchi::GnocchiOptions>),
    /// `postgresql://…`, `sqlite:///…`, `database://`: stored (see [`crate::store`]).
    Database(crate::store::StoreUrl),
    /// Any of those that know whether their peer took the samples, with
    /// `policy=disk`: behind a queue on disk (see [`disk`]).
    Disk(Box<PublisherConfig>, disk::DiskOptions),
}

/// Schemes Pollen publishes to.
pub const KNOWN_SCHEMES: &[&str] = &[
    "stdout",
    "file",
    "notifier",
    "udp",
    "tcp",
    "http",
    "https",
    "prometheus",
    "otlp",
    "gnocchi",
    "postgresql",
    "sqlite",
    "database",
];

impl PublisherConfig {
    /// Parses a sink's publisher URL and its options. Checks only the text: nothing
    /// is opened or connected.
    pub fn parse(text: &str) -> Result<Self, PublishError> {
        let error = |message: String| PublishError::Url { url: text.to_string(), message };
        let url = url::Url::parse(text).map_err(|e| {
            error(format!("not a URL ({e}); e.g. `file:///var/lib/pollen/samples.jsonl` or `stdout://`"))
        })?;
        if let (Some(disk), inner) = disk::DiskOptions::split(&url).map_err(error)? {
            let inner = Self::parse(inner.as_str()).map_err(|e| match e {
                PublishError::Url { message, .. } => error(message),
                other => other,
            })?;
            return Ok(Self::Disk(Box::new(inner), disk));
        }
        match url.scheme() {
            "stdout" => options::Query::new(&url).finish().map(|()| Self::Stdout).map_err(error),
            "file" => file::FileOptions::from_url(&url).map(Self::File).map_err(error),
            "notifier" => notifier::NotifierOptions::from_url(&url).map(Self::Notifier).map_err(error),
            "udp" => options::SocketOptions::from_url(&url, Some(udp::DEFAULT_PORT)).map(Self::Udp).map_err(error),
            "tcp" => options::SocketOptions::from_url(&url, None).map(Self::Tcp).map_err(error),
            "http" | "https" => http::HttpOptions::from_url(&url).map(Self::Http).map_err(error),
            "prometheus" => prometheus::PushPublisher::options(&url).map(Self::Prometheus).map_err(error),
            "otlp" => otlp::OtlpOptions::from_url(&url).map(Self::Otlp).map_err(error),
            "gnocchi" => gnocchi::GnocchiOptions::from_url(&url).map(|o| Self::Gnocchi(Box::new(o))).map_err(error),
            "postgresql" | "postgres" | "sqlite" | "database" => {
                crate::store::StoreUrl::parse(text).map(Self::Database).map_err(error)
            }
            other => Err(error(format!(
                "unknown scheme `{other}`{}; Pollen publishes to: {}",
                crate::suggest::did_you_mean(other, KNOWN_SCHEMES.iter().copied()),
                KNOWN_SCHEMES.join(", ")
            ))),
        }
    }
}

/// The delays between reconnection attempts: exponential from 100 ms to 30 s, with
/// jitter, for as long as it takes.
pub(crate) fn reconnect_backoff() -> backon::ExponentialBackoff {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(30))
        .with_jitter()
        .without_max_times()
        .build()
}

/// What publishers need besides their URL.
#[derive(Debug, Clone)]
pub struct PublishContext {
    /// Key of the metering messages' signatures; empty disables signing.
    pub telemetry_secret: String,
    /// Where disk queues live (`<state_dir>/queue/`).
    pub state_dir: std::path::PathBuf,
}

impl Default for PublishContext {
    /// No signing; Pollen's state directory ([`crate::store::state_dir`]).
    fn default() -> Self {
        Self { telemetry_secret: String::new(), state_dir: crate::store::state_dir() }
    }
}

/// What one call of a publisher achieved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Samples that reached their destination.
    pub sent: u64,
    /// Samples given up on (counted and logged, never silent).
    pub dropped: u64,
}

/// Samples of one source and cycle, with what is needed to write them out.
pub struct Batch {
    /// The samples.
    pub samples: Vec<Sample>,
    /// Where their handles resolve.
    pub registry: Arc<Registry>,
    /// The `source` field of every sample.
    pub source: Arc<str>,
    /// For samples received rather than polled (the collector): their message ids
    /// and the receipt its input waits on.
    pub received: Option<Received>,
}

/// What a batch of received samples carries besides them.
pub struct Received {
    /// Each sample's `message_id` as it arrived, in the order of the samples: what
    /// makes a redelivered sample the same one where it is stored.
    pub message_ids: Vec<Box<str>>,
    /// Settled when every publisher is done with the batch.
    pub receipt: Option<Arc<receipt::Receipt>>,
}

/// Samples a publisher writes or sends at once, however large the batch (a cycle of a
/// large host is hundreds of thousands): bounds its buffers and its requests.
pub const CHUNK: usize = 1000;

/// Samples a JSON-lines writer (`file://`, `stdout://`) encodes before each write: its
/// buffer stays near 200 KiB however large the resources' metadata (a line carries
/// its resource's), where a [`CHUNK`] of lines is over a megabyte, kept per publisher.
pub const LINES_CHUNK: usize = 200;

impl Batch {
    /// A batch of polled samples.
    pub fn new(samples: Vec<Sample>, registry: Arc<Registry>, source: Arc<str>) -> Self {
        Self { samples, registry, source, received: None }
    }

    /// Tells the batch's input, if it waits, that a publisher could not deliver it.
    pub fn fail_receipt(&self) {
        if let Some(receipt) = self.received.as_ref().and_then(|r| r.receipt.as_ref()) {
            receipt.fail();
        }
    }

    /// Calls `f` with each sample resolved (a fresh sample id each). Samples whose
    /// handles do not resolve are skipped.
    pub fn for_each_record(&self, f: impl FnMut(&SampleRecord)) {
        self.records().for_each_of(&self.samples, f);
    }

    /// The batch in parts of at most [`CHUNK`] samples, for publishers that encode a
    /// whole batch at once.
    pub fn chunks(&self) -> impl Iterator<Item = Batch> + '_ {
        self.samples
            .chunks(CHUNK)
            .map(|samples| Batch::new(samples.to_vec(), self.registry.clone(), self.source.clone()))
    }

    /// The same for some of the batch's samples (a [`CHUNK`]).
    pub fn for_each_record_of(&self, samples: &[Sample], f: impl FnMut(&SampleRecord)) {
        self.records().for_each_of(samples, f);
    }

    /// The batch's records, for a publisher that writes it in parts: what they share
    /// is resolved and encoded once for all the parts.
    pub fn records(&self) -> Records<'_> {
        Records {
            batch: self,
            resources: HashMap::new(),
            meters: HashMap::new(),
            meter_heads: HashMap::new(),
            source_tail: None,
            timestamp: (i64::MIN, String::new()),
            timestamp_json: Vec::new(),
        }
    }

    /// Writes each sample as one JSON line (Ceilometer's `as_dict()` keys) to `out`.
    pub fn write_json_lines(&self, out: &mut Vec<u8>) {
        self.records().write_json_lines_of(&self.samples, out)
    }
}

/// A batch's samples as records: each resource and meter resolved once, each
/// resource's metadata encoded once (when a record of it is first written), each
/// timestamp's text made once, however many parts the batch is written in.
pub struct Records<'b> {
    batch: &'b Batch,
    resources: HashMap<ResourceHandle, Option<EncodedResource>>,
    meters: HashMap<MeterHandle, Option<Arc<Meter>>>,
    /// Each meter's JSON line up to its volume.
    meter_heads: HashMap<MeterHandle, Option<Box<[u8]>>>,
    /// A JSON line's `source` key and value, and the start of its `id`.
    source_tail: Option<Vec<u8>>,
    timestamp: (i64, String),
    /// The timestamp's text as a JSON string.
    timestamp_json: Vec<u8>,
}

impl Records<'_> {
    /// Calls `f` with each of `samples` (the batch's) resolved. Samples whose handles do
    /// not resolve are skipped.
    pub fn for_each_of(&mut self, samples: &[Sample], mut f: impl FnMut(&SampleRecord)) {
        let registry = &self.batch.registry;
        for sample in samples {
            let meter = self.meters.entry(sample.meter).or_insert_with(|| registry.meter(sample.meter));
            let (Some(meter), Some(encoded)) =
                (meter, encoded_resource(&mut self.resources, registry, sample.resource))
            else {
                continue;
            };
            if self.timestamp.0 != sample.timestamp {
                self.timestamp = (sample.timestamp, iso8601(sample.timestamp));
            }
            f(&SampleRecord { meter, encoded, volume: sample.volume, timestamp: &self.timestamp.1 });
        }
    }

    /// Writes each of `samples` as one JSON line (Ceilometer's `Sample.as_dict()` keys,
    /// a fresh sample id each) to `out`. The parts of a line that depend only
    /// on the meter, the resource or the batch are encoded once and copied: a line
    /// costs the same however large its resource's metadata.
    pub fn write_json_lines_of(&mut self, samples: &[Sample], out: &mut Vec<u8>) {
        let registry = &self.batch.registry;
        let source = self.source_tail.get_or_insert_with(|| {
            let mut tail = b",\"source\":".to_vec();
            serde_json::to_writer(&mut tail, &*self.batch.source).expect("text serializes into memory");
            tail.extend_from_slice(b",\"id\":\"");
            tail
        });
        for sample in samples {
            let head = self.meter_heads.entry(sample.meter).or_insert_with(|| {
                let meter = registry.meter(sample.meter)?;
                let mut head = b"{\"name\":".to_vec();
                serde_json::to_writer(&mut head, &meter.name).expect("text serializes into memory");
                head.extend_from_slice(b",\"type\":\"");
                head.extend_from_slice(meter.kind.as_str().as_bytes());
                head.extend_from_slice(b"\",\"unit\":");
                serde_json::to_writer(&mut head, &meter.unit).expect("text serializes into memory");
                head.extend_from_slice(b",\"volume\":");
                Some(head.into_boxed_slice())
            });
            let (Some(head), Some(encoded)) = (head, encoded_resource(&mut self.resources, registry, sample.resource))
            else {
                continue;
            };
            if self.timestamp.0 != sample.timestamp {
                self.timestamp = (sample.timestamp, iso8601(sample.timestamp));
                self.timestamp_json.clear();
                serde_json::to_writer(&mut self.timestamp_json, &self.timestamp.1)
                    .expect("text serializes into memory");
            }
            out.extend_from_slice(head);
            serde_json::to_writer(&mut *out, &sample.volume).expect("a number serializes into memory");
            out.extend_from_slice(encoded.owner_json());
            out.extend_from_slice(&self.timestamp_json);
            out.extend_from_slice(b",\"resource_metadata\":");
            out.extend_from_slice(encoded.metadata().get().as_bytes());
            out.extend_from_slice(source);
            let mut id = [0u8; uuid::fmt::Hyphenated::LENGTH];
            out.extend_from_slice(uuid::Uuid::new_v4().hyphenated().encode_lower(&mut id).as_bytes());
            out.extend_from_slice(b"\",\"monotonic_time\":null}\n");
        }
    }
}

/// A batch's resource with its encodings, resolved the first time it is asked for.
fn encoded_resource<'r>(
    resources: &'r mut HashMap<ResourceHandle, Option<EncodedResource>>,
    registry: &Registry,
    handle: ResourceHandle,
) -> Option<&'r EncodedResource> {
    resources.entry(handle).or_insert_with(|| registry.resource(handle).map(EncodedResource::new)).as_ref()
}

/// Something that sends batches somewhere. Runs in its own task.
pub trait Publisher: Send + 'static {
    /// Sends one batch (or holds it, under the publisher's policy).
    fn publish(&mut self, batch: &Batch) -> impl Future<Output = Result<Delivery, PublishError>> + Send;

    /// Samples held back for a later attempt.
    fn pending(&self) -> u64 {
        0
    }

    /// Tries again to send what is held back.
    fn retry(&mut self) -> impl Future<Output = Delivery> + Send {
        async { Delivery::default() }
    }

    /// Whether it could not reach its peer since the last call (which forgets it):
    /// what it dropped meanwhile may be sent again later. A disk queue keeps a batch
    /// when this says so, and counts the drops as final otherwise.
    fn take_unreachable(&mut self) -> bool {
        false
    }

    /// Whether what it still holds at shutdown stays for the next start (a disk
    /// queue) rather than being lost.
    fn keeps_across_restarts(&self) -> bool {
        false
    }

    /// Sends what is held back, if it can, and makes sure everything sent has left.
    fn flush(&mut self) -> impl Future<Output = Result<Delivery, PublishError>> + Send;
}

/// How often a publisher that holds samples tries again when no new batch comes.
const RETRY_TICK: Duration = Duration::from_millis(500);

/// A running publisher: its queue and its task.
pub struct PublisherHandle {
    url: String,
    queue: Option<mpsc::Sender<Arc<Batch>>>,
    task: JoinHandle<()>,
    stats: Arc<PublisherStats>,
    /// Samples in the queue now.
    queued: Arc<AtomicU64>,
    /// Its figures on `/metrics`, while it runs.
    _shown: crate::self_metrics::Registered,
}

/// What a publisher did.
#[derive(Debug, Default)]
pub struct PublisherStats {
    /// Samples taken into its queue.
    pub accepted: AtomicU64,
    /// Samples its full queue refused (also counted in `dropped`).
    pub refused: AtomicU64,
    /// Samples sent.
    pub published: AtomicU64,
    /// Samples given up on: refused by a full queue, lost to a failed write, dropped by
    /// the publisher's policy, or still held at shutdown.
    pub dropped: AtomicU64,
    /// Samples it holds to send again (its peer away), as of its last attempt.
    pub held: AtomicU64,
    /// Attempts to send again what it held.
    pub retries: AtomicU64,
    /// When it last sent samples, and when it last failed and why.
    outcomes: std::sync::Mutex<Outcomes>,
}

/// A publisher URL as shown in status and logs: its password cut.
pub fn shown_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// A publisher's last success and last failure.
#[derive(Debug, Default, Clone)]
struct Outcomes {
    success: Option<std::time::SystemTime>,
    failure: Option<(std::time::SystemTime, String)>,
}

impl PublisherStats {
    fn add(&self, delivery: Delivery) {
        self.published.fetch_add(delivery.sent, Ordering::Relaxed);
        self.dropped.fetch_add(delivery.dropped, Ordering::Relaxed);
        let mut outcomes = self.outcomes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if delivery.sent > 0 {
            outcomes.success = Some(std::time::SystemTime::now());
        }
        if delivery.dropped > 0 {
            outcomes.failure = Some((std::time::SystemTime::now(), format!("{} samples dropped", delivery.dropped)));
        }
    }

    fn failed(&self, error: &str) {
        let mut outcomes = self.outcomes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        outcomes.failure = Some((std::time::SystemTime::now(), error.to_string()));
    }

    fn outcomes(&self) -> Outcomes {
        self.outcomes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn delivery(&self) -> Delivery {
        Delivery { sent: self.published.load(Ordering::Relaxed), dropped: self.dropped.load(Ordering::Relaxed) }
    }
}

impl PublisherHandle {
    /// Builds the publisher a URL names and starts its task (outside any sink: a
    /// disk queue is named for the sink `publisher`).
    pub async fn start(url: &str, context: &PublishContext) -> Result<Self, PublishError> {
        Self::start_for_sink("publisher", url, context).await
    }

    /// Builds the publisher a URL names, for the sink `sink`, and starts its task.
    pub async fn start_for_sink(sink: &str, url: &str, context: &PublishContext) -> Result<Self, PublishError> {
        let (config, disk) = match PublisherConfig::parse(url)? {
            PublisherConfig::Disk(inner, options) => {
                (*inner, Some((disk::DiskOptions::dir(&context.state_dir, sink, url), options)))
            }
            config => (config, None),
        };
        // Behind a disk queue, a publisher hands back what it cannot send.
        let held = if disk.is_some() { Policy::Handover } else { Policy::Queue };
        let secret = || context.telemetry_secret.clone();
        match config {
            PublisherConfig::Stdout => Ok(Self::spawn(sink, url, stdout::StdoutPublisher::new())),
            PublisherConfig::File(options) => {
                Ok(Self::spawn(sink, url, file::FilePublisher::open(url, options).await?))
            }
            PublisherConfig::Udp(options) => Ok(Self::spawn(sink, url, udp::UdpPublisher::new(url, options, secret()))),
            PublisherConfig::Notifier(mut options) => {
                if disk.is_some() {
                    options.policy = Policy::Handover;
                }
                Self::spawn_queued(sink, url, notifier::publisher(url, options, secret())?, disk).await
            }
            PublisherConfig::Tcp(options) => {
                Self::spawn_queued(sink, url, tcp::publisher(url, options, secret(), held), disk).await
            }
            PublisherConfig::Http(options) => {
                Self::spawn_queued(sink, url, http::HttpPublisher::new(url, options)?, disk).await
            }
            PublisherConfig::Prometheus(options) => {
                Self::spawn_queued(sink, url, prometheus::PushPublisher::new(url, options)?, disk).await
            }
            PublisherConfig::Otlp(options) => {
                Self::spawn_queued(sink, url, otlp::OtlpPublisher::new(url, options)?, disk).await
            }
            PublisherConfig::Gnocchi(options) => {
                Self::spawn_queued(sink, url, gnocchi::GnocchiPublisher::new(url, *options)?, disk).await
            }
            PublisherConfig::Database(target) => {
                Self::spawn_queued(sink, url, database::DatabasePublisher::open(target).await?, disk).await
            }
            PublisherConfig::Disk(..) => unreachable!("`policy=disk` is taken out of the URL once"),
        }
    }

    /// Starts `publisher`, behind the disk queue in `disk` if it is given.
    async fn spawn_queued<P: Publisher>(
        sink: &str,
        url: &str,
        publisher: P,
        disk: Option<(std::path::PathBuf, disk::DiskOptions)>,
    ) -> Result<Self, PublishError> {
        let Some((dir, options)) = disk else { return Ok(Self::spawn(sink, url, publisher)) };
        let owned = url.to_string();
        let opened = tokio::task::spawn_blocking(move || disk::DiskPublisher::open(&owned, publisher, &dir, options))
            .await
            .map_err(|e| PublishError::Url { url: shown_url(url), message: format!("opening the disk queue: {e}") })?;
        let (queued, cut) = opened?;
        let handle = Self::spawn(sink, url, queued);
        if cut.records > 0 {
            tracing::warn!(
                publisher = %shown_url(url), records = cut.records, samples = cut.samples, bytes = cut.bytes,
                "the disk queue had torn or damaged records; they were cut off and their samples counted as dropped"
            );
            handle.stats.dropped.fetch_add(cut.samples, Ordering::Relaxed);
        }
        Ok(handle)
    }

    fn spawn(sink: &str, url: &str, mut publisher: impl Publisher) -> Self {
        let (queue, mut batches) = mpsc::channel::<Arc<Batch>>(QUEUE_BATCHES);
        let stats = Arc::new(PublisherStats::default());
        let queued = Arc::new(AtomicU64::new(0));
        let metrics = crate::self_metrics::get();
        let shown = metrics.publishers().register(sink, url, stats.clone(), queued.clone());
        let send_seconds = metrics.publish_seconds.with_label_values(&[sink, &shown_url(url)]);
        let (task_stats, task_url, task_queued) = (stats.clone(), url.to_string(), queued.clone());
        let task = tokio::spawn(async move {
            loop {
                let next = if publisher.pending() > 0 {
                    tokio::select! {
                        batch = batches.recv() => batch,
                        () = tokio::time::sleep(RETRY_TICK) => {
                            task_stats.retries.fetch_add(1, Ordering::Relaxed);
                            task_stats.add(publisher.retry().await);
                            task_stats.held.store(publisher.pending(), Ordering::Relaxed);
                            continue;
                        }
                    }
                } else {
                    batches.recv().await
                };
                let Some(batch) = next else { break };
                task_queued.fetch_sub(batch.samples.len() as u64, Ordering::Relaxed);
                let started = std::time::Instant::now();
                let published = publisher.publish(&batch).await;
                if crate::self_metrics::get().enabled() {
                    send_seconds.observe(started.elapsed().as_secs_f64());
                }
                match published {
                    Ok(delivery) => {
                        if delivery.dropped > 0 {
                            batch.fail_receipt();
                        }
                        task_stats.add(delivery)
                    }
                    Err(error) => {
                        batch.fail_receipt();
                        let count = batch.samples.len() as u64;
                        tracing::error!(publisher = %task_url, %error, samples = count, "publishing failed; samples lost");
                        task_stats.add(Delivery { sent: 0, dropped: count });
                        task_stats.failed(&error.to_string());
                    }
                }
                let held = publisher.pending();
                if held > 0 && task_stats.held.swap(held, Ordering::Relaxed) == 0 {
                    task_stats.failed(&format!("its peer is away: {held} samples held to send again"));
                }
                task_stats.held.store(held, Ordering::Relaxed);
            }
            match publisher.flush().await {
                Ok(delivery) => task_stats.add(delivery),
                Err(error) => tracing::error!(publisher = %task_url, %error, "flushing failed"),
            }
            let unsent = publisher.pending();
            if unsent > 0 && publisher.keeps_across_restarts() {
                tracing::info!(publisher = %task_url, samples = unsent, "samples stay in the disk queue for the next start");
            } else if unsent > 0 {
                tracing::error!(publisher = %task_url, samples = unsent, "could not send these samples before shutdown; they are lost");
                task_stats.add(Delivery { sent: 0, dropped: unsent });
            }
        });
        Self { url: url.to_string(), queue: Some(queue), task, stats, queued, _shown: shown }
    }

    /// What it has done, for `pollen status` (`sink` is its sink's name).
    pub fn status(&self, sink: &str) -> crate::health::PublisherStatus {
        let outcomes = self.stats.outcomes();
        let iso = crate::health::iso;
        crate::health::PublisherStatus {
            sink: sink.to_string(),
            url: crate::publish::shown_url(&self.url),
            queued: self.queued.load(Ordering::Relaxed),
            held: self.stats.held.load(Ordering::Relaxed),
            published: self.stats.published.load(Ordering::Relaxed),
            dropped: self.stats.dropped.load(Ordering::Relaxed),
            last_success: outcomes.success.map(iso),
            last_error: outcomes.failure.map(|(at, why)| (iso(at), why)),
        }
    }

    /// The URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What it did so far.
    pub fn stats(&self) -> &PublisherStats {
        &self.stats
    }

    /// Its counters, to read while it runs (an HTTP endpoint).
    pub fn shared_stats(&self) -> Arc<PublisherStats> {
        self.stats.clone()
    }

    /// Queues a batch; if the queue is full (of batches, or of samples: see
    /// [`QUEUE_SAMPLES`]) the batch is dropped, counted and logged.
    pub fn send(&self, batch: Arc<Batch>) {
        let Some(queue) = &self.queue else { return };
        let count = batch.samples.len() as u64;
        let queued = self.queued.load(Ordering::Relaxed);
        let room = queued == 0 || queued + count <= QUEUE_SAMPLES;
        // Counted in before it is sent: the task counts it out as soon as it takes it.
        let refused = if room {
            self.queued.fetch_add(count, Ordering::Relaxed);
            queue.try_send(batch).err().map(|full| {
                self.queued.fetch_sub(count, Ordering::Relaxed);
                full.into_inner()
            })
        } else {
            Some(batch)
        };
        match refused {
            None => {
                self.stats.accepted.fetch_add(count, Ordering::Relaxed);
            }
            Some(batch) => {
                batch.fail_receipt();
                self.stats.refused.fetch_add(count, Ordering::Relaxed);
                self.stats.dropped.fetch_add(count, Ordering::Relaxed);
                tracing::warn!(publisher = %self.url, samples = count, "publisher queue full; batch dropped");
            }
        }
    }

    /// Queues a batch, waiting for room: for tools and benchmarks that want every
    /// sample through. The daemon uses [`send`](Self::send), which never waits.
    pub async fn send_waiting(&self, batch: Arc<Batch>) {
        if let Some(queue) = &self.queue {
            let count = batch.samples.len() as u64;
            self.queued.fetch_add(count, Ordering::Relaxed);
            match queue.send(batch).await {
                Ok(()) => self.stats.accepted.fetch_add(count, Ordering::Relaxed),
                Err(_) => self.stats.dropped.fetch_add(count, Ordering::Relaxed),
            };
        }
    }

    /// Stops taking batches, sends what is queued and flushes, within `deadline`.
    /// Returns what the publisher did over its life; what it still held when the
    /// deadline passed is counted as dropped and reported.
    pub async fn shutdown(mut self, deadline: Duration) -> Delivery {
        self.queue = None;
        if tokio::time::timeout(deadline, &mut self.task).await.is_err() {
            self.task.abort();
            let _ = (&mut self.task).await;
            let so_far = self.stats.delivery();
            let refused = self.stats.refused.load(Ordering::Relaxed);
            let accepted = self.stats.accepted.load(Ordering::Relaxed);
            // Accepted samples neither sent nor already given up on were in flight.
            let in_flight = accepted.saturating_sub(so_far.sent + so_far.dropped.saturating_sub(refused));
            self.stats.dropped.fetch_add(in_flight, Ordering::Relaxed);
            tracing::error!(
                publisher = %self.url, samples = in_flight,
                "publisher did not finish within {deadline:?}; the samples it held are lost"
            );
        }
        self.stats.delivery()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_with_ceilometer_keys() {
        let mut metadata = serde_json::Map::new();
        metadata.insert("display_name".into(), serde_json::Value::from("vm1"));
        let registry = Arc::new(Registry::new());
        let meter = registry.intern_meter(Meter {
            name: "cpu".into(),
            kind: crate::sample::MeterType::Cumulative,
            unit: "ns".into(),
        });
        let resource = registry.intern_resource(crate::sample::Resource {
            id: "uuid-1-vda".into(),
            handed: crate::sample::Handed::named("instance-1"),
            owner: crate::sample::Owner::of(Some("u"), None),
            metadata: metadata.into(),
            extra: crate::sample::Metadata::from_map(serde_json::json!({"disk_name": "vda"}).as_object().unwrap()),
        });
        let timestamp =
            chrono::DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z").unwrap().timestamp_nanos_opt().unwrap();
        let batch =
            Batch::new(vec![Sample { meter, resource, volume: 42.0, timestamp }], registry, Arc::from("openstack"));
        let mut line = Vec::new();
        batch.write_json_lines(&mut line);
        let json: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(json["name"], "cpu");
        assert_eq!(json["type"], "cumulative");
        assert_eq!(json["unit"], "ns");
        assert_eq!(json["volume"], 42.0);
        assert_eq!(json["user_id"], "u");
        assert_eq!(json["project_id"], serde_json::Value::Null);
        assert_eq!(json["resource_id"], "uuid-1-vda");
        assert_eq!(json["timestamp"], "2026-11-22T10:00:00.000000+00:00");
        assert_eq!(json["resource_metadata"]["display_name"], "vm1");
        assert_eq!(json["resource_metadata"]["disk_name"], "vda");
        assert_eq!(json["source"], "openstack");
        assert_eq!(json.as_object().unwrap().len(), 14);
    }

    /// A record as it was written before each resource's metadata was encoded once:
    /// every key per sample, the metadata merged per sample.
    struct PerSample<'a> {
        meter: &'a Meter,
        resource: &'a crate::sample::Resource,
        sample: &'a Sample,
        source: &'a str,
        id: &'a str,
    }

    impl serde::Serialize for PerSample<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let metadata = crate::metadata::Merged { base: &self.resource.metadata, over: &self.resource.extra };
            let mut map = serializer.serialize_map(Some(14))?;
            map.serialize_entry("name", &self.meter.name)?;
            map.serialize_entry("type", self.meter.kind.as_str())?;
            map.serialize_entry("unit", &self.meter.unit)?;
            map.serialize_entry("volume", &self.sample.volume)?;
            map.serialize_entry("user_id", &self.resource.user_id())?;
            map.serialize_entry("user_name", &None::<String>)?;
            map.serialize_entry("project_id", &self.resource.project_id())?;
            map.serialize_entry("project_name", &None::<String>)?;
            map.serialize_entry("resource_id", &self.resource.id)?;
            map.serialize_entry("timestamp", &iso8601(self.sample.timestamp))?;
            map.serialize_entry("resource_metadata", &metadata)?;
            map.serialize_entry("source", self.source)?;
            map.serialize_entry("id", self.id)?;
            map.serialize_entry("monotonic_time", &None::<f64>)?;
            map.end()
        }
    }

    /// The JSON lines written with each resource's metadata encoded once are, byte for
    /// byte, what the per-sample encoding wrote: instances and their disks (device keys
    /// over the instance's metadata), nested and escaped values.
    #[test]
    fn records_encoded_once_per_resource_are_byte_identical_to_per_sample_ones() {
        use crate::sample::{Metadata, MeterType, Owner, Resource};
        let registry = Arc::new(Registry::new());
        let cpu = registry.intern_meter(Meter { name: "cpu".into(), kind: MeterType::Cumulative, unit: "ns".into() });
        let reads = registry.intern_meter(Meter {
            name: "disk.device.read.bytes".into(),
            kind: MeterType::Cumulative,
            unit: "B".into(),
        });
        let metadata = serde_json::json!({"display_name": "say \"hi\" \\ ünïcode\n", "flavor": {"name": "m1", "ram": 512},
            "image": null, "ratio": 0.1, "big": 1e16, "tags": ["a", "it's"], "disk_name": "base's"});
        let mut samples = Vec::new();
        for instance in 0..3 {
            let base = Resource {
                owner: Owner::of(Some("u"), (instance != 1).then_some("p")),
                metadata: Metadata::from_map(metadata.as_object().unwrap()),
                ..Resource::bare(&format!("vm-{instance}"))
            };
            let disk = Resource {
                extra: Metadata::from_map(serde_json::json!({"disk_name": "vda", "zz": [1, 2]}).as_object().unwrap()),
                ..Resource { id: format!("vm-{instance}-vda").into(), ..base.clone() }
            };
            let (base, disk) = (registry.intern_resource(base), registry.intern_resource(disk));
            for round in 0..3 {
                let timestamp = 1_790_000_000_123_456_789 + round;
                samples.push(Sample { meter: cpu, resource: base, volume: 1.5 * round as f64, timestamp });
                samples.push(Sample { meter: reads, resource: disk, volume: 1e16, timestamp });
            }
        }
        let batch = Batch::new(samples, registry.clone(), Arc::from("openstack"));
        // In parts, as the file publisher writes a batch: the encodings are shared.
        let (mut written, mut records) = (Vec::new(), batch.records());
        for part in batch.samples.chunks(4) {
            records.write_json_lines_of(part, &mut written);
        }
        let lines: Vec<&str> = std::str::from_utf8(&written).unwrap().lines().collect();
        assert_eq!(lines.len(), batch.samples.len());
        for (line, sample) in lines.iter().zip(&batch.samples) {
            let id: serde_json::Value = serde_json::from_str(line).unwrap();
            let reference = PerSample {
                meter: &registry.meter(sample.meter).unwrap(),
                resource: &registry.resource(sample.resource).unwrap(),
                sample,
                source: "openstack",
                id: id["id"].as_str().unwrap(),
            };
            assert_eq!(*line, serde_json::to_string(&reference).unwrap());
        }
    }

    #[test]
    fn urls_name_their_publisher_or_say_what_is_wrong() {
        assert_eq!(PublisherConfig::parse("stdout://").unwrap(), PublisherConfig::Stdout);
        let PublisherConfig::File(file) =
            PublisherConfig::parse("file:///tmp/s.jsonl?max_bytes=100&backup_count=2").unwrap()
        else {
            panic!("a file publisher")
        };
        assert_eq!((file.path.to_str(), file.max_bytes, file.backup_count), (Some("/tmp/s.jsonl"), Some(100), 2));
        let error = PublisherConfig::parse("kafka://broker").unwrap_err().to_string();
        assert!(error.contains("unknown scheme `kafka`"), "{error}");
        assert!(
            error.contains("stdout, file, notifier, udp, tcp, http, https, prometheus, otlp, gnocchi, postgresql, sqlite, database"),
            "{error}"
        );
        assert!(PublisherConfig::parse("samples.jsonl").unwrap_err().to_string().contains("not a URL"));
        let error = PublisherConfig::parse("notifier://?topic=x&bacth_size=3").unwrap_err().to_string();
        assert!(error.contains("unknown option `bacth_size` (did you mean `batch_size`?)"), "{error}");
        let error = PublisherConfig::parse("notifer://").unwrap_err().to_string();
        assert!(error.contains("unknown scheme `notifer` (did you mean `notifier`?)"), "{error}");
    }

    #[test]
    fn notifier_urls_default_as_ceilometer_does() {
        let PublisherConfig::Notifier(defaults) = PublisherConfig::parse("notifier://").unwrap() else { panic!() };
        assert_eq!(defaults.amqp_uri, "amqp://guest:guest@127.0.0.1:5672/%2f");
        assert_eq!((defaults.topic.as_str(), defaults.exchange.as_str()), ("notifications", "ceilometer"));
        assert_eq!((defaults.batch_size, defaults.policy, defaults.max_queue_length), (50, Policy::Default, 1024));
        let PublisherConfig::Notifier(custom) = PublisherConfig::parse(
            "notifier://u:p@mq.example:5673/telemetry?topic=metering&policy=queue&max_queue_length=7&per_meter_topic=1&ssl=1",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(custom.amqp_uri, "amqps://u:p@mq.example:5673/telemetry");
        assert_eq!((custom.topic.as_str(), custom.policy, custom.max_queue_length), ("metering", Policy::Queue, 7));
        assert!(custom.per_meter_topic);
    }
}
