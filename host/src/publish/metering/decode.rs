//! Receiving Ceilometer's metering messages (what the collector reads): the msgpack
//! map of a UDP datagram or a TCP frame, and the oslo.messaging notification that
//! carries a batch of them (v2 envelope, `{"oslo.version": "2.0", "oslo.message":
//! "<JSON>"}`, or a bare v1 message), each message checked against its signature and
//! read into a [`ReceivedSample`]. Anything malformed is an error naming what is wrong,
//! never a panic: a collector counts it and goes on.

use super::super::signature::{self, SIGNATURE_KEY};
use crate::sample::MeterType;
use hmac::{Hmac, Mac};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Why a message was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Not msgpack, or cut short.
    NotMsgpack(String),
    /// Not JSON.
    NotJson(String),
    /// Decoded, but not a map of a message's fields.
    NotAMessage(&'static str),
    /// A notification without the envelope or the payload's `samples`.
    NotANotification(String),
    /// A field is missing or of the wrong type.
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// Unsigned while secrets are configured.
    Unsigned,
    /// The signature matches none of the secrets (forged, tampered with, or signed
    /// with a secret this side does not have).
    BadSignature,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotMsgpack(why) => write!(f, "not msgpack: {why}"),
            Self::NotJson(why) => write!(f, "not JSON: {why}"),
            Self::NotAMessage(what) => write!(f, "not a metering message: {what}"),
            Self::NotANotification(why) => write!(f, "not a notification of samples: {why}"),
            Self::Field { field, problem } => write!(f, "`{field}` {problem}"),
            Self::Unsigned => write!(f, "unsigned, while telemetry secrets are set"),
            Self::BadSignature => write!(f, "its message_signature matches none of the telemetry secrets"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A metering message as received: Ceilometer's fields.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSample {
    /// `source`.
    pub source: String,
    /// `counter_name`: the meter.
    pub name: String,
    /// `counter_type`.
    pub kind: MeterType,
    /// `counter_unit`.
    pub unit: String,
    /// `counter_volume`, finite.
    pub volume: f64,
    /// `user_id`.
    pub user_id: Option<String>,
    /// `project_id`.
    pub project_id: Option<String>,
    /// `resource_id`.
    pub resource_id: String,
    /// `timestamp`, nanoseconds since the epoch (UTC).
    pub timestamp: i64,
    /// `resource_metadata`, shared by the samples that carried the same text.
    pub metadata: Arc<ReceivedMetadata>,
    /// `message_id`: what makes a redelivered message the same one.
    pub message_id: String,
}

/// A `resource_metadata` as received, read once however many samples carry it.
#[derive(Debug, PartialEq)]
pub struct ReceivedMetadata {
    /// The mapping.
    pub map: Map<String, Value>,
    /// A hash of its JSON text as received (equal texts, equal hashes).
    pub text_hash: u64,
    /// Its pairs as the signature takes them (`resource_metadata:key` and the value's
    /// text, one after the other), for the fast reading of notifications.
    signed: Vec<u8>,
}

impl ReceivedMetadata {
    /// A mapping received some other way (msgpack); `text_hash` from its JSON text.
    pub fn of(map: Map<String, Value>) -> Arc<Self> {
        let text = serde_json::to_string(&map).unwrap_or_default();
        Arc::new(Self { map, text_hash: hash_of(&text), signed: Vec::new() })
    }
}

fn hash_of(text: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// What an input keeps between messages: each distinct metadata text read and
/// flattened for the signature once (a resource's metadata comes with each of its
/// samples), and a buffer for the signed pairs.
#[derive(Default)]
pub struct ReadCache {
    metadata: HashMap<Box<str>, Arc<ReceivedMetadata>, foldhash::fast::RandomState>,
    signed: Vec<u8>,
}

/// Distinct metadata texts kept at most, before the cache starts again.
const CACHED_METADATA: usize = 10_000;

impl ReadCache {
    fn metadata(&mut self, text: &str) -> Result<Arc<ReceivedMetadata>, DecodeError> {
        if let Some(known) = self.metadata.get(text) {
            return Ok(known.clone());
        }
        let map: Map<String, Value> = serde_json::from_str(text)
            .map_err(|e| DecodeError::Field { field: "resource_metadata", problem: format!("is not a map: {e}") })?;
        let mut signed = Vec::new();
        signature::flattened_pairs("resource_metadata", &map, pollen_pytext::Python::Three, &mut |key, value| {
            signed.extend_from_slice(key.as_bytes());
            signed.extend_from_slice(value.as_bytes());
        });
        let read = Arc::new(ReceivedMetadata { map, text_hash: hash_of(text), signed });
        if self.metadata.len() >= CACHED_METADATA {
            self.metadata.clear();
        }
        self.metadata.insert(text.into(), read.clone());
        Ok(read)
    }
}

/// The fields of one metering message in msgpack (one UDP datagram, one TCP frame).
pub fn from_msgpack(bytes: &[u8]) -> Result<Map<String, Value>, DecodeError> {
    match rmp_serde::from_slice::<Value>(bytes).map_err(|e| DecodeError::NotMsgpack(e.to_string()))? {
        Value::Object(message) => Ok(message),
        _ => Err(DecodeError::NotAMessage("the datagram is not a map")),
    }
}

/// The metering messages of a notification body: the v2 envelope's message, or a v1
/// message itself, whose `payload.samples` lists them (`notifications.sample` as
/// Pollen and `ceilometer-polling` publish, `metering.sample` as the notification
/// agent's `notifier://` publisher does).
pub fn from_notification(body: &[u8]) -> Result<Vec<Map<String, Value>>, DecodeError> {
    let outer: Value = serde_json::from_slice(body).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let message = match outer.get("oslo.message") {
        Some(Value::String(inner)) => {
            serde_json::from_str(inner).map_err(|e| DecodeError::NotJson(format!("oslo.message: {e}")))?
        }
        Some(_) => return Err(DecodeError::NotANotification("`oslo.message` is not text".into())),
        None => outer,
    };
    let mut message = message;
    let samples = match message.get_mut("payload").map(Value::take) {
        Some(Value::Object(mut payload)) => payload.remove("samples"),
        // The notification agent's publisher puts the list as the payload itself.
        Some(list @ Value::Array(_)) => Some(list),
        _ => None,
    };
    match samples {
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::Object(message) => Ok(message),
                _ => Err(DecodeError::NotAMessage("a sample of the payload is not a map")),
            })
            .collect(),
        _ => Err(DecodeError::NotANotification("no `payload.samples` list".into())),
    }
}

/// Reads a notification body's metering messages, each verified against `secrets` and
/// read, calling `each` with every one's outcome; `Err` when the body is not a
/// notification of samples. What [`from_notification`], [`verify`] and [`into_sample`]
/// do together, without building a map of every message: its values stay JSON text
/// until read, and each distinct metadata text is read once (`cache`).
pub fn read_notification(
    body: &[u8],
    secrets: &[String],
    cache: &mut ReadCache,
    mut each: impl FnMut(Result<ReceivedSample, DecodeError>),
) -> Result<(), DecodeError> {
    #[derive(serde::Deserialize)]
    struct Envelope<'a> {
        #[serde(rename = "oslo.message", borrow, default)]
        message: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        payload: Option<&'a RawValue>,
    }
    #[derive(serde::Deserialize)]
    struct Payload<'a> {
        #[serde(borrow, default)]
        samples: Option<Vec<&'a RawValue>>,
    }
    let outer: Envelope = serde_json::from_slice(body).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    // The v2 envelope's message, or a v1 message itself.
    let inner_text = outer.message;
    let message = inner_text.as_deref().map_or(body, str::as_bytes);
    // Most often the payload holds plain samples: read in one pass, straight into each
    // sample's keys and values' text.
    if let Ok(plain) = serde_json::from_slice::<SamplesEnvelope>(message) {
        for pairs in &plain.payload.0 {
            each(read_pairs(pairs, secrets, cache));
        }
        return Ok(());
    }
    let payload = match &inner_text {
        Some(text) => {
            let inner: Envelope =
                serde_json::from_str(text).map_err(|e| DecodeError::NotJson(format!("oslo.message: {e}")))?;
            inner.payload
        }
        None => outer.payload,
    };
    let no_samples = || DecodeError::NotANotification("no `payload.samples` list".into());
    let list = payload.ok_or_else(no_samples)?.get();
    let samples: Vec<&RawValue> = match list.as_bytes().first() {
        // The notification agent's publisher puts the list as the payload itself.
        Some(b'[') => serde_json::from_str(list).map_err(|_| no_samples())?,
        _ => serde_json::from_str::<Payload>(list).ok().and_then(|p| p.samples).ok_or_else(no_samples)?,
    };
    for sample in samples {
        each(match serde_json::from_str::<Pairs>(sample.get()) {
            Ok(pairs) => read_pairs(&pairs, secrets, cache),
            Err(_) => general(serde_json::from_str::<Value>(sample.get()), secrets),
        });
    }
    Ok(())
}

/// A metering message's keys and their values' JSON text.
type Pairs<'a> = BTreeMap<&'a str, &'a RawValue>;

/// An oslo.messaging message whose payload holds plain samples (every sample a map
/// whose keys need no unescaping).
#[derive(serde::Deserialize)]
struct SamplesEnvelope<'a> {
    #[serde(borrow)]
    payload: SamplesPayload<'a>,
}

/// A payload's samples: `{"samples": [...]}` (what Pollen and `ceilometer-polling`
/// send), or the list itself (the notification agent's `notifier://` publisher).
struct SamplesPayload<'a>(Vec<Pairs<'a>>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for SamplesPayload<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Samples<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Samples<'a> {
            type Value = SamplesPayload<'a>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of samples, or a map with `samples`")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut list: A) -> Result<Self::Value, A::Error> {
                let mut samples = Vec::with_capacity(list.size_hint().unwrap_or(50));
                while let Some(pairs) = list.next_element::<Pairs<'a>>()? {
                    samples.push(pairs);
                }
                Ok(SamplesPayload(samples))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut samples = None;
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    if key == "samples" {
                        samples = Some(map.next_value::<Vec<Pairs<'a>>>()?);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                samples.map(SamplesPayload).ok_or_else(|| serde::de::Error::missing_field("samples"))
            }
        }
        deserializer.deserialize_any(Samples(std::marker::PhantomData))
    }
}

/// The general reading of one metering message, decoded as a whole.
fn general(message: serde_json::Result<Value>, secrets: &[String]) -> Result<ReceivedSample, DecodeError> {
    let message = match message {
        Ok(Value::Object(message)) => message,
        Ok(_) => return Err(DecodeError::NotAMessage("a sample of the payload is not a map")),
        Err(e) => return Err(DecodeError::NotJson(e.to_string())),
    };
    verify(&message, secrets).and_then(|()| into_sample(message))
}

/// One metering message, its values still JSON text, verified and read; what this
/// does not take (a nested mapping besides the metadata, a signature only a Python 2
/// producer makes) is read the general way.
fn read_pairs(pairs: &Pairs, secrets: &[String], cache: &mut ReadCache) -> Result<ReceivedSample, DecodeError> {
    let general = || {
        let message: serde_json::Result<Map<String, Value>> = pairs
            .iter()
            .map(|(key, raw)| serde_json::from_str::<Value>(raw.get()).map(|value| (key.to_string(), value)))
            .collect();
        general(message.map(Value::Object), secrets)
    };
    let mut metadata = None;
    let mut signed = std::mem::take(&mut cache.signed);
    signed.clear();
    for (key, value) in pairs {
        let raw = value.get();
        match raw.as_bytes().first() {
            _ if *key == SIGNATURE_KEY => {}
            Some(b'{') if *key == "resource_metadata" => {
                let read = cache.metadata(raw)?;
                signed.extend_from_slice(&read.signed);
                metadata = Some(read);
            }
            Some(b'{') => {
                cache.signed = signed;
                return general();
            }
            Some(b'"') => {
                signed.extend_from_slice(key.as_bytes());
                match serde_json::from_str::<Cow<str>>(raw) {
                    Ok(text) => signed.extend_from_slice(text.as_bytes()),
                    Err(_) => {
                        cache.signed = signed;
                        return general();
                    }
                }
            }
            _ => {
                signed.extend_from_slice(key.as_bytes());
                let value: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
                signed.extend_from_slice(signature::signed_text(&value, pollen_pytext::Python::Three).as_bytes());
            }
        }
    }
    let secrets: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
    let verified = secrets.is_empty() || {
        let given = pairs.get(SIGNATURE_KEY).and_then(|v| serde_json::from_str::<Cow<str>>(v.get()).ok());
        given.is_some_and(|given| {
            secrets.iter().any(|secret| {
                let mut mac =
                    Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
                mac.update(&signed);
                signature::same(&hex::encode(mac.finalize().into_bytes()), &given)
            })
        })
    };
    cache.signed = signed;
    if !verified {
        // Unsigned, forged, or signed on Python 2: the general reading tells which.
        return general();
    }
    let text_of = |field: &'static str| -> Result<Option<Cow<str>>, DecodeError> {
        match pairs.get(field) {
            None => Ok(None),
            Some(raw) if raw.get() == "null" => Ok(None),
            Some(raw) => serde_json::from_str::<Cow<str>>(raw.get())
                .map(Some)
                .map_err(|_| DecodeError::Field { field, problem: format!("is not text: {}", raw.get()) }),
        }
    };
    let required = |field: &'static str| -> Result<String, DecodeError> {
        match text_of(field)? {
            Some(text) if !text.is_empty() => Ok(text.into_owned()),
            Some(_) => Err(DecodeError::Field { field, problem: "is empty".into() }),
            None => Err(DecodeError::Field { field, problem: "is missing".into() }),
        }
    };
    let kind = match required("counter_type")?.as_str() {
        "gauge" => MeterType::Gauge,
        "cumulative" => MeterType::Cumulative,
        "delta" => MeterType::Delta,
        other => {
            return Err(DecodeError::Field { field: "counter_type", problem: format!("`{other}` is no sample type") })
        }
    };
    let volume = match pairs.get("counter_volume").map(|raw| raw.get()) {
        None => return Err(DecodeError::Field { field: "counter_volume", problem: "is missing".into() }),
        Some(raw) if raw.starts_with('"') => {
            serde_json::from_str::<Cow<str>>(raw).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(f64::NAN)
        }
        Some(raw) => match serde_json::from_str::<f64>(raw) {
            Ok(volume) => volume,
            Err(_) => {
                return Err(DecodeError::Field { field: "counter_volume", problem: format!("is not a number: {raw}") })
            }
        },
    };
    if !volume.is_finite() {
        return Err(DecodeError::Field { field: "counter_volume", problem: "is not a finite number".into() });
    }
    let stamp = text_of("timestamp")?.ok_or(DecodeError::Field { field: "timestamp", problem: "is missing".into() })?;
    let timestamp = parse_timestamp(&stamp).ok_or_else(|| DecodeError::Field {
        field: "timestamp",
        problem: format!("`{stamp}` is not an ISO 8601 time"),
    })?;
    let metadata = match metadata {
        Some(read) => read,
        None => match pairs.get("resource_metadata").map(|raw| raw.get()) {
            None | Some("null") => ReceivedMetadata::of(Map::new()),
            Some(other) => {
                return Err(DecodeError::Field {
                    field: "resource_metadata",
                    problem: format!("is not a map: {other}"),
                })
            }
        },
    };
    Ok(ReceivedSample {
        source: text_of("source")?.map_or_else(|| "openstack".into(), Cow::into_owned),
        name: required("counter_name")?,
        kind,
        unit: text_of("counter_unit")?.map(Cow::into_owned).unwrap_or_default(),
        volume,
        user_id: text_of("user_id")?.map(Cow::into_owned),
        project_id: text_of("project_id")?.map(Cow::into_owned),
        resource_id: required("resource_id")?,
        timestamp,
        metadata,
        message_id: required("message_id")?,
    })
}

/// Checks a message's signature against `secrets` (several, for rotation; none:
/// signatures are not checked, as Ceilometer with an empty `telemetry_secret`).
pub fn verify(message: &Map<String, Value>, secrets: &[String]) -> Result<(), DecodeError> {
    let secrets: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
    if secrets.is_empty() {
        return Ok(());
    }
    let Some(Value::String(given)) = message.get(SIGNATURE_KEY).filter(|s| s.as_str() != Some("")) else {
        return Err(DecodeError::Unsigned);
    };
    if secrets.iter().any(|secret| signature::verify_any(message, secret, given)) {
        Ok(())
    } else {
        Err(DecodeError::BadSignature)
    }
}

fn text(message: &mut Map<String, Value>, field: &'static str) -> Result<String, DecodeError> {
    match message.remove(field) {
        Some(Value::String(text)) if !text.is_empty() => Ok(text),
        Some(Value::String(_)) => Err(DecodeError::Field { field, problem: "is empty".into() }),
        Some(other) => Err(DecodeError::Field { field, problem: format!("is not text: {other}") }),
        None => Err(DecodeError::Field { field, problem: "is missing".into() }),
    }
}

fn optional_text(message: &mut Map<String, Value>, field: &'static str) -> Result<Option<String>, DecodeError> {
    match message.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(DecodeError::Field { field, problem: format!("is not text: {other}") }),
    }
}

/// Reads a (verified) message's fields.
pub fn sample(message: &Map<String, Value>) -> Result<ReceivedSample, DecodeError> {
    into_sample(message.clone())
}

/// Reads a (verified) message's fields, taking them out of it (no copy).
pub fn into_sample(mut message: Map<String, Value>) -> Result<ReceivedSample, DecodeError> {
    let kind = match text(&mut message, "counter_type")?.as_str() {
        "gauge" => MeterType::Gauge,
        "cumulative" => MeterType::Cumulative,
        "delta" => MeterType::Delta,
        other => {
            return Err(DecodeError::Field { field: "counter_type", problem: format!("`{other}` is no sample type") })
        }
    };
    let volume = match message.get("counter_volume") {
        Some(Value::Number(number)) => number.as_f64().unwrap_or(f64::NAN),
        // Ceilometer's volumes may come as numeric text.
        Some(Value::String(text)) => text.trim().parse().unwrap_or(f64::NAN),
        Some(other) => {
            return Err(DecodeError::Field { field: "counter_volume", problem: format!("is not a number: {other}") })
        }
        None => return Err(DecodeError::Field { field: "counter_volume", problem: "is missing".into() }),
    };
    if !volume.is_finite() {
        return Err(DecodeError::Field { field: "counter_volume", problem: "is not a finite number".into() });
    }
    let stamp = text(&mut message, "timestamp")?;
    let timestamp = parse_timestamp(&stamp).ok_or_else(|| DecodeError::Field {
        field: "timestamp",
        problem: format!("`{stamp}` is not an ISO 8601 time"),
    })?;
    let metadata = match message.remove("resource_metadata") {
        None | Some(Value::Null) => ReceivedMetadata::of(Map::new()),
        Some(Value::Object(metadata)) => ReceivedMetadata::of(metadata),
        Some(other) => {
            return Err(DecodeError::Field { field: "resource_metadata", problem: format!("is not a map: {other}") })
        }
    };
    Ok(ReceivedSample {
        source: optional_text(&mut message, "source")?.unwrap_or_else(|| "openstack".into()),
        name: text(&mut message, "counter_name")?,
        kind,
        unit: optional_text(&mut message, "counter_unit")?.unwrap_or_default(),
        volume,
        user_id: optional_text(&mut message, "user_id")?,
        project_id: optional_text(&mut message, "project_id")?,
        resource_id: text(&mut message, "resource_id")?,
        timestamp,
        metadata,
        message_id: text(&mut message, "message_id")?,
    })
}

/// Ceilometer's timestamps: ISO 8601 with or without a zone (UTC then), `T` or a space.
fn parse_timestamp(text: &str) -> Option<i64> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return at.timestamp_nanos_opt();
    }
    let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f"))
        .ok()?;
    naive.and_utc().timestamp_nanos_opt()
}

#[cfg(test)]
mod tests {
    use super::super::{msgpack_messages, notification_bodies};
    use super::*;
    use crate::publish::Batch;
    use crate::registry::Registry;
    use crate::sample::{Metadata, Meter, Owner, Resource, Sample};
    use std::sync::Arc;

    fn batch() -> Batch {
        let registry = Arc::new(Registry::new());
        let meter = registry.intern_meter(Meter { name: "cpu".into(), kind: MeterType::Cumulative, unit: "ns".into() });
        let metadata =
            serde_json::json!({"display_name": "vm \"1\"", "flavor": {"ram": 512, "vcpus": 2}, "tags": ["a"]});
        let resource = registry.intern_resource(Resource {
            metadata: Metadata::from_map(metadata.as_object().unwrap()),
            owner: Some(Arc::new(Owner { user_id: Some("user-1".into()), project_id: Some("project-1".into()) })),
            ..Resource::bare("vm-1")
        });
        let samples = vec![Sample { meter, resource, volume: 1.5e10, timestamp: 1_790_000_000_123_456_000 }];
        Batch::new(samples, registry, Arc::from("openstack"))
    }

    #[test]
    fn what_the_publishers_send_reads_back_whole() {
        let batch = batch();
        let datagram = &msgpack_messages(&batch, "secret")[0];
        let message = from_msgpack(datagram).unwrap();
        verify(&message, &["old".into(), "secret".into()]).unwrap();
        let received = sample(&message).unwrap();
        assert_eq!(received.name, "cpu");
        assert_eq!((received.kind, received.unit.as_str()), (MeterType::Cumulative, "ns"));
        assert_eq!(received.volume, 1.5e10);
        assert_eq!(received.resource_id, "vm-1");
        assert_eq!((received.user_id.as_deref(), received.project_id.as_deref()), (Some("user-1"), Some("project-1")));
        assert_eq!(received.timestamp, 1_790_000_000_123_456_000);
        assert_eq!(
            Value::Object(received.metadata.map.clone()),
            serde_json::json!({"display_name": "vm \"1\"", "flavor": {"ram": 512, "vcpus": 2}, "tags": ["a"]})
        );
        assert_eq!(received.message_id.len(), 36);

        let (body, count) = &notification_bodies(&batch, "secret", 10)[0];
        assert_eq!(*count, 1);
        let messages = from_notification(body).unwrap();
        assert_eq!(messages.len(), 1);
        verify(&messages[0], &["secret".into()]).unwrap();
        let from_bus = sample(&messages[0]).unwrap();
        assert_eq!(ReceivedSample { message_id: received.message_id.clone(), ..from_bus }, received);
    }

    /// The fast reading of notifications gives what the general one gives, for good,
    /// forged, unsigned and malformed samples, Python 2 signatures and escaped keys
    /// (which it leaves to the general reading), and reads each metadata text once.
    #[test]
    fn the_fast_reading_of_notifications_agrees_with_the_general_one() {
        let general = |body: &[u8], secrets: &[String]| -> Vec<Result<ReceivedSample, DecodeError>> {
            from_notification(body)
                .unwrap()
                .into_iter()
                .map(|m| verify(&m, secrets).and_then(|()| into_sample(m)))
                .collect()
        };
        let fast = |body: &[u8], secrets: &[String], cache: &mut ReadCache| {
            let mut out = Vec::new();
            read_notification(body, secrets, cache, |read| out.push(read)).unwrap();
            out
        };
        let comparable =
            |reads: Vec<Result<ReceivedSample, DecodeError>>| -> Vec<Result<(String, Value), DecodeError>> {
                reads
                    .into_iter()
                    .map(|r| {
                        r.map(|s| {
                            (
                                format!("{} {} {} {}", s.name, s.volume, s.resource_id, s.message_id),
                                Value::Object(s.metadata.map.clone()),
                            )
                        })
                    })
                    .collect()
            };
        let secrets = vec!["old".to_string(), "secret".to_string()];
        let mut cache = ReadCache::default();
        let (body, _) = &notification_bodies(&batch(), "secret", 10)[0];
        let read = fast(body, &secrets, &mut cache);
        assert!(read[0].is_ok(), "{read:?}");
        assert_eq!(comparable(read), comparable(general(body, &secrets)));
        // The same metadata again: read from the cache, the same mapping.
        let again = fast(body, &secrets, &mut cache);
        assert_eq!(cache.metadata.len(), 1);
        assert!(Arc::ptr_eq(
            &again[0].as_ref().unwrap().metadata,
            &fast(body, &secrets, &mut cache)[0].as_ref().unwrap().metadata
        ));

        let mut inner: Value =
            serde_json::from_str(serde_json::from_slice::<Value>(body).unwrap()["oslo.message"].as_str().unwrap())
                .unwrap();
        let good = inner["payload"]["samples"][0].clone();
        let mut forged = good.clone();
        forged["counter_volume"] = Value::from(7.0);
        let mut unsigned = good.clone();
        unsigned.as_object_mut().unwrap().remove("message_signature");
        let mut python2 = good.clone();
        python2["counter_volume"] = Value::from(1.0 / 3.0);
        let signature = signature::compute_as(python2.as_object().unwrap(), "secret", pollen_pytext::Python::Two);
        python2["message_signature"] = Value::String(signature);
        let mut escaped = good.clone();
        escaped["resource_metadata"]["we\"ird"] = Value::from(1);
        escaped.as_object_mut().unwrap().insert("x\ty".into(), Value::from("y"));
        let signature = signature::compute(escaped.as_object().unwrap(), "secret");
        escaped["message_signature"] = Value::String(signature);
        let mut missing = good.clone();
        missing.as_object_mut().unwrap().remove("resource_id");
        let signature = signature::compute(missing.as_object().unwrap(), "secret");
        missing["message_signature"] = Value::String(signature);
        inner["payload"]["samples"] = serde_json::json!([good, forged, unsigned, python2, escaped, missing]);
        let body = serde_json::json!({"oslo.version": "2.0", "oslo.message": inner.to_string()}).to_string();
        let read = fast(body.as_bytes(), &secrets, &mut cache);
        let expected = general(body.as_bytes(), &secrets);
        assert!(read[0].is_ok() && read[3].is_ok() && read[4].is_ok(), "{read:?}");
        assert_eq!(read[1], Err(DecodeError::BadSignature));
        assert_eq!(read[2], Err(DecodeError::Unsigned));
        assert!(matches!(read[5], Err(DecodeError::Field { field: "resource_id", .. })), "{:?}", read[5]);
        assert_eq!(comparable(read), comparable(expected));
        // The payload as the list itself (the notification agent's publisher), and as a
        // map with other keys around `samples`: read the same.
        let good = inner["payload"]["samples"][0].clone();
        for payload in [
            serde_json::json!([good.clone(), good.clone()]),
            serde_json::json!({"a": [1, {"b": null}], "samples": [good.clone(), good], "z": "x"}),
        ] {
            inner["payload"] = payload;
            let read_at_once = serde_json::from_str::<SamplesEnvelope>(&inner.to_string()).map(|e| e.payload.0.len());
            assert_eq!(read_at_once.ok(), Some(2), "read in one pass");
            let v2 = serde_json::json!({"oslo.version": "2.0", "oslo.message": inner.to_string()}).to_string();
            // A v1 message is the envelope's message itself.
            for body in [v2, inner.to_string()] {
                let read = fast(body.as_bytes(), &secrets, &mut cache);
                assert!(read.len() == 2 && read.iter().all(Result::is_ok), "{read:?}");
                assert_eq!(comparable(read), comparable(general(body.as_bytes(), &secrets)));
            }
        }
        // Not a notification: the same error both ways.
        for bad in [&b"{not json"[..], br#"{"oslo.message": "{}"}"#, br#"{"payload": 3}"#] {
            let mut never = |_| panic!("no sample in {bad:?}");
            assert!(read_notification(bad, &secrets, &mut cache, &mut never).is_err());
            assert!(from_notification(bad).is_err());
        }
    }

    #[test]
    fn forged_tampered_and_unsigned_messages_are_refused() {
        let batch = batch();
        let mut message = from_msgpack(&msgpack_messages(&batch, "secret")[0]).unwrap();
        assert_eq!(verify(&message, &["other".into()]), Err(DecodeError::BadSignature));
        assert_eq!(verify(&message, &[]), Ok(()), "no secret: not checked, as Ceilometer");
        message.insert("counter_volume".into(), serde_json::json!(1.0));
        assert_eq!(verify(&message, &["secret".into()]), Err(DecodeError::BadSignature), "tampered");
        let unsigned = from_msgpack(&msgpack_messages(&batch, "")[0]).unwrap();
        assert_eq!(verify(&unsigned, &["secret".into()]), Err(DecodeError::Unsigned));
    }

    #[test]
    fn bad_input_is_an_error_that_says_what() {
        assert!(matches!(from_msgpack(b"\x85\xa3abc"), Err(DecodeError::NotMsgpack(_))));
        assert_eq!(
            from_msgpack(&rmp_serde::to_vec(&[1, 2]).unwrap()),
            Err(DecodeError::NotAMessage("the datagram is not a map"))
        );
        assert!(matches!(from_notification(b"{not json"), Err(DecodeError::NotJson(_))));
        assert!(matches!(
            from_notification(br#"{"oslo.version": "2.0", "oslo.message": "{}"}"#),
            Err(DecodeError::NotANotification(_))
        ));
        let batch = batch();
        let good = from_msgpack(&msgpack_messages(&batch, "")[0]).unwrap();
        let without = |field: &str| {
            let mut message = good.clone();
            message.remove(field);
            sample(&message).unwrap_err().to_string()
        };
        assert_eq!(without("counter_name"), "`counter_name` is missing");
        assert_eq!(without("message_id"), "`message_id` is missing");
        let mut infinite = good.clone();
        infinite.insert("counter_volume".into(), Value::String("inf".into()));
        assert_eq!(sample(&infinite).unwrap_err().to_string(), "`counter_volume` is not a finite number");
        let mut stamp = good.clone();
        stamp.insert("timestamp".into(), Value::String("yesterday".into()));
        assert!(sample(&stamp).unwrap_err().to_string().starts_with("`timestamp` `yesterday`"));
        // Ceilometer's own timestamps: naive UTC, `T` or a space.
        assert_eq!(parse_timestamp("2026-12-01T22:13:11.728794"), Some(1_796_163_191_728_794_000));
        assert_eq!(parse_timestamp("2026-12-01 22:13:11.728794"), parse_timestamp("2026-12-01T22:13:11.728794"));
        assert_eq!(parse_timestamp("2026-12-01T22:13:11.728794+00:00"), parse_timestamp("2026-12-01T22:13:11.728794"));
    }
}
