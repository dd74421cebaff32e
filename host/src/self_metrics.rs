//! Pollen's own metrics (`pollen_*`), served on `/metrics` beside the samples' series:
//! cycles, plugin calls, samples polled, publishers, libvirt calls and reloads.
//! Counters and histograms are the `prometheus` crate's, in one registry for the
//! process; the publishers' figures are read from the same records `pollen status`
//! reports ([`crate::publish::PublisherStats`]).

use crate::publish::prometheus::{encode, family_of};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

/// The process's own metrics.
pub struct SelfMetrics {
    registry: Registry,
    enabled: AtomicBool,
    /// Cycles run, per polling task (its interval).
    pub cycles: IntCounterVec,
    /// Cycles that took longer than their interval.
    pub cycle_overruns: IntCounterVec,
    /// How long cycles took.
    pub cycle_seconds: HistogramVec,
    /// Calls into each plugin.
    pub plugin_calls: IntCounterVec,
    /// Failed calls into each plugin, by kind.
    pub plugin_errors: IntCounterVec,
    /// Instances made of each plugin (the first, and one after each failure).
    pub plugin_instantiations: IntCounterVec,
    /// How long calls into each plugin took.
    pub plugin_call_seconds: HistogramVec,
    /// Samples the pollsters gave, per meter.
    pub samples_polled: IntCounterVec,
    /// Calls to libvirt, per call.
    pub libvirt_calls: IntCounterVec,
    /// Calls to libvirt that failed (or timed out), per call.
    pub libvirt_errors: IntCounterVec,
    /// How long calls to libvirt took.
    pub libvirt_call_seconds: HistogramVec,
    /// Reloads of the configuration, by outcome.
    pub reloads: IntCounterVec,
    /// How long each publisher took to publish a batch.
    pub publish_seconds: HistogramVec,
    /// Connections each publisher opened to its peer (the first, then reconnections).
    pub publisher_connections: IntCounterVec,
    publishers: Arc<Publishers>,
}

/// Buckets of plugin calls and libvirt calls, in seconds.
const CALL_BUCKETS: &[f64] = &[0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 10.0];
/// Buckets of cycles and publishing, in seconds.
const CYCLE_BUCKETS: &[f64] = &[0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let vec = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric");
    registry.register(Box::new(vec.clone())).expect("registered once");
    vec
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    let vec =
        HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels).expect("a valid metric");
    registry.register(Box::new(vec.clone())).expect("registered once");
    vec
}

static METRICS: LazyLock<SelfMetrics> = LazyLock::new(SelfMetrics::new);

/// The process's own metrics.
pub fn get() -> &'static SelfMetrics {
    &METRICS
}

impl SelfMetrics {
    fn new() -> Self {
        let r = Registry::new();
        let publishers = Arc::new(Publishers::new());
        r.register(Box::new(PublishersCollector(publishers.clone()))).expect("registered once");
        Self {
            cycles: counter(&r, "pollen_cycles_total", "Polling cycles run, per task (its interval in seconds).", &["interval"]),
            cycle_overruns: counter(&r, "pollen_cycle_overruns_total", "Cycles that took longer than their interval.", &["interval"]),
            cycle_seconds: histogram(&r, "pollen_cycle_duration_seconds", "How long a polling cycle took, publishing included.", &["interval"], CYCLE_BUCKETS),
            plugin_calls: counter(&r, "pollen_plugin_calls_total", "Calls into a plugin.", &["plugin"]),
            plugin_errors: counter(
                &r,
                "pollen_plugin_errors_total",
                "Failed plugin calls by kind: trap, deadline, wall_deadline, memory, reported, no_catalog, refused_output.",
                &["plugin", "kind"],
            ),
            plugin_instantiations: counter(&r, "pollen_plugin_instantiations_total", "Instances made of a plugin: the first, then one after each call that discarded it.", &["plugin"]),
            plugin_call_seconds: histogram(&r, "pollen_plugin_call_duration_seconds", "How long a call into a plugin took (wall time).", &["plugin"], CALL_BUCKETS),
            samples_polled: counter(&r, "pollen_samples_polled_total", "Samples the pollsters gave, per meter (before transformers).", &["meter"]),
            libvirt_calls: counter(&r, "pollen_libvirt_calls_total", "Calls to libvirt.", &["call"]),
            libvirt_errors: counter(&r, "pollen_libvirt_errors_total", "Calls to libvirt that failed or timed out.", &["call"]),
            libvirt_call_seconds: histogram(&r, "pollen_libvirt_call_duration_seconds", "How long a call to libvirt took.", &["call"], CALL_BUCKETS),
            reloads: counter(&r, "pollen_reloads_total", "Reloads of the configuration, by outcome: applied or refused.", &["outcome"]),
            publish_seconds: histogram(&r, "pollen_publisher_send_duration_seconds", "How long a publisher took to publish a batch.", &["sink", "publisher"], CYCLE_BUCKETS),
            publisher_connections: counter(&r, "pollen_publisher_connections_total", "Connections a publisher opened to its peer: the first, then each reconnection.", &["publisher"]),
            publishers,
            registry: r,
            enabled: AtomicBool::new(true),
        }
    }

    /// Whether figures are recorded (on unless [`SelfMetrics::set_enabled`] says not;
    /// the benchmarks measure their cost so).
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Turns recording on or off.
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Relaxed);
    }

    /// The sum of a counter over all its label values (a run's total, for the log at
    /// stop).
    pub fn total(counter: &IntCounterVec) -> u64 {
        counter
            .collect()
            .iter()
            .flat_map(|family| family.get_metric())
            .map(|metric| metric.get_counter().get_value() as u64)
            .sum()
    }

    /// Every metric in Prometheus's text format.
    pub fn render(&self) -> String {
        encode(&self.registry.gather())
    }

    /// The running publishers, read when `/metrics` is asked for.
    pub fn publishers(&self) -> &Arc<Publishers> {
        &self.publishers
    }
}

/// The running publishers' records, by sink and URL (password cut).
pub struct Publishers {
    running: Mutex<Vec<PublisherEntry>>,
}

/// One running publisher.
struct PublisherEntry {
    id: u64,
    sink: String,
    url: String,
    stats: Arc<crate::publish::PublisherStats>,
    queued: Arc<std::sync::atomic::AtomicU64>,
}

/// Removes its publisher from `/metrics` when dropped.
pub struct Registered {
    id: u64,
    publishers: Arc<Publishers>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.publishers.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|e| e.id != self.id);
    }
}

impl Publishers {
    fn new() -> Self {
        Self { running: Mutex::new(Vec::new()) }
    }

    /// Shows a publisher's records on `/metrics` until the returned guard is dropped.
    pub fn register(
        self: &Arc<Self>,
        sink: &str,
        url: &str,
        stats: Arc<crate::publish::PublisherStats>,
        queued: Arc<std::sync::atomic::AtomicU64>,
    ) -> Registered {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let entry = PublisherEntry { id, sink: sink.into(), url: crate::publish::shown_url(url), stats, queued };
        self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(entry);
        Registered { id, publishers: self.clone() }
    }
}

/// The publishers' figures as metric families, read at each scrape.
struct PublishersCollector(Arc<Publishers>);

/// A publisher figure: name, help, counter or gauge, and how to read it.
type Figure = (&'static str, &'static str, bool, fn(&PublisherEntry) -> u64);

const FIGURES: &[Figure] = &[
    ("pollen_publisher_queue_samples", "Samples waiting in a publisher's queue.", false, |e| {
        e.queued.load(Ordering::Relaxed)
    }),
    (
        "pollen_publisher_held_samples",
        "Samples a publisher holds to send again (its peer away; on disk with policy=disk).",
        false,
        |e| e.stats.held.load(Ordering::Relaxed),
    ),
    ("pollen_publisher_samples_accepted_total", "Samples taken into a publisher's queue.", true, |e| {
        e.stats.accepted.load(Ordering::Relaxed)
    }),
    ("pollen_publisher_samples_sent_total", "Samples a publisher delivered.", true, |e| {
        e.stats.published.load(Ordering::Relaxed)
    }),
    (
        "pollen_publisher_samples_dropped_total",
        "Samples a publisher gave up on (its full queue, its policy, torn records, or left at shutdown).",
        true,
        |e| e.stats.dropped.load(Ordering::Relaxed),
    ),
    (
        "pollen_publisher_samples_refused_total",
        "Samples a publisher's full queue refused (also counted as dropped).",
        true,
        |e| e.stats.refused.load(Ordering::Relaxed),
    ),
    ("pollen_publisher_retries_total", "Attempts a publisher made to send again what it held.", true, |e| {
        e.stats.retries.load(Ordering::Relaxed)
    }),
];

impl Collector for PublishersCollector {
    fn desc(&self) -> Vec<&Desc> {
        Vec::new()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let running = self.0.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        FIGURES
            .iter()
            .map(|(name, help, is_counter, read)| {
                let series = running.iter().map(|entry| {
                    (vec![("publisher", entry.url.clone()), ("sink", entry.sink.clone())], read(entry) as f64)
                });
                family_of(name, help, *is_counter, series)
            })
            .filter(|family| !family.get_metric().is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_render_in_the_text_format_with_their_labels() {
        let metrics = get();
        metrics.plugin_calls.with_label_values(&["cpu"]).inc_by(3);
        metrics.plugin_errors.with_label_values(&["trap", "trap"]).inc();
        let stats = Arc::new(crate::publish::PublisherStats::default());
        stats.published.store(42, Ordering::Relaxed);
        let queued = Arc::new(std::sync::atomic::AtomicU64::new(7));
        let guard = metrics.publishers().register("meters", "notifier://u:secret@mq/", stats, queued);
        let text = metrics.render();
        assert!(text.contains("pollen_plugin_calls_total{plugin=\"cpu\"} 3"), "{text}");
        assert!(text.contains("pollen_plugin_errors_total{kind=\"trap\",plugin=\"trap\"} 1"), "{text}");
        assert!(
            text.contains("pollen_publisher_samples_sent_total{publisher=\"notifier://u:***@mq/\",sink=\"meters\"} 42"),
            "{text}"
        );
        assert!(
            text.contains("pollen_publisher_queue_samples{publisher=\"notifier://u:***@mq/\",sink=\"meters\"} 7"),
            "{text}"
        );
        assert!(!text.contains("secret"));
        drop(guard);
        assert!(!metrics.render().contains("sink=\"meters\""), "a stopped publisher leaves /metrics");
    }
}
