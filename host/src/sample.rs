//! The host's sample model, and how a sample is written out (Ceilometer's keys).

use crate::metadata::Merged;
pub use crate::metadata::Metadata;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::cell::OnceCell;
use std::sync::Arc;

/// How a meter's volume behaves over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MeterType {
    /// A point-in-time value.
    Gauge,
    /// A counter that only grows.
    Cumulative,
    /// A change since the previous reading.
    Delta,
}

impl MeterType {
    /// Ceilometer's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            MeterType::Gauge => "gauge",
            MeterType::Cumulative => "cumulative",
            MeterType::Delta => "delta",
        }
    }
}

/// A meter: name, type and unit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Meter {
    /// e.g. `cpu`.
    pub name: String,
    /// Gauge, cumulative or delta.
    #[serde(rename = "type")]
    pub kind: MeterType,
    /// e.g. `ns`.
    pub unit: String,
}

/// Who owns a resource. The registry keeps one of each, shared by every resource
/// of that user and project (a host's instances have a handful of owners).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Owner {
    /// Owning user.
    pub user_id: Option<Box<str>>,
    /// Owning project.
    pub project_id: Option<Box<str>>,
}

impl Owner {
    /// The owner of these ids; none when neither is known.
    pub fn of(user_id: Option<&str>, project_id: Option<&str>) -> Option<Arc<Owner>> {
        if user_id.is_none() && project_id.is_none() {
            return None;
        }
        Some(Arc::new(Owner { user_id: user_id.map(Into::into), project_id: project_id.map(Into::into) }))
    }
}

/// A measured thing, as a discoverer reported it. A large host keeps tens of
/// thousands (instances, disks, vNICs), so what they share is shared, not copied.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// The id samples carry.
    pub id: Box<str>,
    /// What pollsters are handed besides the id (its name, its discoverer's data);
    /// shared with the resource's device views.
    pub handed: Arc<Handed>,
    /// User and project, if either is known (shared likewise).
    pub owner: Option<Arc<Owner>>,
    /// Ceilometer's `resource_metadata`, shared by the resource's per-device samples.
    pub metadata: Metadata,
    /// Keys a pollster added for one device (e.g. `disk_name`); they win over
    /// `metadata`.
    pub extra: Metadata,
}

/// What pollsters are handed of a resource besides its id: one allocation, shared by
/// the resource's device views (a thin pointer keeps [`Resource`] small).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Handed {
    /// A name pollsters may need (the libvirt domain name).
    pub name: Box<str>,
    /// What its discoverer found for its pollsters (JSON text, e.g. an image's size),
    /// never published.
    pub data: Option<Box<str>>,
}

impl Handed {
    /// A name and no data.
    pub fn named(name: &str) -> Arc<Self> {
        Arc::new(Self { name: name.into(), data: None })
    }
}

impl Resource {
    /// A resource known only by its id (static resources of a source).
    pub fn bare(id: &str) -> Self {
        Self {
            id: id.into(),
            handed: Handed::named(id),
            owner: None,
            metadata: Metadata::default(),
            extra: Metadata::default(),
        }
    }

    /// The name pollsters are handed (the libvirt domain name).
    pub fn name(&self) -> &str {
        &self.handed.name
    }

    /// The owning user, if known.
    pub fn user_id(&self) -> Option<&str> {
        self.owner.as_ref()?.user_id.as_deref()
    }

    /// The owning project, if known.
    pub fn project_id(&self) -> Option<&str> {
        self.owner.as_ref()?.project_id.as_deref()
    }

    /// One metadata key.
    pub fn metadata_value(&self, key: &str) -> Option<Value> {
        self.extra.get(key).or_else(|| self.metadata.get(key))
    }

    /// One metadata key, if its value is text.
    pub fn metadata_text(&self, key: &str) -> Option<String> {
        match self.metadata_value(key)? {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    /// The instance's flavor name: Nova's `instance_type`, else `flavor.name`, else
    /// `flavor_name`.
    pub fn flavor_name(&self) -> Option<String> {
        self.metadata_text("instance_type")
            .or_else(|| Some(self.metadata_value("flavor")?.get("name")?.as_str()?.to_string()))
            .or_else(|| self.metadata_text("flavor_name"))
    }

    /// The whole `resource_metadata`, with the per-device keys applied.
    pub fn merged_metadata(&self) -> Map<String, Value> {
        let mut merged = self.metadata.to_map();
        if !self.extra.is_empty() {
            merged.extend(self.extra.to_map());
        }
        merged
    }
}

/// A sample as it travels through the host and transformers: meter and resource
/// handles (see [`crate::registry`]), the volume, and the time in ns since the epoch.
pub use crate::bindings::types::SampleRef as Sample;

/// A resource as the records of a batch write it: its `resource_metadata` (the
/// metadata with the device's keys over it) made into JSON text once, the first time
/// a record of it is written, and copied as it is into every record after: a sample
/// costs the same however large its resource's metadata.
pub struct EncodedResource {
    /// The resource.
    pub resource: Arc<Resource>,
    metadata: OnceCell<Box<RawValue>>,
    owner: OnceCell<Box<[u8]>>,
}

impl EncodedResource {
    /// The resource, its metadata not encoded yet.
    pub fn new(resource: Arc<Resource>) -> Self {
        Self { resource, metadata: OnceCell::new(), owner: OnceCell::new() }
    }

    /// The keys of a JSON line (Ceilometer's `Sample.as_dict()`) that depend on the resource alone
    /// and sit between the volume and the timestamp, as JSON text:
    /// `,"user_id":…,"user_name":null,"project_id":…,"project_name":null,"resource_id":…,"timestamp":`.
    pub fn owner_json(&self) -> &[u8] {
        self.owner.get_or_init(|| {
            let mut out = Vec::with_capacity(160);
            let text = |out: &mut Vec<u8>, value: Option<&str>| {
                serde_json::to_writer(&mut *out, &value).expect("text serializes into memory")
            };
            out.extend_from_slice(b",\"user_id\":");
            text(&mut out, self.resource.user_id());
            out.extend_from_slice(b",\"user_name\":null,\"project_id\":");
            text(&mut out, self.resource.project_id());
            out.extend_from_slice(b",\"project_name\":null,\"resource_id\":");
            text(&mut out, Some(&self.resource.id));
            out.extend_from_slice(b",\"timestamp\":");
            out.into_boxed_slice()
        })
    }

    /// Its `resource_metadata` as JSON text.
    pub fn metadata(&self) -> &RawValue {
        self.metadata.get_or_init(|| {
            let merged = Merged { base: &self.resource.metadata, over: &self.resource.extra };
            let text = serde_json::to_string(&merged).expect("metadata serializes: it is JSON text");
            RawValue::from_string(text).expect("what serde_json wrote is JSON")
        })
    }
}

/// A sample with its handles resolved, for publishers that read its parts (JSON lines
/// are written by [`crate::publish::Records::write_json_lines_of`]).
pub struct SampleRecord<'a> {
    /// What was measured.
    pub meter: &'a Meter,
    /// On what, with its metadata's text.
    pub encoded: &'a EncodedResource,
    /// The value.
    pub volume: f64,
    /// When, as ISO 8601 text ([`iso8601`]).
    pub timestamp: &'a str,
}

/// ISO 8601 text of a time in ns since the epoch, in UTC with microseconds.
pub fn iso8601(timestamp_ns: i64) -> String {
    DateTime::<Utc>::from_timestamp_nanos(timestamp_ns).to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// Now, in ns since the Unix epoch.
pub fn now_ns() -> i64 {
    Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

impl SampleRecord<'_> {
    /// The resource it is about.
    pub fn resource(&self) -> &Resource {
        &self.encoded.resource
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resource_fits_a_small_allocation() {
        // 64 bytes and the `Arc` counts fit glibc's 96-byte chunk: at 10000 domains
        // the registry holds about 38,000 resources.
        assert!(std::mem::size_of::<Resource>() <= 64, "{} bytes", std::mem::size_of::<Resource>());
    }
}
