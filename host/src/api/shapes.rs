//! What the API answers, in Ceilometer 9.0.7's JSON shapes
//! (`ceilometer/api/controllers/v2/{samples,meters,resources}.py`): times as naive
//! UTC ISO 8601, metadata flattened to strings as `utils.flatten_metadata` makes it.

use super::time::isoformat;
use crate::store::read::{Aggregate, Column, MeterOfResource, StatisticsRow, StoredResource, StoredSample};
use base64::Engine;
use pollen_pytext::{decoded_repr, python_str, Python};
use serde_json::{json, Map, Value};

/// Ceilometer's `flatten_metadata`: nested keys joined by `.` then every `.` but
/// the first made `:` (`{"a": {"b": {"c": 1}}}` gives `a.b:c`), keys sorted, values
/// as Python's `str()` (lists as what `decode_unicode` makes of them, so `[b'x']`).
pub fn flatten_metadata(metadata: &str) -> Map<String, Value> {
    let mut flat = Map::new();
    if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(metadata) {
        keypairs(&map, "", &mut flat);
    }
    flat
}

fn keypairs(map: &Map<String, Value>, prefix: &str, flat: &mut Map<String, Value>) {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for key in keys {
        let name = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match &map[key] {
            Value::Object(inner) => keypairs(inner, &name, flat),
            value => {
                let text = match value {
                    Value::Array(_) => decoded_repr(value, Python::Three),
                    other => python_str(other),
                };
                let flattened = name.replace('.', ":").replacen(':', ".", 1);
                flat.insert(flattened, Value::String(text));
            }
        }
    }
}

/// A sample in `/v2/samples`' shape.
pub fn sample(stored: &StoredSample) -> Value {
    json!({
        "id": stored.message_id,
        "meter": stored.meter,
        "type": stored.meter_type,
        "unit": stored.unit,
        "volume": stored.volume,
        "user_id": stored.user_id,
        "project_id": stored.project_id,
        "resource_id": stored.resource_id,
        "source": stored.source,
        "timestamp": isoformat(stored.timestamp),
        "recorded_at": isoformat(stored.recorded_at),
        "metadata": flatten_metadata(&stored.metadata),
    })
}

/// A sample in `/v2/meters/<name>`'s "old" shape (`OldSample`).
pub fn old_sample(stored: &StoredSample) -> Value {
    json!({
        "source": stored.source,
        "counter_name": stored.meter,
        "counter_type": stored.meter_type,
        "counter_unit": stored.unit,
        "counter_volume": stored.volume,
        "user_id": stored.user_id,
        "project_id": stored.project_id,
        "resource_id": stored.resource_id,
        "timestamp": isoformat(stored.timestamp),
        "recorded_at": isoformat(stored.recorded_at),
        "resource_metadata": flatten_metadata(&stored.metadata),
        "message_id": stored.message_id,
    })
}

/// A meter in `/v2/meters`' shape; `meter_id` is base64 of `<resource>+<name>`.
pub fn meter(meter: &MeterOfResource) -> Value {
    let owner = meter.resource.as_ref();
    let resource_id = owner.map(|o| o.resource_id.as_str());
    let id = format!("{}+{}", resource_id.unwrap_or("None"), meter.name);
    json!({
        "name": meter.name,
        "type": meter.meter_type,
        "unit": meter.unit,
        "resource_id": resource_id,
        "project_id": owner.and_then(|o| o.project_id.as_deref()),
        "user_id": owner.and_then(|o| o.user_id.as_deref()),
        "source": owner.map(|o| o.source.as_str()),
        "meter_id": base64::engine::general_purpose::STANDARD.encode(id),
    })
}

/// A resource in `/v2/resources`' shape, with its links: itself, then each meter's
/// samples of it.
pub fn resource(resource: &StoredResource, base_url: &str, meter_links: bool) -> Value {
    let id = &resource.owner.resource_id;
    let mut links = vec![json!({"href": format!("{base_url}/v2/resources/{id}"), "rel": "self"})];
    if meter_links {
        for meter in &resource.meters {
            links.push(json!({
                "href": format!("{base_url}/v2/meters/{meter}?q.field=resource_id&q.value={id}"),
                "rel": meter,
            }));
        }
    }
    json!({
        "resource_id": id,
        "project_id": resource.owner.project_id,
        "user_id": resource.owner.user_id,
        "source": resource.owner.source,
        "first_sample_timestamp": isoformat(resource.first_sample),
        "last_sample_timestamp": isoformat(resource.last_sample),
        "metadata": flatten_metadata(&resource.metadata),
        "links": links,
    })
}

/// The aggregates Ceilometer computes when none is selected, and their fields.
pub const STANDARD: [(Aggregate, &str); 5] = [
    (Aggregate::Min, "min"),
    (Aggregate::Max, "max"),
    (Aggregate::Avg, "avg"),
    (Aggregate::Sum, "sum"),
    (Aggregate::Count, "count"),
];

/// What a statistics answer holds beyond each row's values.
pub struct StatisticsShape<'a> {
    /// The period in seconds (0 without periods).
    pub period_s: i64,
    /// The groups' names, in the order asked.
    pub groupby: &'a [String],
    /// The aggregates asked for (`None`: the standard five, no `aggregate` map).
    pub selected: Option<&'a [(Aggregate, String)]>,
    /// The query's own start, which durations are clamped to.
    pub query_start: Option<i64>,
    /// The query's own end, likewise.
    pub query_end: Option<i64>,
}

/// One row of statistics in Ceilometer's `Statistics` shape.
pub fn statistics(row: &StatisticsRow, shape: &StatisticsShape) -> Value {
    let mut out = Map::new();
    let value = |aggregate: Aggregate| row.values.get(&aggregate).copied().flatten();
    for (aggregate, name) in STANDARD {
        if row.values.contains_key(&aggregate) {
            let number = value(aggregate);
            out.insert(
                name.into(),
                match (aggregate, number) {
                    (Aggregate::Count, Some(n)) => json!(n as i64),
                    (_, n) => json!(n),
                },
            );
        }
    }
    if let Some(selected) = shape.selected {
        let map: Map<String, Value> =
            selected.iter().map(|(aggregate, key)| (key.clone(), json!(value(*aggregate)))).collect();
        out.insert("aggregate".into(), Value::Object(map));
    }
    // Durations clamped to the query's own range, as `Statistics._update_duration`.
    let start = shape.query_start.map_or(row.first, |s| row.first.max(s));
    let end = shape.query_end.map_or(row.last, |e| row.last.min(e));
    if start <= end {
        out.insert("duration".into(), json!((end - start) as f64 / 1e6));
        out.insert("duration_start".into(), json!(isoformat(start)));
        out.insert("duration_end".into(), json!(isoformat(end)));
    } else {
        for key in ["duration", "duration_start", "duration_end"] {
            out.insert(key.into(), Value::Null);
        }
    }
    let (period_start, period_end) = match row.period_start {
        Some(at) => (at, at + shape.period_s * 1_000_000),
        None => (row.first, row.last),
    };
    out.insert("period".into(), json!(shape.period_s));
    out.insert("period_start".into(), json!(isoformat(period_start)));
    out.insert("period_end".into(), json!(isoformat(period_end)));
    out.insert("unit".into(), json!(row.unit));
    out.insert(
        "groupby".into(),
        if shape.groupby.is_empty() {
            Value::Null
        } else {
            shape.groupby.iter().zip(&row.groups).map(|(name, value)| (name.clone(), json!(value))).collect()
        },
    );
    Value::Object(out)
}

/// The column a `cardinality` aggregate counts.
pub fn cardinality_column(param: &str) -> Option<Column> {
    match param {
        "resource_id" => Some(Column::ResourceId),
        "user_id" => Some(Column::UserId),
        "project_id" => Some(Column::ProjectId),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_flattens_as_ceilometer_flattens_it() {
        // As `flatten_metadata` (ceilometer/api/controllers/v2/utils.py, 9.0.7) prints
        // these under Python 3.
        let flat = flatten_metadata(
            r#"{"a": {"b": {"c": 1}}, "flavor": {"vcpus": 2, "name": "m1.tiny"}, "tags": ["x", "y"],
                "on": true, "none": null, "ratio": 0.5, "dotted.key": "v"}"#,
        );
        assert_eq!(flat["a.b:c"], "1");
        assert_eq!(flat["flavor.vcpus"], "2");
        assert_eq!(flat["flavor.name"], "m1.tiny");
        assert_eq!(flat["tags"], "[b'x', b'y']");
        assert_eq!(flat["on"], "True");
        assert_eq!(flat["none"], "None");
        assert_eq!(flat["ratio"], "0.5");
        assert_eq!(flat["dotted.key"], "v");
    }

    #[test]
    fn meter_ids_are_base64_of_resource_and_name() {
        let shown = meter(&MeterOfResource {
            name: "cpu".into(),
            meter_type: "cumulative".into(),
            unit: "ns".into(),
            resource: Some(crate::store::read::ResourceOwner {
                resource_id: "r1".into(),
                user_id: None,
                project_id: Some("p".into()),
                source: "openstack".into(),
            }),
        });
        assert_eq!(shown["meter_id"], "cjErY3B1");
    }
}
