//! Per-vNIC meters, one resource per vNIC (`<domain name>-<instance uuid>-<tap>`), with
//! the vNIC's `name`, `mac`, `fref` (its network filter), `parameters` (the filter's)
//! and `vnic_name` in the metadata, as Ceilometer's `network.*` pollsters report them.
//!
//! | meter | type | unit |
//! |---|---|---|
//! | `network.incoming.bytes`, `network.outgoing.bytes` | cumulative | B |
//! | `network.incoming.packets`, `network.outgoing.packets` | cumulative | packet |
//! | `network.incoming.packets.drop`, `network.outgoing.packets.drop` | cumulative | packet |
//! | `network.incoming.packets.error`, `network.outgoing.packets.error` | cumulative | packet |
//! | `network.incoming.bytes.delta`, `network.outgoing.bytes.delta` | delta | B |
//!
//! The deltas are against this plugin's previous poll of the vNIC: 0 on the first poll
//! (as Ceilometer does) and after a counter reset. The plugin keeps the previous
//! readings between cycles (those of a vNIC gone for a while are forgotten); the
//! agent re-makes a plugin that failed, which starts over.
use pollen_sdk::pollster::*;
use std::cell::RefCell;
use std::collections::HashMap;

struct Network;

const METERS: [(&str, MeterType, &str); 10] = [
    ("network.incoming.bytes", MeterType::Cumulative, "B"),
    ("network.outgoing.bytes", MeterType::Cumulative, "B"),
    ("network.incoming.packets", MeterType::Cumulative, "packet"),
    ("network.outgoing.packets", MeterType::Cumulative, "packet"),
    ("network.incoming.packets.drop", MeterType::Cumulative, "packet"),
    ("network.outgoing.packets.drop", MeterType::Cumulative, "packet"),
    ("network.incoming.packets.error", MeterType::Cumulative, "packet"),
    ("network.outgoing.packets.error", MeterType::Cumulative, "packet"),
    ("network.incoming.bytes.delta", MeterType::Delta, "B"),
    ("network.outgoing.bytes.delta", MeterType::Delta, "B"),
];
/// `poll` calls after which the readings of a vNIC not seen again are forgotten. The
/// agent polls a large host in several calls per cycle (250 instances each), so this
/// keeps a vanished vNIC's reading for a few cycles of even a very large host.
const FORGET_AFTER_POLLS: u64 = 1000;

/// The bytes in and out of each vNIC at its previous poll.
#[derive(Default)]
struct Previous {
    polls: u64,
    /// By resource id: bytes in, bytes out, and the poll they were read at.
    readings: HashMap<String, (u64, u64, u64)>,
}

thread_local! {
    static PREVIOUS: RefCell<Previous> = RefCell::new(Previous::default());
}

/// The change from `before` to `now`; 0 when there is no `before` or the counter went
/// back (a reset).
fn delta(before: Option<u64>, now: u64) -> f64 {
    before.and_then(|b| now.checked_sub(b)).unwrap_or(0) as f64
}

impl Pollster for Network {
    fn describe() -> Vec<Meter> {
        METERS.iter().map(|(name, kind, unit)| Meter::of(name, *kind, unit).discovered_by("local_instances")).collect()
    }

    fn poll(resources: Vec<Resource>) -> Result<Vec<Sample>, Error> {
        let poll = PREVIOUS.with(|p| {
            let mut previous = p.borrow_mut();
            previous.polls += 1;
            let polls = previous.polls;
            previous.readings.retain(|_, reading| polls - reading.2 <= FORGET_AFTER_POLLS);
            polls
        });
        let samples = each_domain(&resources, |index, stats| {
            let mut samples = Vec::new();
            for vnic in &stats.interfaces {
                let id = format!("{}-{}-{}", stats.domain.name, stats.domain.uuid, vnic.device);
                let parameters: serde_json::Map<String, serde_json::Value> =
                    vnic.filter_parameters.iter().map(|(k, v)| (k.clone(), v.as_str().into())).collect();
                let parameters = serde_json::Value::Object(parameters).to_string();
                let previous = PREVIOUS.with(|p| {
                    let mut previous = p.borrow_mut();
                    previous.readings.insert(id.clone(), (vnic.rx_bytes, vnic.tx_bytes, poll))
                });
                let readings = [
                    vnic.rx_bytes as f64,
                    vnic.tx_bytes as f64,
                    vnic.rx_packets as f64,
                    vnic.tx_packets as f64,
                    vnic.rx_drops as f64,
                    vnic.tx_drops as f64,
                    vnic.rx_errors as f64,
                    vnic.tx_errors as f64,
                    delta(previous.map(|p| p.0), vnic.rx_bytes),
                    delta(previous.map(|p| p.1), vnic.tx_bytes),
                ];
                for (meter, volume) in readings.into_iter().enumerate() {
                    let sample = Sample::new(meter as u32, index, volume).with_resource_id(id.clone());
                    // The vNIC's metadata goes with its first sample; the others share it.
                    samples.push(if meter > 0 {
                        sample
                    } else {
                        sample
                            .with_metadata("name", vnic.device.as_str())
                            .with_metadata("vnic_name", vnic.device.as_str())
                            .with_metadata("mac", vnic.mac.as_str())
                            .with_metadata("fref", vnic.filter_ref.clone())
                            .with_metadata("parameters", Value::Json(parameters.clone()))
                    });
                }
            }
            Some(samples)
        });
        Ok(samples)
    }
}

export_pollster!(Network);
