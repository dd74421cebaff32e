//! Ceilometer's wire forms of a sample: the metering message (what the notifier, UDP
//! and TCP publishers send, signed) and the oslo.messaging notification that carries a
//! batch of them to a notification agent.

use super::signature::{self, SIGNATURE_KEY};
use crate::sample::{iso8601, SampleRecord};
use serde_json::{json, Map, Value};

/// `publisher_id` of Pollen's notifications (Ceilometer's polling agent's own).
pub const PUBLISHER_ID: &str = "ceilometer.polling";
/// `event_type` of polling notifications.
pub const EVENT_TYPE: &str = "telemetry.polling";

/// A metering message (Ceilometer's `meter_message_from_counter`), signed with
/// `secret` (unsigned, with an empty signature, when it is empty).
pub fn metering_message(record: &SampleRecord, secret: &str) -> Map<String, Value> {
    let mut message = Map::new();
    message.insert("source".into(), Value::from(record.source));
    message.insert("counter_name".into(), Value::from(record.meter.name.as_str()));
    message.insert("counter_type".into(), Value::from(record.meter.kind.as_str()));
    message.insert("counter_unit".into(), Value::from(record.meter.unit.as_str()));
    message.insert("counter_volume".into(), json!(record.volume));
    message.insert("user_id".into(), json!(record.resource.user_id));
    message.insert("user_name".into(), Value::Null);
    message.insert("project_id".into(), json!(record.resource.project_id));
    message.insert("project_name".into(), Value::Null);
    message.insert("resource_id".into(), Value::from(record.resource.id.as_str()));
    message.insert("timestamp".into(), Value::from(iso8601(record.timestamp)));
    message.insert("resource_metadata".into(), Value::Object(record.resource.merged_metadata().into_owned()));
    message.insert("message_id".into(), Value::from(record.id.to_string()));
    message.insert("monotonic_time".into(), Value::Null);
    let signature = signature::compute(&message, secret);
    message.insert(SIGNATURE_KEY.into(), Value::from(signature));
    message
}

/// The body of one oslo.messaging v2 notification carrying `samples`, as the rabbit
/// driver puts it on the wire: `{"oslo.version": "2.0", "oslo.message": "<JSON>"}`.
pub fn notification_body(samples: &[Map<String, Value>]) -> Vec<u8> {
    let now = chrono::Utc::now();
    let message = json!({
        "message_id": uuid::Uuid::new_v4().to_string(),
        "publisher_id": PUBLISHER_ID,
        "event_type": EVENT_TYPE,
        "priority": "SAMPLE",
        "payload": { "samples": samples },
        "timestamp": now.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
        "_unique_id": uuid::Uuid::new_v4().simple().to_string(),
    });
    let envelope = json!({ "oslo.version": "2.0", "oslo.message": message.to_string() });
    serde_json::to_vec(&envelope).expect("JSON values always serialize")
}
