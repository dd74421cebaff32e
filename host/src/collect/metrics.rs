//! The collector's own `/metrics` (`collector.prometheus_listen`): what its inputs
//! took, refused, acknowledged, handed back and dead-lettered, and what each
//! publisher delivered and dropped; `/readyz` says which AMQP input is not consuming.

use super::Counters;
use crate::publish::prometheus::Endpoint;
use crate::publish::prometheus::{encode, family_of};
use crate::publish::PublisherStats;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What the collector's endpoint serves.
pub struct CollectorEndpoint {
    /// The inputs' counters.
    pub counters: Arc<Counters>,
    /// Each publisher: its sink, its URL (password cut) and its counters.
    pub publishers: Vec<(String, String, Arc<PublisherStats>)>,
}

impl Endpoint for CollectorEndpoint {
    fn metrics(&self) -> String {
        let counters = &self.counters;
        let total = |counter: &std::sync::atomic::AtomicU64| vec![(Vec::new(), counter.load(Ordering::Relaxed) as f64)];
        let mut families: Vec<_> = [
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
        ]
        .into_iter()
        .map(|(name, help, counter)| family_of(name, help, true, total(counter)))
        .collect();
        let per = |read: fn(&PublisherStats) -> u64| -> Vec<(Vec<(&'static str, String)>, f64)> {
            self.publishers
                .iter()
                .map(|(sink, url, stats)| {
                    (vec![("sink", sink.clone()), ("publisher", url.clone())], read(stats) as f64)
                })
                .collect()
        };
        families.push(family_of(
            "pollen_collector_publisher_samples_published_total",
            "Samples a publisher delivered (a database publisher: committed).",
            true,
            per(|s| s.published.load(Ordering::Relaxed)),
        ));
        families.push(family_of(
            "pollen_collector_publisher_samples_dropped_total",
            "Samples a publisher gave up on.",
            true,
            per(|s| s.dropped.load(Ordering::Relaxed)),
        ));
        families.push(family_of(
            "pollen_collector_publisher_samples_held",
            "Samples a publisher holds to send again.",
            false,
            per(|s| s.held.load(Ordering::Relaxed)),
        ));
        // The process's own (publishers by sink, send durations, connections).
        let mut text = encode(&families);
        text.push_str(&crate::self_metrics::get().render());
        text
    }

    fn readiness(&self) -> Vec<String> {
        self.counters.inputs_down().into_iter().map(|input| format!("input {input} is not consuming")).collect()
    }
}
