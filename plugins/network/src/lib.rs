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
use pollen_sdk::{key_of, Recent};
use std::cell::RefCell;

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
thread_local! {
    /// The bytes in and out of each vNIC at its previous poll, by `key_of` its resource
    /// id (two keys that meet would cost one wrong delta).
    static PREVIOUS: RefCell<Recent<(u64, u64), u64>> = RefCell::new(Recent::new(1000));
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
        PREVIOUS.with(|p| p.borrow_mut().next_call());
        let samples = each_domain(&resources, |index, stats| {
            let mut samples = Vec::new();
            for vnic in &stats.interfaces {
                // Ceilometer's `NetworkPollster` (`compute/pollsters/net.py`): the vNIC's
                // filter reference names it where there is one, else
                // `<instance name>-<uuid>-<device>`.
                let id = vnic
                    .filter_ref
                    .clone()
                    .unwrap_or_else(|| format!("{}-{}-{}", stats.domain.name, stats.domain.uuid, vnic.device));
                let vnic_name = vnic.filter_ref.as_deref().unwrap_or(&vnic.device);
                let parameters: serde_json::Map<String, serde_json::Value> =
                    vnic.filter_parameters.iter().map(|(k, v)| (k.clone(), v.as_str().into())).collect();
                let parameters = serde_json::Value::Object(parameters).to_string();
                let previous = PREVIOUS.with(|p| p.borrow_mut().insert(key_of(&id), (vnic.rx_bytes, vnic.tx_bytes)));
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
                            .with_metadata("vnic_name", vnic_name)
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
