//! A batch as a disk queue's record (msgpack): its source, its meters and resources
//! once each (a resource's metadata as JSON text, its device keys merged in), and per
//! sample the indexes of its meter and resource, its volume, its time and its message
//! id, so that a batch sent again after a crash carries the same ids (a database
//! stores it once).

use crate::publish::{Batch, Received};
use crate::registry::{MeterHandle, Registry, ResourceHandle};
use crate::sample::{EncodedResource, Metadata, Meter, MeterType, Owner, Resource, Sample};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

#[derive(Serialize, Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    source: Cow<'a, str>,
    #[serde(borrow)]
    meters: Vec<(Cow<'a, str>, Cow<'a, str>, Cow<'a, str>)>,
    #[serde(borrow)]
    resources: Vec<RecordResource<'a>>,
    /// Meter index, resource index, volume, time (ns since the epoch).
    samples: Vec<(u32, u32, f64, i64)>,
    #[serde(borrow)]
    message_ids: Vec<Cow<'a, str>>,
}

#[derive(Serialize, Deserialize)]
struct RecordResource<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    user_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    project_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    metadata: Cow<'a, str>,
}

/// A record that cannot be read back.
#[derive(Debug, thiserror::Error)]
#[error("a disk queue record cannot be read: {0}")]
pub struct RecordError(String);

/// Some of a batch's samples (`range`) as one record, and how many it holds (samples
/// whose handles no longer resolve are left out). Message ids are the batch's own
/// when it was received, new ones otherwise.
pub fn encode(batch: &Batch, range: std::ops::Range<usize>) -> (u32, Vec<u8>) {
    let registry = &batch.registry;
    let mut meters: HashMap<MeterHandle, Option<u32>> = HashMap::new();
    let mut resources: HashMap<ResourceHandle, Option<u32>> = HashMap::new();
    let mut record = Record {
        source: Cow::Borrowed(&batch.source),
        meters: Vec::new(),
        resources: Vec::new(),
        samples: Vec::with_capacity(range.len()),
        message_ids: Vec::with_capacity(range.len()),
    };
    let received = batch.received.as_ref().map(|r| &r.message_ids);
    for index in range {
        let sample = &batch.samples[index];
        let meter = *meters.entry(sample.meter).or_insert_with(|| {
            let meter = registry.meter(sample.meter)?;
            record.meters.push((meter.name.clone().into(), meter.kind.as_str().into(), meter.unit.clone().into()));
            Some(record.meters.len() as u32 - 1)
        });
        let resource = *resources.entry(sample.resource).or_insert_with(|| {
            let encoded = EncodedResource::new(registry.resource(sample.resource)?);
            record.resources.push(RecordResource {
                id: encoded.resource.id.to_string().into(),
                user_id: encoded.resource.user_id().map(|u| u.to_string().into()),
                project_id: encoded.resource.project_id().map(|p| p.to_string().into()),
                metadata: encoded.metadata().get().to_string().into(),
            });
            Some(record.resources.len() as u32 - 1)
        });
        let (Some(meter), Some(resource)) = (meter, resource) else { continue };
        record.samples.push((meter, resource, sample.volume, sample.timestamp));
        record.message_ids.push(match received.and_then(|ids| ids.get(index)) {
            Some(id) => Cow::Borrowed(&**id),
            None => Cow::Owned(uuid::Uuid::new_v4().hyphenated().to_string()),
        });
    }
    let bytes = rmp_serde::to_vec(&record).expect("a record serializes into memory");
    (record.samples.len() as u32, bytes)
}

fn meter_type(text: &str) -> Result<MeterType, RecordError> {
    match text {
        "gauge" => Ok(MeterType::Gauge),
        "cumulative" => Ok(MeterType::Cumulative),
        "delta" => Ok(MeterType::Delta),
        other => Err(RecordError(format!("unknown meter type `{other}`"))),
    }
}

/// A record back as a batch of its own registry, with its message ids.
pub fn decode(bytes: &[u8]) -> Result<Batch, RecordError> {
    let record: Record<'_> = rmp_serde::from_slice(bytes).map_err(|e| RecordError(e.to_string()))?;
    let registry = Registry::new();
    let meters = record
        .meters
        .iter()
        .map(|(name, kind, unit)| {
            Ok(registry.intern_meter(Meter { name: name.to_string(), kind: meter_type(kind)?, unit: unit.to_string() }))
        })
        .collect::<Result<Vec<_>, RecordError>>()?;
    let mut seen = HashSet::new();
    let base = registry.namespace_of_plugin("disk-queue");
    let resources = record
        .resources
        .iter()
        .enumerate()
        .map(|(index, r)| {
            let map: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&r.metadata).map_err(|e| RecordError(format!("resource metadata: {e}")))?;
            // A resource id twice in one record (two versions of its metadata, as a
            // collector may receive) keeps both.
            let namespace =
                if seen.insert(&*r.id) { base } else { registry.namespace_of_plugin(&format!("disk-queue-{index}")) };
            let owner = Owner::of(r.user_id.as_deref(), r.project_id.as_deref());
            Ok(registry
                .intern_in(namespace, Resource { metadata: Metadata::from_map(&map), owner, ..Resource::bare(&r.id) }))
        })
        .collect::<Result<Vec<_>, RecordError>>()?;
    if record.message_ids.len() != record.samples.len() {
        return Err(RecordError("as many message ids as samples were expected".into()));
    }
    let samples = record
        .samples
        .iter()
        .map(|&(meter, resource, volume, timestamp)| {
            let meter = *meters.get(meter as usize).ok_or_else(|| RecordError(format!("no meter {meter}")))?;
            let resource =
                *resources.get(resource as usize).ok_or_else(|| RecordError(format!("no resource {resource}")))?;
            Ok(Sample { meter, resource, volume, timestamp })
        })
        .collect::<Result<Vec<_>, RecordError>>()?;
    let mut batch = Batch::new(samples, Arc::new(registry), Arc::from(&*record.source));
    batch.received =
        Some(Received { message_ids: record.message_ids.iter().map(|id| id.as_ref().into()).collect(), receipt: None });
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_comes_back_with_the_same_json_lines_and_ids() {
        let registry = Arc::new(Registry::new());
        let cpu = registry.intern_meter(Meter { name: "cpu".into(), kind: MeterType::Cumulative, unit: "ns".into() });
        let mut map = serde_json::Map::new();
        map.insert("flavor".into(), serde_json::json!({"name": "m1.small", "vcpus": 1}));
        map.insert("host".into(), serde_json::json!("compute-1"));
        let vm = registry.intern_resource(Resource {
            metadata: Metadata::from_map(&map),
            owner: Owner::of(Some("u"), Some("p")),
            ..Resource::bare("vm-1")
        });
        let bare = registry.intern_resource(Resource::bare("host-1"));
        let samples = vec![
            Sample { meter: cpu, resource: vm, volume: 1.5, timestamp: 1_790_000_000_000_000_000 },
            Sample { meter: cpu, resource: bare, volume: f64::MAX, timestamp: 1_790_000_001_000_000_000 },
        ];
        let mut batch = Batch::new(samples, registry, Arc::from("openstack"));
        batch.received = Some(Received { message_ids: vec!["a".into(), "b".into()], receipt: None });
        let (count, bytes) = encode(&batch, 0..2);
        assert_eq!(count, 2);
        let back = decode(&bytes).unwrap();
        let strip_ids = |b: &Batch| {
            let mut out = Vec::new();
            b.write_json_lines(&mut out);
            String::from_utf8(out)
                .unwrap()
                .lines()
                .map(|l| {
                    let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                    v.as_object_mut().unwrap().remove("id");
                    v
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(strip_ids(&back), strip_ids(&batch));
        assert_eq!(back.received.as_ref().unwrap().message_ids, ["a".into(), "b".into()] as [Box<str>; 2]);
        let (_, only_second) = encode(&batch, 1..2);
        assert_eq!(decode(&only_second).unwrap().samples.len(), 1);
        assert!(decode(b"\x93garbage").is_err());
    }
}
