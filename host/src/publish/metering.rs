//! Ceilometer's wire forms of a sample: the metering message (what the notifier, UDP
//! and TCP publishers send, signed) and the oslo.messaging notification that carries a
//! batch of them to a notification agent.
//!
//! A batch's samples share few resources, so the expensive parts of a message that
//! depend only on the resource (its metadata as JSON, and the metadata's share of the
//! signature) are made once per resource and batch.

use super::signature::{self, python_float};
use super::Batch;
use crate::registry::ResourceHandle;
use crate::sample::{iso8601, Resource};
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Arc;

/// `publisher_id` of Pollen's notifications (Ceilometer's polling agent's own).
pub const PUBLISHER_ID: &str = "ceilometer.polling";
/// `event_type` of polling notifications.
pub const EVENT_TYPE: &str = "telemetry.polling";

/// A metering message (Ceilometer's `meter_message_from_counter`); `M` is how its
/// metadata is carried (raw JSON text, or a map for msgpack).
#[derive(Serialize)]
pub struct MeteringMessage<'a, M: Serialize + ?Sized> {
    source: &'a str,
    counter_name: &'a str,
    counter_type: &'a str,
    counter_unit: &'a str,
    counter_volume: f64,
    user_id: Option<&'a str>,
    user_name: Option<&'a str>,
    project_id: Option<&'a str>,
    project_name: Option<&'a str>,
    resource_id: &'a str,
    timestamp: &'a str,
    resource_metadata: &'a M,
    message_id: String,
    monotonic_time: Option<f64>,
    message_signature: String,
}

/// What is made once per resource and batch.
struct ResourceParts {
    resource: Arc<Resource>,
    metadata: Map<String, Value>,
    metadata_json: Box<RawValue>,
    /// The bytes the metadata adds to the signature (flattened keys and `str()` values).
    signed_metadata: Vec<u8>,
}

/// Turns a batch's samples into signed metering messages.
pub struct MeteringEncoder<'b> {
    batch: &'b Batch,
    secret: &'b str,
    resources: HashMap<ResourceHandle, Arc<ResourceParts>>,
    timestamp: (i64, String),
}

impl<'b> MeteringEncoder<'b> {
    /// An encoder for `batch`, signing with `secret` (no signature when it is empty).
    pub fn new(batch: &'b Batch, secret: &'b str) -> Self {
        Self { batch, secret, resources: HashMap::new(), timestamp: (i64::MIN, String::new()) }
    }

    fn parts(&mut self, handle: ResourceHandle) -> Option<Arc<ResourceParts>> {
        if let Some(parts) = self.resources.get(&handle) {
            return Some(parts.clone());
        }
        let resource = self.batch.registry.resource(handle)?;
        let metadata = resource.merged_metadata().into_owned();
        let metadata_json = serde_json::value::to_raw_value(&metadata).expect("JSON values always serialize");
        let mut signed_metadata = Vec::new();
        signature::flattened_pairs("resource_metadata", &metadata, &mut |key, value| {
            signed_metadata.extend_from_slice(key.as_bytes());
            signed_metadata.extend_from_slice(value.as_bytes());
        });
        let parts = Arc::new(ResourceParts { resource, metadata, metadata_json, signed_metadata });
        self.resources.insert(handle, parts.clone());
        Some(parts)
    }

    fn timestamp(&mut self, nanos: i64) -> String {
        if self.timestamp.0 != nanos {
            self.timestamp = (nanos, iso8601(nanos));
        }
        self.timestamp.1.clone()
    }

    /// Calls `f` with each sample's meter name and message, its metadata as `metadata`
    /// picks it from the resource's parts (raw JSON text, or the map for msgpack).
    /// Samples whose handles do not resolve are skipped.
    fn each<M: Serialize + ?Sized>(
        &mut self,
        metadata: fn(&ResourceParts) -> &M,
        mut f: impl FnMut(&str, &MeteringMessage<'_, M>),
    ) {
        for sample in &self.batch.samples {
            let Some(meter) = self.batch.registry.meter(sample.meter) else { continue };
            let Some(parts) = self.parts(sample.resource) else { continue };
            let timestamp = self.timestamp(sample.timestamp);
            let resource = &parts.resource;
            let mut message = MeteringMessage {
                source: &self.batch.source,
                counter_name: &meter.name,
                counter_type: meter.kind.as_str(),
                counter_unit: &meter.unit,
                counter_volume: sample.volume,
                user_id: resource.user_id.as_deref(),
                user_name: None,
                project_id: resource.project_id.as_deref(),
                project_name: None,
                resource_id: &resource.id,
                timestamp: &timestamp,
                resource_metadata: metadata(&parts),
                message_id: uuid::Uuid::new_v4().to_string(),
                monotonic_time: None,
                message_signature: String::new(),
            };
            message.message_signature = self.sign(&message, &parts.signed_metadata);
            f(&meter.name, &message);
        }
    }

    /// Ceilometer's signature: every field but the signature, in key order, each value
    /// as Python's `str()` prints it (see [`signature`]); the metadata's share comes
    /// precomputed.
    fn sign<M: Serialize + ?Sized>(&self, m: &MeteringMessage<'_, M>, signed_metadata: &[u8]) -> String {
        if self.secret.is_empty() {
            return String::new();
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.as_bytes()).expect("HMAC takes keys of any length");
        fn none(value: Option<&str>) -> &str {
            value.unwrap_or("None")
        }
        let mut feed = |key: &str, value: &[u8]| {
            mac.update(key.as_bytes());
            mac.update(value);
        };
        feed("counter_name", m.counter_name.as_bytes());
        feed("counter_type", m.counter_type.as_bytes());
        feed("counter_unit", m.counter_unit.as_bytes());
        feed("counter_volume", python_float(m.counter_volume).as_bytes());
        feed("message_id", m.message_id.as_bytes());
        feed("monotonic_time", b"None");
        feed("project_id", none(m.project_id).as_bytes());
        feed("project_name", none(m.project_name).as_bytes());
        feed("resource_id", m.resource_id.as_bytes());
        feed("", signed_metadata); // resource_metadata:*, in its sorted place
        feed("source", m.source.as_bytes());
        feed("timestamp", m.timestamp.as_bytes());
        feed("user_id", none(m.user_id).as_bytes());
        feed("user_name", none(m.user_name).as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// Every sample of a batch as a signed metering message in JSON, with its meter name.
pub fn json_messages(batch: &Batch, secret: &str) -> Vec<(String, Box<RawValue>)> {
    let mut out = Vec::with_capacity(batch.samples.len());
    MeteringEncoder::new(batch, secret).each(
        |parts| &*parts.metadata_json,
        |meter, message| {
            out.push((meter.to_string(), serde_json::value::to_raw_value(message).expect("messages serialize")));
        },
    );
    out
}

/// Every sample of a batch as a signed metering message in msgpack (a map, as
/// Ceilometer's `msgpack.dumps` of the message dict).
pub fn msgpack_messages(batch: &Batch, secret: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(batch.samples.len());
    MeteringEncoder::new(batch, secret).each(
        |parts| &parts.metadata,
        |_, message| out.push(rmp_serde::to_vec_named(message).expect("messages encode")),
    );
    out
}

/// The body of one oslo.messaging v2 notification carrying `samples` (metering
/// messages as JSON), as the rabbit driver puts it on the wire:
/// `{"oslo.version": "2.0", "oslo.message": "<JSON>"}`.
pub fn notification_body(samples: &[&RawValue]) -> Vec<u8> {
    #[derive(Serialize)]
    struct Payload<'a> {
        samples: &'a [&'a RawValue],
    }
    #[derive(Serialize)]
    struct OsloMessage<'a> {
        message_id: String,
        publisher_id: &'static str,
        event_type: &'static str,
        priority: &'static str,
        payload: Payload<'a>,
        timestamp: String,
        _unique_id: String,
    }
    #[derive(Serialize)]
    struct Envelope<'a> {
        #[serde(rename = "oslo.version")]
        version: &'static str,
        #[serde(rename = "oslo.message")]
        message: &'a str,
    }
    let message = OsloMessage {
        message_id: uuid::Uuid::new_v4().to_string(),
        publisher_id: PUBLISHER_ID,
        event_type: EVENT_TYPE,
        priority: "SAMPLE",
        payload: Payload { samples },
        timestamp: chrono::Utc::now().format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
        _unique_id: uuid::Uuid::new_v4().simple().to_string(),
    };
    let inner = serde_json::to_string(&message).expect("messages serialize");
    serde_json::to_vec(&Envelope { version: "2.0", message: &inner }).expect("strings serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use crate::sample::{Meter, MeterType, Sample};

    /// The fast signature over fields equals the general one over the decoded message.
    #[test]
    fn the_signature_matches_the_generic_computation() {
        let registry = Arc::new(Registry::new());
        let meter = registry.intern_meter(Meter { name: "cpu".into(), kind: MeterType::Cumulative, unit: "ns".into() });
        let metadata = serde_json::json!({"flavor": {"name": "m1", "ram": 512}, "ratio": 0.5, "tags": ["a"], "none": null, "zz": 1});
        let resource = registry.intern_resource(Resource {
            user_id: Some("u".into()),
            metadata: Arc::new(metadata.as_object().unwrap().clone()),
            ..Resource::bare("vm")
        });
        let batch = Batch {
            samples: vec![Sample { meter, resource, volume: 1e16, timestamp: 1_790_000_000_123_456_789 }],
            registry,
            source: Arc::from("openstack"),
        };
        for (_, raw) in json_messages(&batch, "secret") {
            let decoded: Map<String, Value> = serde_json::from_str(raw.get()).unwrap();
            assert_eq!(decoded["message_signature"], signature::compute(&decoded, "secret"));
            assert_eq!(decoded["resource_metadata"]["flavor"]["ram"], 512);
        }
        let packed: Map<String, Value> = rmp_serde::from_slice(&msgpack_messages(&batch, "secret")[0]).unwrap();
        assert_eq!(packed["message_signature"], signature::compute(&packed, "secret"));
    }
}
