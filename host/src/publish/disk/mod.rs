//! `policy=disk`: a publisher whose batches go through a queue on disk
//! ([`log::SegmentLog`]) before they are sent, so that what its peer cannot take now
//! — a broker away for an hour, the agent restarted meanwhile — is sent later, in
//! order, instead of being held in memory or dropped.
//!
//! `notifier://…?policy=disk&max_disk_mib=1024` (and the same on `tcp://`, `http(s)://`,
//! `prometheus://`, `otlp://`, `gnocchi://` and the database URLs): each batch is
//! appended to the queue under `<state_dir>/queue/<sink>-<hash of the URL>/`, then the
//! queue is sent from its head, a record at a time, each acknowledged on disk once the
//! publisher under it has delivered all of it. When the peer cannot be reached the
//! record stays, and sending starts again after a backoff (100 ms to 30 s); samples
//! the peer refuses for good are counted as dropped, not retried. Delivery is at least
//! once: a record partly sent when the peer went away, or when the agent was killed,
//! is sent again whole (each sample with the same message id, so a database stores it
//! once). Full, the queue drops its oldest segment (an eighth of `max_disk_mib`) and
//! counts those samples.

mod log;
pub mod record;

pub use log::{bytes_in, Cut, Head, LogError, SegmentLog};

use super::{Batch, Delivery, PublishError, Publisher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Samples in one record at most: a large host's cycle is queued in parts, each sent
/// and acknowledged on its own.
const RECORD_SAMPLES: usize = 10_000;

/// Schemes whose publishers can sit behind a disk queue: those that know whether their
/// peer took the samples.
pub const SCHEMES: &[&str] = &[
    "notifier",
    "tcp",
    "http",
    "https",
    "prometheus",
    "otlp",
    "gnocchi",
    "postgresql",
    "postgres",
    "sqlite",
    "database",
];

/// A disk queue's settings, from its publisher's URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskOptions {
    /// Bytes of segments at most (`max_disk_mib`, 1024 MiB by default).
    pub max_bytes: u64,
}

impl DiskOptions {
    /// Takes `policy=disk` and `max_disk_mib` out of a URL's query: the disk queue's
    /// options if it asks for one, and the URL its publisher reads (with neither).
    pub fn split(url: &url::Url) -> Result<(Option<Self>, url::Url), String> {
        let pairs: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        let disk = pairs.iter().any(|(k, v)| k == "policy" && v == "disk");
        let max_mib = pairs.iter().rev().find(|(k, _)| k == "max_disk_mib").map(|(_, v)| v.clone());
        if !disk {
            return match max_mib {
                Some(_) => Err("`max_disk_mib` applies to `policy=disk` only".into()),
                None => Ok((None, url.clone())),
            };
        }
        if !SCHEMES.contains(&url.scheme()) {
            return Err(format!(
                "`policy=disk` is for publishers that know whether their peer took the samples: {}",
                SCHEMES.join(", ")
            ));
        }
        let max_mib: u64 = match max_mib {
            None => 1024,
            Some(text) => text
                .parse()
                .ok()
                .filter(|mib| *mib >= 1)
                .ok_or(format!("option `max_disk_mib={text}` is not a whole number of MiB (at least 1)"))?,
        };
        let mut inner = url.clone();
        let rest: Vec<&(String, String)> = pairs.iter().filter(|(k, _)| k != "policy" && k != "max_disk_mib").collect();
        if rest.is_empty() {
            inner.set_query(None);
        } else {
            inner.query_pairs_mut().clear().extend_pairs(rest.iter().map(|(k, v)| (k, v)));
        }
        Ok((Some(Self { max_bytes: max_mib << 20 }), inner))
    }

    /// Where a sink's publisher to `url` keeps its queue, under `state_dir`: named for
    /// the sink and the URL without the queue's own options, so that a new
    /// `max_disk_mib` keeps the queue.
    pub fn dir(state_dir: &Path, sink: &str, url: &str) -> PathBuf {
        use sha2::Digest;
        let peer = url::Url::parse(url)
            .ok()
            .and_then(|parsed| Self::split(&parsed).ok())
            .map_or_else(|| url.to_string(), |(_, inner)| inner.to_string());
        let hash = hex::encode(&sha2::Sha256::digest(peer.as_bytes())[..6]);
        let sink: String =
            sink.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        state_dir.join("queue").join(format!("{sink}-{hash}"))
    }
}

/// The queues under `state_dir` that hold samples but belong to no publisher of
/// `in_use` (their sink or URL changed): each with the bytes it holds. They are not
/// sent; the agent warns of them at start.
pub fn orphans(state_dir: &Path, in_use: &[PathBuf]) -> Vec<(PathBuf, u64)> {
    let Ok(queues) = std::fs::read_dir(state_dir.join("queue")) else { return Vec::new() };
    let mut found: Vec<(PathBuf, u64)> = queues
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|dir| !in_use.contains(dir))
        .map(|dir| {
            let bytes = bytes_in(&dir);
            (dir, bytes)
        })
        .filter(|(_, bytes)| *bytes > 0)
        .collect();
    found.sort();
    found
}

/// A publisher behind a disk queue (see the module's documentation).
pub struct DiskPublisher<P> {
    url: String,
    inner: P,
    log: SegmentLog,
    backoff: backon::ExponentialBackoff,
    next_attempt: Instant,
    /// Whether the last attempt failed (to log the recovery once).
    failing: bool,
    /// Whether samples waited (from an earlier run, or an outage): the queue's
    /// emptying is logged once.
    backlog: bool,
}

impl<P: Publisher> DiskPublisher<P> {
    /// Opens the queue in `dir` (checking every record; what is torn is cut off and
    /// reported) in front of `inner`, which must hand back what it cannot send rather
    /// than hold it.
    pub fn open(url: &str, inner: P, dir: &Path, options: DiskOptions) -> Result<(Self, Cut), PublishError> {
        let (log, cut) = SegmentLog::open(dir, options.max_bytes)
            .map_err(|error| PublishError::Url { url: super::shown_url(url), message: error.to_string() })?;
        let backlog = log.samples() > 0;
        if backlog || cut.records > 0 {
            tracing::info!(
                publisher = %super::shown_url(url), queue = %dir.display(), samples = log.samples(),
                cut_records = cut.records, cut_samples = cut.samples,
                "disk queue opened with samples from an earlier run; sending them first"
            );
        }
        let publisher = Self {
            url: super::shown_url(url),
            inner,
            log,
            backoff: super::reconnect_backoff(),
            next_attempt: Instant::now(),
            failing: false,
            backlog,
        };
        Ok((publisher, cut))
    }

    /// Sends the queue from its head while the peer takes it.
    async fn drain(&mut self) -> Delivery {
        let mut delivery = Delivery::default();
        while Instant::now() >= self.next_attempt {
            let head = match self.log.head() {
                Ok(Some(head)) => head,
                Ok(None) => {
                    if std::mem::take(&mut self.backlog) {
                        tracing::info!(publisher = %self.url, "disk queue empty: everything queued was sent");
                    }
                    break;
                }
                Err(error) => {
                    tracing::error!(publisher = %self.url, %error, "cannot read the disk queue");
                    self.back_off();
                    break;
                }
            };
            let batch = match head {
                log::Head::Record { samples, payload } => match record::decode(&payload) {
                    Ok(batch) => Some(batch),
                    Err(error) => {
                        tracing::error!(publisher = %self.url, %error, samples, "disk queue record skipped");
                        delivery.dropped += u64::from(samples);
                        None
                    }
                },
                log::Head::Damaged { samples } => {
                    tracing::error!(publisher = %self.url, samples, "disk queue record damaged on disk; skipped");
                    delivery.dropped += u64::from(samples);
                    None
                }
            };
            if let Some(batch) = batch {
                let mut done = match self.inner.publish(&batch).await {
                    Ok(done) => done,
                    Err(error) => {
                        tracing::warn!(publisher = %self.url, %error, "cannot send from the disk queue");
                        self.back_off();
                        break;
                    }
                };
                if self.inner.pending() > 0 {
                    let rest = self.inner.retry().await;
                    done.sent += rest.sent;
                    done.dropped += rest.dropped;
                }
                if self.inner.take_unreachable() {
                    self.back_off();
                    break;
                }
                delivery.sent += done.sent;
                delivery.dropped += done.dropped;
            }
            if let Err(error) = self.log.acknowledge() {
                tracing::error!(publisher = %self.url, %error, "cannot acknowledge in the disk queue");
                self.back_off();
                break;
            }
            if self.failing {
                self.failing = false;
                tracing::info!(publisher = %self.url, waiting = self.log.samples(), "peer reachable again; sending the disk queue");
            }
            self.backoff = super::reconnect_backoff();
        }
        delivery
    }

    fn back_off(&mut self) {
        let delay = self.backoff.next().unwrap_or(Duration::from_secs(30));
        self.next_attempt = Instant::now() + delay;
        self.backlog = true;
        if !self.failing {
            tracing::warn!(
                publisher = %self.url, waiting = self.log.samples(), queue = %self.log.dir().display(),
                "cannot send; samples wait in the disk queue and are sent when the peer is back"
            );
        }
        self.failing = true;
        tracing::debug!(publisher = %self.url, waiting = self.log.samples(), retry_in_ms = delay.as_millis() as u64, "disk queue backing off");
    }
}

impl<P: Publisher> Publisher for DiskPublisher<P> {
    async fn publish(&mut self, batch: &Batch) -> Result<Delivery, PublishError> {
        let mut dropped = 0;
        for start in (0..batch.samples.len()).step_by(RECORD_SAMPLES) {
            let (samples, payload) = record::encode(batch, start..(start + RECORD_SAMPLES).min(batch.samples.len()));
            match self.log.append(samples, &payload) {
                Ok(0) => {}
                Ok(lost) => {
                    tracing::warn!(publisher = %self.url, dropped = lost, max_bytes = self.log.bytes(), "disk queue full; its oldest samples dropped");
                    dropped += lost;
                }
                Err(error) => {
                    tracing::error!(publisher = %self.url, %error, samples, "cannot write to the disk queue; samples dropped");
                    dropped += u64::from(samples);
                }
            }
        }
        let mut delivery = self.drain().await;
        delivery.dropped += dropped;
        Ok(delivery)
    }

    fn pending(&self) -> u64 {
        self.log.samples()
    }

    async fn retry(&mut self) -> Delivery {
        self.drain().await
    }

    async fn flush(&mut self) -> Result<Delivery, PublishError> {
        self.next_attempt = Instant::now();
        let delivery = self.drain().await;
        let closed = self.inner.flush().await?;
        Ok(Delivery { sent: delivery.sent + closed.sent, dropped: delivery.dropped + closed.dropped })
    }

    fn keeps_across_restarts(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use crate::sample::{Meter, MeterType, Resource, Sample};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    /// A peer that is up or away, takes volumes, and refuses one for good.
    struct Peer {
        up: Arc<AtomicBool>,
        got: Arc<Mutex<Vec<f64>>>,
        refused: f64,
        unreachable: bool,
    }

    impl Publisher for Peer {
        async fn publish(&mut self, batch: &Batch) -> Result<Delivery, PublishError> {
            let count = batch.samples.len() as u64;
            if !self.up.load(Ordering::SeqCst) {
                self.unreachable = true;
                return Ok(Delivery { sent: 0, dropped: count });
            }
            let mut delivery = Delivery::default();
            for sample in &batch.samples {
                if sample.volume == self.refused {
                    delivery.dropped += 1;
                } else {
                    self.got.lock().unwrap().push(sample.volume);
                    delivery.sent += 1;
                }
            }
            Ok(delivery)
        }

        fn take_unreachable(&mut self) -> bool {
            std::mem::take(&mut self.unreachable)
        }

        async fn flush(&mut self) -> Result<Delivery, PublishError> {
            Ok(Delivery::default())
        }
    }

    fn batch(volumes: std::ops::Range<u32>) -> Batch {
        let registry = Arc::new(Registry::new());
        let meter = registry.intern_meter(Meter { name: "cpu".into(), kind: MeterType::Gauge, unit: "%".into() });
        let resource = registry.intern_resource(Resource::bare("vm-1"));
        let samples = volumes
            .map(|v| Sample { meter, resource, volume: f64::from(v), timestamp: 1_790_000_000_000_000_000 })
            .collect();
        Batch::new(samples, registry, Arc::from("openstack"))
    }

    #[tokio::test]
    async fn what_the_peer_cannot_take_waits_on_disk_in_order_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (up, got) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())));
        let peer = || Peer { up: up.clone(), got: got.clone(), refused: 13.0, unreachable: false };
        let options = DiskOptions { max_bytes: 1 << 20 };
        let (mut queued, _) = DiskPublisher::open("tcp://peer:1", peer(), dir.path(), options).unwrap();
        let mut delivery = Delivery::default();
        for part in [0..10, 10..20] {
            let done = queued.publish(&batch(part)).await.unwrap();
            (delivery.sent, delivery.dropped) = (delivery.sent + done.sent, delivery.dropped + done.dropped);
        }
        assert_eq!((delivery.sent, delivery.dropped, queued.pending()), (0, 0, 20), "nothing lost while away");
        assert!(queued.keeps_across_restarts());
        drop(queued);

        // Started again, the peer back: the earlier run's samples go first, in order;
        // the one the peer refuses for good is counted, not retried.
        up.store(true, Ordering::SeqCst);
        let (mut queued, cut) = DiskPublisher::open("tcp://peer:1", peer(), dir.path(), options).unwrap();
        assert_eq!((cut.records, queued.pending()), (0, 20));
        let done = queued.publish(&batch(20..25)).await.unwrap();
        assert_eq!((done.sent, done.dropped, queued.pending()), (24, 1, 0));
        let expected: Vec<f64> = (0..25).filter(|v| *v != 13).map(f64::from).collect();
        assert_eq!(*got.lock().unwrap(), expected);

        // Away again: the queue backs off, then sends once the peer is back.
        up.store(false, Ordering::SeqCst);
        assert_eq!(queued.publish(&batch(25..30)).await.unwrap().sent, 0);
        up.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut sent = 0;
        while queued.pending() > 0 {
            assert!(Instant::now() < deadline, "the queue never drained");
            tokio::time::sleep(Duration::from_millis(20)).await;
            sent += queued.retry().await.sent;
        }
        assert_eq!(sent, 5);
        assert_eq!(got.lock().unwrap().len(), 29);
    }

    #[test]
    fn policy_disk_comes_out_of_the_url_the_publisher_reads() {
        let parse = |text: &str| DiskOptions::split(&url::Url::parse(text).unwrap());
        let (disk, inner) = parse("notifier://mq/?policy=disk&topic=metering&max_disk_mib=5").unwrap();
        assert_eq!(disk, Some(DiskOptions { max_bytes: 5 << 20 }));
        assert_eq!(inner.as_str(), "notifier://mq/?topic=metering");
        let (disk, inner) = parse("tcp://collector:4953?policy=disk").unwrap();
        assert_eq!((disk.map(|d| d.max_bytes), inner.as_str()), (Some(1 << 30), "tcp://collector:4953"));
        assert_eq!(parse("notifier://mq/?policy=queue").unwrap().0, None);
        assert!(parse("udp://collector:4952?policy=disk").unwrap_err().contains("notifier, tcp"));
        assert!(parse("notifier://mq/?max_disk_mib=5").unwrap_err().contains("policy=disk"));
        assert!(parse("notifier://mq/?policy=disk&max_disk_mib=0").unwrap_err().contains("max_disk_mib=0"));
        let misspelt = crate::publish::PublisherConfig::parse("notifier://mq/?policy=disc").unwrap_err().to_string();
        assert!(misspelt.contains("(did you mean `disk`?)"), "{misspelt}");
    }

    #[test]
    fn queues_no_publisher_uses_are_found() {
        let state = tempfile::tempdir().unwrap();
        let used = DiskOptions::dir(state.path(), "meters", "tcp://a:1");
        let gone = DiskOptions::dir(state.path(), "meters", "tcp://old:1");
        let empty = DiskOptions::dir(state.path(), "other", "tcp://b:1");
        for dir in [&used, &gone, &empty] {
            SegmentLog::open(dir, 1 << 20).unwrap();
        }
        SegmentLog::open(&gone, 1 << 20).unwrap().0.append(3, b"abc").unwrap();
        SegmentLog::open(&used, 1 << 20).unwrap().0.append(3, b"abc").unwrap();
        assert_eq!(orphans(state.path(), std::slice::from_ref(&used)), [(gone, 15)]);
    }

    #[test]
    fn each_sink_and_url_has_a_directory_of_its_own() {
        let state = Path::new("/var/lib/pollen");
        let a = DiskOptions::dir(state, "meters", "notifier://u:p@mq/");
        assert!(a.to_str().unwrap().starts_with("/var/lib/pollen/queue/meters-"), "{a:?}");
        assert_ne!(a, DiskOptions::dir(state, "meters", "notifier://u:p@mq2/"));
        assert_ne!(a, DiskOptions::dir(state, "other", "notifier://u:p@mq/"));
        assert_eq!(
            DiskOptions::dir(state, "meters", "notifier://u:p@mq/?policy=disk&max_disk_mib=5"),
            DiskOptions::dir(state, "meters", "notifier://u:p@mq/?max_disk_mib=50&policy=disk"),
            "a new bound keeps the queue"
        );
        assert!(DiskOptions::dir(state, "../x", "tcp://a:1")
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("___x-"));
    }
}
