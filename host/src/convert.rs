//! Conversions between the WIT records plugins exchange and the host's own types.

use crate::bindings::types;
use crate::sample::{Handed, Metadata, MeterType, Owner, Resource};
use serde_json::{Map, Value};
use std::sync::Arc;

/// The host's meter type for a WIT one.
pub fn meter_type(kind: types::MeterType) -> MeterType {
    match kind {
        types::MeterType::Gauge => MeterType::Gauge,
        types::MeterType::Cumulative => MeterType::Cumulative,
        types::MeterType::Delta => MeterType::Delta,
    }
}

/// The WIT meter type for a host one.
pub fn wit_meter_type(kind: MeterType) -> types::MeterType {
    match kind {
        MeterType::Gauge => types::MeterType::Gauge,
        MeterType::Cumulative => types::MeterType::Cumulative,
        MeterType::Delta => types::MeterType::Delta,
    }
}

/// A WIT metadata value as JSON. JSON text that does not parse is kept as a string,
/// so nothing a plugin reports is lost.
pub fn value_to_json(value: types::Value) -> Value {
    match value {
        types::Value::Null => Value::Null,
        types::Value::Text(text) => Value::String(text),
        types::Value::Integer(number) => Value::from(number),
        types::Value::Float(number) => serde_json::Number::from_f64(number).map_or(Value::Null, Value::Number),
        types::Value::Boolean(flag) => Value::Bool(flag),
        types::Value::Json(text) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

/// A JSON metadata value as a WIT one (objects and arrays as JSON text).
pub fn json_to_value(value: &Value) -> types::Value {
    match value {
        Value::Null => types::Value::Null,
        Value::Bool(flag) => types::Value::Boolean(*flag),
        Value::Number(number) => match number.as_i64() {
            Some(integer) => types::Value::Integer(integer),
            None => types::Value::Float(number.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(text) => types::Value::Text(text.clone()),
        other => types::Value::Json(other.to_string()),
    }
}

/// Metadata entries as a JSON object (a later key wins).
pub fn metadata_to_json(entries: Vec<types::MetadataEntry>) -> Map<String, Value> {
    entries.into_iter().map(|entry| (entry.key, value_to_json(entry.value))).collect()
}

/// A discovered resource as the host keeps it.
pub fn resource_from_discovered(discovered: types::DiscoveredResource) -> Resource {
    Resource {
        id: discovered.id.into(),
        handed: Arc::new(Handed { name: discovered.name.into(), data: discovered.data.map(Into::into) }),
        owner: Owner::of(discovered.user_id.as_deref(), discovered.project_id.as_deref()),
        metadata: Metadata::from_map(&metadata_to_json(discovered.metadata)),
        extra: Metadata::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_json() {
        for value in [
            Value::Null,
            Value::from("text"),
            Value::from(3),
            Value::from(2.5),
            Value::from(true),
            serde_json::json!({"id": "f1", "vcpus": 2}),
        ] {
            assert_eq!(value_to_json(json_to_value(&value)), value);
        }
        assert_eq!(value_to_json(types::Value::Json("{not json".into())), Value::from("{not json"));
    }
}
