//! Receiving Ceilometer's metering messages (what the collector reads): the msgpack
//! map of a UDP datagram or a TCP frame, and the oslo.messaging notification that
//! carries a batch of them (v2 envelope, `{"oslo.version": "2.0", "oslo.message":
//! "<JSON>"}`, or a bare v1 message), each message checked against its signature and
//! read into a [`ReceivedSample`]. Anything malformed is an error naming what is wrong,
//! never a panic: a collector counts it and goes on.

use super::super::signature::{self, SIGNATURE_KEY};
use crate::sample::MeterType;
use serde_json::{Map, Value};
use std::fmt;

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
    /// `resource_metadata`.
    pub metadata: Map<String, Value>,
    /// `message_id`: what makes a redelivered message the same one.
    pub message_id: String,
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
    let samples = match message.get("payload") {
        Some(Value::Object(payload)) => payload.get("samples").cloned(),
        // The notification agent's publisher puts the list as the payload itself.
        Some(Value::Array(list)) => Some(Value::Array(list.clone())),
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

fn text(message: &Map<String, Value>, field: &'static str) -> Result<String, DecodeError> {
    match message.get(field) {
        Some(Value::String(text)) if !text.is_empty() => Ok(text.clone()),
        Some(Value::String(_)) => Err(DecodeError::Field { field, problem: "is empty".into() }),
        Some(other) => Err(DecodeError::Field { field, problem: format!("is not text: {other}") }),
        None => Err(DecodeError::Field { field, problem: "is missing".into() }),
    }
}

fn optional_text(message: &Map<String, Value>, field: &'static str) -> Result<Option<String>, DecodeError> {
    match message.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(other) => Err(DecodeError::Field { field, problem: format!("is not text: {other}") }),
    }
}

/// Reads a (verified) message's fields.
pub fn sample(message: &Map<String, Value>) -> Result<ReceivedSample, DecodeError> {
    let kind = match text(message, "counter_type")?.as_str() {
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
    let stamp = text(message, "timestamp")?;
    let timestamp = parse_timestamp(&stamp).ok_or_else(|| DecodeError::Field {
        field: "timestamp",
        problem: format!("`{stamp}` is not an ISO 8601 time"),
    })?;
    let metadata = match message.get("resource_metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(metadata)) => metadata.clone(),
        Some(other) => {
            return Err(DecodeError::Field { field: "resource_metadata", problem: format!("is not a map: {other}") })
        }
    };
    Ok(ReceivedSample {
        source: optional_text(message, "source")?.unwrap_or_else(|| "openstack".into()),
        name: text(message, "counter_name")?,
        kind,
        unit: optional_text(message, "counter_unit")?.unwrap_or_default(),
        volume,
        user_id: optional_text(message, "user_id")?,
        project_id: optional_text(message, "project_id")?,
        resource_id: text(message, "resource_id")?,
        timestamp,
        metadata,
        message_id: text(message, "message_id")?,
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
            Value::Object(received.metadata.clone()),
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
