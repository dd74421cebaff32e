//! Ceilometer's wire forms of a sample: the metering message (what the notifier, UDP
//! and TCP publishers send, signed) and the oslo.messaging notification that carries a
//! batch of them to a notification agent; [`decode`] reads them back.
//!
//! A batch's samples share few resources, so the expensive parts of a message that
//! depend only on the resource (its metadata as JSON, and the metadata's share of the
//! signature) are made once per resource and batch.

pub mod decode;

use super::signature;
use super::Batch;
use crate::metadata::Merged;
use crate::registry::{MeterHandle, ResourceHandle};
use crate::sample::{iso8601, Resource};
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::fmt::Hyphenated;

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
    message_id: &'a str,
    monotonic_time: Option<f64>,
    message_signature: &'a str,
}

/// The encodings a [`MeteringEncoder`] makes.
#[derive(Clone, Copy)]
enum Wire {
    /// JSON, escaped for the notification envelope.
    NestedJson,
    /// msgpack (the metadata as a map).
    Msgpack,
}

/// What is made once per resource and batch.
struct ResourceParts {
    resource: Arc<Resource>,
    /// The metadata as a map, for msgpack only (empty for JSON).
    metadata: Map<String, Value>,
    /// The metadata as JSON text escaped to sit inside a JSON string.
    metadata_nested: Vec<u8>,
    /// The bytes the metadata adds to the signature (flattened keys and `str()` values).
    signed_metadata: Vec<u8>,
}

/// Turns a batch's samples into signed metering messages.
pub struct MeteringEncoder<'b> {
    batch: &'b Batch,
    /// The HMAC already keyed with the secret; `None` when signing is disabled.
    keyed: Option<Hmac<Sha256>>,
    /// What the messages are encoded as.
    wire: Wire,
    resources: HashMap<ResourceHandle, Arc<ResourceParts>>,
}

impl<'b> MeteringEncoder<'b> {
    /// An encoder of `batch` into `wire`, signing with `secret` (no signature when it
    /// is empty).
    fn new(batch: &'b Batch, secret: &'b str, wire: Wire) -> Self {
        let keyed = (!secret.is_empty())
            .then(|| Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length"));
        Self { batch, keyed, wire, resources: HashMap::new() }
    }

    fn parts(&mut self, handle: ResourceHandle) -> Option<Arc<ResourceParts>> {
        if let Some(parts) = self.resources.get(&handle) {
            return Some(parts.clone());
        }
        let resource = self.batch.registry.resource(handle)?;
        let merged = Merged { base: &resource.metadata, over: &resource.extra };
        let entries = merged.sorted_entries();
        let text = serde_json::to_vec(&entries).expect("JSON text serializes");
        let mut metadata_nested = Vec::with_capacity(text.len() + text.len() / 4);
        escape_json_text(&text, &mut metadata_nested);
        let mut signed_metadata = Vec::with_capacity(text.len());
        signature::flattened_raw_pairs(
            "resource_metadata",
            entries.0.iter().map(|(k, v)| (k, *v)),
            &mut |key, value| {
                signed_metadata.extend_from_slice(key.as_bytes());
                signed_metadata.extend_from_slice(value.as_bytes());
            },
        );
        let metadata = match self.wire {
            Wire::Msgpack => serde_json::from_slice(&text).expect("what serde_json wrote is a JSON object"),
            Wire::NestedJson => Map::new(),
        };
        drop(entries);
        let parts = Arc::new(ResourceParts { resource, metadata, metadata_nested, signed_metadata });
        self.resources.insert(handle, parts.clone());
        Some(parts)
    }

    /// Calls `f` with each sample's meter and message, its metadata as `metadata`
    /// picks it from the resource's parts (raw JSON text, or the map for msgpack).
    /// Samples whose handles do not resolve are skipped.
    fn each<M: Serialize + ?Sized>(
        &mut self,
        metadata: fn(&ResourceParts) -> &M,
        mut f: impl FnMut(MeterHandle, &MeteringMessage<'_, M>),
    ) {
        let mut timestamp = (i64::MIN, String::new());
        let mut volume_text = String::new();
        let received = self.batch.received.as_ref().map(|r| &r.message_ids);
        for (index, sample) in self.batch.samples.iter().enumerate() {
            let Some(meter) = self.batch.registry.meter(sample.meter) else { continue };
            let Some(parts) = self.parts(sample.resource) else { continue };
            if timestamp.0 != sample.timestamp {
                timestamp = (sample.timestamp, iso8601(sample.timestamp));
            }
            // A received (or disk-queued) sample keeps its id: sent again, it is the
            // same sample where it is stored.
            let mut id = [0u8; Hyphenated::LENGTH];
            let message_id = match received.and_then(|ids| ids.get(index)) {
                Some(kept) => &**kept,
                None => uuid::Uuid::new_v4().hyphenated().encode_lower(&mut id),
            };
            let resource = &parts.resource;
            let mut message = MeteringMessage {
                source: &self.batch.source,
                counter_name: &meter.name,
                counter_type: meter.kind.as_str(),
                counter_unit: &meter.unit,
                counter_volume: sample.volume,
                user_id: resource.user_id(),
                user_name: None,
                project_id: resource.project_id(),
                project_name: None,
                resource_id: &resource.id,
                timestamp: &timestamp.1,
                resource_metadata: metadata(&parts),
                message_id,
                monotonic_time: None,
                message_signature: "",
            };
            let mut signature = [0u8; 64];
            if let Some(keyed) = &self.keyed {
                volume_text.clear();
                pollen_pytext::write_python_float(&mut volume_text, sample.volume);
                message.message_signature =
                    sign(keyed.clone(), &message, &volume_text, &parts.signed_metadata, &mut signature);
            }
            f(sample.meter, &message);
        }
    }
}

/// Ceilometer's signature: every field but the signature, in key order, each value as
/// Python's `str()` prints it (see [`signature`]); the volume's text and the
/// metadata's share come precomputed. Written as hex into `out`.
fn sign<'o, M: Serialize + ?Sized>(
    mut mac: Hmac<Sha256>,
    m: &MeteringMessage<'_, M>,
    volume: &str,
    signed_metadata: &[u8],
    out: &'o mut [u8; 64],
) -> &'o str {
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
    feed("counter_volume", volume.as_bytes());
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
    hex::encode_to_slice(mac.finalize().into_bytes(), out).expect("64 hex digits for 32 bytes");
    std::str::from_utf8(out).expect("hex is ASCII")
}

/// A batch's signed metering messages in JSON, each escaped to sit inside a JSON
/// string (as the oslo.messaging envelope carries them): one text, each message a
/// span of it.
#[derive(Debug, Default)]
pub struct NestedJsonMessages {
    text: Vec<u8>,
    spans: Vec<(MeterHandle, std::ops::Range<usize>)>,
}

impl NestedJsonMessages {
    /// Each message's meter and escaped JSON text, in the batch's order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (MeterHandle, &[u8])> + Clone {
        self.spans.iter().map(|(meter, span)| (*meter, &self.text[span.clone()]))
    }

    /// How many messages there are.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

/// Every sample of a batch as a signed metering message in JSON, escaped for the
/// notification envelope (see [`notification_body`]).
pub fn nested_json_messages(batch: &Batch, secret: &str) -> NestedJsonMessages {
    let mut out = NestedJsonMessages { text: Vec::with_capacity(batch.samples.len() * 1536), spans: Vec::new() };
    out.spans.reserve(batch.samples.len());
    MeteringEncoder::new(batch, secret, Wire::NestedJson).each(
        |parts| &parts.metadata_nested[..],
        |meter, message| {
            let start = out.text.len();
            message.write_nested_json(&mut out.text);
            out.spans.push((meter, start..out.text.len()));
        },
    );
    out
}

impl MeteringMessage<'_, [u8]> {
    /// Writes the message as JSON escaped to sit inside a JSON string, in one pass;
    /// the metadata comes escaped already. The same keys as the derived `Serialize`.
    fn write_nested_json(&self, out: &mut Vec<u8>) {
        let optional = |out: &mut Vec<u8>, value: Option<&str>| match value {
            Some(text) => nested_str(out, text),
            None => out.extend_from_slice(b"null"),
        };
        out.extend_from_slice(br#"{\"source\":"#);
        nested_str(out, self.source);
        out.extend_from_slice(br#",\"counter_name\":"#);
        nested_str(out, self.counter_name);
        out.extend_from_slice(br#",\"counter_type\":"#);
        nested_str(out, self.counter_type);
        out.extend_from_slice(br#",\"counter_unit\":"#);
        nested_str(out, self.counter_unit);
        out.extend_from_slice(br#",\"counter_volume\":"#);
        serde_json::to_writer(&mut *out, &self.counter_volume).expect("numbers serialize");
        out.extend_from_slice(br#",\"user_id\":"#);
        optional(out, self.user_id);
        out.extend_from_slice(br#",\"user_name\":"#);
        optional(out, self.user_name);
        out.extend_from_slice(br#",\"project_id\":"#);
        optional(out, self.project_id);
        out.extend_from_slice(br#",\"project_name\":"#);
        optional(out, self.project_name);
        out.extend_from_slice(br#",\"resource_id\":"#);
        nested_str(out, self.resource_id);
        out.extend_from_slice(br#",\"timestamp\":"#);
        nested_str(out, self.timestamp);
        out.extend_from_slice(br#",\"resource_metadata\":"#);
        out.extend_from_slice(self.resource_metadata);
        out.extend_from_slice(br#",\"message_id\":"#);
        nested_str(out, self.message_id);
        out.extend_from_slice(br#",\"monotonic_time\":"#);
        match self.monotonic_time {
            Some(time) => serde_json::to_writer(&mut *out, &time).expect("numbers serialize"),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(br#",\"message_signature\":"#);
        nested_str(out, self.message_signature);
        out.push(b'}');
    }
}

/// Writes `text` as a JSON string, escaped to sit inside another JSON string.
fn nested_str(out: &mut Vec<u8>, text: &str) {
    if text.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        escape_json_text(&serde_json::to_vec(text).expect("strings serialize"), out);
    } else {
        out.extend_from_slice(br#"\""#);
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(br#"\""#);
    }
}

/// Every sample of a batch as a signed metering message in msgpack (a map, as
/// Ceilometer's `msgpack.dumps` of the message dict).
pub fn msgpack_messages(batch: &Batch, secret: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(batch.samples.len());
    MeteringEncoder::new(batch, secret, Wire::Msgpack).each(
        |parts| &parts.metadata,
        |_, message| out.push(rmp_serde::to_vec_named(message).expect("messages encode")),
    );
    out
}

/// The body of one oslo.messaging v2 notification carrying `samples` (metering
/// messages from [`nested_json_messages`]), as the rabbit driver puts it on the wire:
/// `{"oslo.version": "2.0", "oslo.message": "<JSON>"}`.
pub fn notification_body<'m>(samples: impl IntoIterator<Item = &'m [u8]> + Clone) -> Vec<u8> {
    // The envelope's ~330 bytes and a comma per sample: one allocation, never grown.
    let size: usize = samples.clone().into_iter().map(|sample| sample.len() + 1).sum();
    let mut body = body_head(size + 512);
    for (i, sample) in samples.into_iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(sample);
    }
    end_body(&mut body);
    body
}

/// Every sample of a batch as a signed metering message, in notifications of at most
/// `per_body` samples each (as [`notification_body`] makes them), each message written
/// straight into its body: one copy of every message fewer than going through
/// [`nested_json_messages`]. Each body with the number of samples it carries.
pub fn notification_bodies(batch: &Batch, secret: &str, per_body: usize) -> Vec<(Vec<u8>, u64)> {
    let per_body = per_body.max(1);
    let mut bodies = Vec::with_capacity(batch.samples.len().div_ceil(per_body));
    let (mut current, mut count, mut capacity) = (None::<Vec<u8>>, 0u64, per_body * 1536 + 512);
    MeteringEncoder::new(batch, secret, Wire::NestedJson).each(
        |parts| &parts.metadata_nested[..],
        |_, message| {
            let body = current.get_or_insert_with(|| body_head(capacity));
            if count > 0 {
                body.push(b',');
            }
            message.write_nested_json(body);
            count += 1;
            if count as usize == per_body {
                let mut full = current.take().expect("a body is being written");
                end_body(&mut full);
                // The next body like this one: allocated once at its size.
                capacity = capacity.max(full.len() + 512);
                bodies.push((full, count));
                count = 0;
            }
        },
    );
    if let Some(mut last) = current {
        end_body(&mut last);
        bodies.push((last, count));
    }
    bodies
}

/// A notification body up to its first sample, in a buffer of `capacity` bytes.
fn body_head(capacity: usize) -> Vec<u8> {
    let mut id = [0u8; Hyphenated::LENGTH];
    let mut body = Vec::with_capacity(capacity);
    body.extend_from_slice(br#"{"oslo.version":"2.0","oslo.message":"{\"message_id\":\""#);
    body.extend_from_slice(uuid::Uuid::new_v4().hyphenated().encode_lower(&mut id).as_bytes());
    body.extend_from_slice(br#"\",\"publisher_id\":\""#);
    body.extend_from_slice(PUBLISHER_ID.as_bytes());
    body.extend_from_slice(br#"\",\"event_type\":\""#);
    body.extend_from_slice(EVENT_TYPE.as_bytes());
    body.extend_from_slice(br#"\",\"priority\":\"SAMPLE\",\"payload\":{\"samples\":["#);
    body
}

/// Closes a body [`body_head`] began, after its last sample.
fn end_body(body: &mut Vec<u8>) {
    let mut unique = [0u8; uuid::fmt::Simple::LENGTH];
    body.extend_from_slice(br#"]},\"timestamp\":\""#);
    body.extend_from_slice(chrono::Utc::now().format("%Y-%m-%d %H:%M:%S%.6f").to_string().as_bytes());
    body.extend_from_slice(br#"\",\"_unique_id\":\""#);
    body.extend_from_slice(uuid::Uuid::new_v4().simple().encode_lower(&mut unique).as_bytes());
    body.extend_from_slice(br#"\"}"}"#);
}

/// Appends JSON text (as serde_json writes it: no raw control characters) escaped
/// as the contents of a JSON string: only `"` and `\` need it.
fn escape_json_text(text: &[u8], out: &mut Vec<u8>) {
    out.reserve(text.len() + text.len() / 4);
    let mut copied = 0;
    for (at, &byte) in text.iter().enumerate() {
        if byte == b'"' || byte == b'\\' {
            out.extend_from_slice(&text[copied..at]);
            out.push(b'\\');
            copied = at;
        }
    }
    out.extend_from_slice(&text[copied..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use crate::sample::{Metadata, Meter, MeterType, Owner, Sample};

    /// Bodies written straight from the encoder hold the same messages as the
    /// two-step path (bodies of the encoded messages), `per_body` at most each, signed.
    #[test]
    fn bodies_written_at_once_carry_what_the_two_steps_carry() {
        let registry = Arc::new(Registry::new());
        let meter = registry.intern_meter(Meter { name: "cpu".into(), kind: MeterType::Cumulative, unit: "ns".into() });
        let mut samples = Vec::new();
        for vm in 0..7 {
            let metadata = serde_json::json!({"display_name": format!("vm \"{vm}\""), "flavor": {"ram": 512}});
            let resource = registry.intern_resource(Resource {
                metadata: Metadata::from_map(metadata.as_object().unwrap()),
                ..Resource::bare(&format!("vm-{vm}"))
            });
            samples.push(Sample { meter, resource, volume: vm as f64 * 0.5, timestamp: 1_790_000_000_000_000_000 });
        }
        let batch = Batch::new(samples, registry, Arc::from("openstack"));
        let messages_of = |body: &[u8]| -> Vec<Map<String, Value>> {
            let body: Value = serde_json::from_slice(body).unwrap();
            let inner: Value = serde_json::from_str(body["oslo.message"].as_str().unwrap()).unwrap();
            serde_json::from_value(inner["payload"]["samples"].clone()).unwrap()
        };
        let fixed = |mut m: Map<String, Value>| {
            assert_eq!(m["message_signature"], signature::compute(&m, "secret"));
            m.remove("message_id");
            m.remove("message_signature");
            m
        };
        let bodies = notification_bodies(&batch, "secret", 3);
        assert_eq!(bodies.iter().map(|(_, n)| *n).collect::<Vec<_>>(), [3, 3, 1]);
        let direct: Vec<_> = bodies.iter().flat_map(|(body, _)| messages_of(body)).map(fixed).collect();
        let messages = nested_json_messages(&batch, "secret");
        let all: Vec<&[u8]> = messages.iter().map(|(_, m)| m).collect();
        let two_steps: Vec<_> =
            all.chunks(3).flat_map(|chunk| messages_of(&notification_body(chunk.iter().copied()))).map(fixed).collect();
        assert_eq!(direct, two_steps);
        assert_eq!(direct.len(), 7);
    }

    /// The fast signature over fields equals the general one over the decoded message.
    #[test]
    fn the_signature_matches_the_generic_computation() {
        let registry = Arc::new(Registry::new());
        let meter = registry.intern_meter(Meter { name: "cpu".into(), kind: MeterType::Cumulative, unit: "ns".into() });
        let metadata = serde_json::json!({"flavor": {"name": "m1", "ram": 512}, "ratio": 0.5, "tags": ["a"], "none": null, "zz": 1, "note": "say \"hi\" \\ ünïcode"});
        let resource = registry.intern_resource(Resource {
            owner: Owner::of(Some("u"), None),
            metadata: Metadata::from_map(metadata.as_object().unwrap()),
            ..Resource::bare("vm")
        });
        let samples = vec![Sample { meter, resource, volume: 1e16, timestamp: 1_790_000_000_123_456_789 }];
        let batch = Batch::new(samples, registry, Arc::from("openstack"));
        let messages = nested_json_messages(&batch, "secret");
        assert_eq!(messages.len(), 1);
        let body: Value = serde_json::from_slice(&notification_body(messages.iter().map(|(_, m)| m))).unwrap();
        assert_eq!(body["oslo.version"], "2.0");
        let inner: Value = serde_json::from_str(body["oslo.message"].as_str().unwrap()).unwrap();
        assert_eq!((inner["event_type"].as_str(), inner["priority"].as_str()), (Some(EVENT_TYPE), Some("SAMPLE")));
        let decoded: Map<String, Value> = serde_json::from_value(inner["payload"]["samples"][0].clone()).unwrap();
        assert_eq!(decoded["message_signature"], signature::compute(&decoded, "secret"));
        assert_eq!(decoded["resource_metadata"]["flavor"]["ram"], 512);
        assert_eq!(decoded["resource_metadata"]["note"], metadata["note"]);
        let packed: Map<String, Value> = rmp_serde::from_slice(&msgpack_messages(&batch, "secret")[0]).unwrap();
        assert_eq!(packed["message_signature"], signature::compute(&packed, "secret"));
        // Both encodings carry the same keys and, but for the fresh id and signature, values.
        let fixed = |m: &Map<String, Value>| {
            let mut m = m.clone();
            m.remove("message_id");
            m.remove("message_signature");
            m
        };
        assert_eq!(fixed(&decoded), fixed(&packed));
    }
}
