//! The collector's own `/metrics` (`collector.prometheus_listen`): what its inputs
//! took, refused, acknowledged, handed back and dead-lettered, and what each
//! publisher delivered and dropped; `/readyz` says which AMQP input is not consuming.

use super::Counters;
use crate::publish::prometheus::Endpoint;
use crate::publish::PublisherStats;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What the collector's endpoint serves.
pub struct CollectorEndpoint {
    /// The inputs' counters.
    pub counters: Arc<Counters>,
    /// Each publisher: its sink, its URL (password cut) and its counters.
    pub publishers: Vec<(String, String, Arc<PublisherStats>)>,
}

/// A counter's or gauge's lines.
fn series(out: &mut String, name: &str, kind: &str, help: &str, values: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in values {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

/// A label value in Prometheus's text format: `\`, `"` and newlines escaped.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Endpoint for CollectorEndpoint {
    fn metrics(&self) -> String {
        let counters = &self.counters;
        let mut out = String::new();
        let total = |counter: &std::sync::atomic::AtomicU64| vec![(String::new(), counter.load(Ordering::Relaxed))];
        for (name, help, counter) in [
            ("pollen_collector_messages_received_total", "Messages taken from the inputs.", &counters.received),
            (
                "pollen_collector_samples_rejected_total",
                "Samples whose signature failed (dropped, never stored).",
                &counters.rejected,
            ),
            (
                "pollen_collector_messages_malformed_total",
                "Messages or samples that could not be read.",
                &counters.malformed,
            ),
            ("pollen_collector_samples_forwarded_total", "Samples handed to the sinks.", &counters.forwarded),
            (
                "pollen_collector_messages_acknowledged_total",
                "AMQP messages acknowledged once every publisher was done with their samples.",
                &counters.acknowledged,
            ),
            (
                "pollen_collector_messages_requeued_total",
                "AMQP messages handed back to be tried again.",
                &counters.requeued,
            ),
            (
                "pollen_collector_messages_dead_lettered_total",
                "AMQP messages moved to the dead-letter queue.",
                &counters.dead_lettered,
            ),
        ] {
            series(&mut out, name, "counter", help, &total(counter));
        }
        let per = |read: fn(&PublisherStats) -> u64| -> Vec<(String, u64)> {
            self.publishers
                .iter()
                .map(|(sink, url, stats)| {
                    (format!("{{sink=\"{}\",publisher=\"{}\"}}", label(sink), label(url)), read(stats))
                })
                .collect()
        };
        series(
            &mut out,
            "pollen_collector_publisher_samples_published_total",
            "counter",
            "Samples a publisher delivered (a database publisher: committed).",
            &per(|s| s.published.load(Ordering::Relaxed)),
        );
        series(
            &mut out,
            "pollen_collector_publisher_samples_dropped_total",
            "counter",
            "Samples a publisher gave up on.",
            &per(|s| s.dropped.load(Ordering::Relaxed)),
        );
        series(
            &mut out,
            "pollen_collector_publisher_samples_held",
            "gauge",
            "Samples a publisher holds to send again.",
            &per(|s| s.held.load(Ordering::Relaxed)),
        );
        // The process's own (publishers by sink, send durations, connections).
        out.push_str(&crate::self_metrics::get().render());
        out
    }

    fn readiness(&self) -> Vec<String> {
        self.counters.inputs_down().into_iter().map(|input| format!("input {input} is not consuming")).collect()
    }
}
