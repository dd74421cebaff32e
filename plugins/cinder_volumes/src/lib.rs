//! `volumes`: Cinder's volumes of every project, as Ceilometer's `volumes` discovery
//! (`ceilometer/volume/discovery.py` and `ceilometer/cinder_client.py`:
//! `block_storage.volumes(details=True, all_projects=True)` at microversion 3.64 on the
//! `volumev3` endpoint): `GET <endpoint>/volumes/detail?all_tenants=True`, page by page.
//! Each volume is reported with what Ceilometer's `volume.size` samples carry
//! (`ceilometer/volume/cinder.py`, `VolumeSizePollster`): its user and project
//! (`os-vol-tenant-attr:tenant_id`), the twelve metadata keys (openstacksdk's
//! attribute names read back from Cinder's, `openstack/block_storage/v3/volume.py`),
//! and its size for the `volume_size` pollster.
//!
//! Parameter `service_type` (default `volumev3`, Ceilometer's `[service_types] cinder`).
//! Needs `grants: [openstack]`. A cloud without that service is skipped with one warning.
use pollen_sdk::discoverer::*;
use serde_json::Value as Json;

/// Ceilometer's `VolumeSizePollster.FIELDS`, and the key of Cinder's answer each is
/// read from.
const FIELDS: [(&str, &str); 8] = [
    ("name", "name"),
    ("status", "status"),
    ("volume_type", "volume_type"),
    ("volume_type_id", "volume_type_id"),
    ("availability_zone", "availability_zone"),
    ("migration_status", "os-vol-mig-status-attr:migstat"),
    ("attachments", "attachments"),
    ("snapshot_id", "snapshot_id"),
];

struct CinderVolumes;

impl Discoverer for CinderVolumes {
    fn name() -> String {
        "volumes".into()
    }

    fn discover(_param: Option<String>) -> Result<(), Error> {
        discover_cinder_listing("volumes/detail?all_tenants=True&limit=1000", "volumes", id_field, resource_of)
    }
}

/// A volume as Ceilometer's `volume.size` sees it (`VolumeSizePollster.extract_metadata`).
fn resource_of(id: &str, volume: &Json) -> DiscoveredResource {
    let text = |key: &str| volume.get(key).and_then(Json::as_str).map(str::to_string);
    let or_null = |value: Option<&Json>| value.map_or(Value::Null, Value::from);
    let mut metadata: Vec<MetadataEntry> =
        FIELDS.iter().map(|(key, from)| entry(key, or_null(volume.get(*from)))).collect();
    let image_metadata = volume.get("volume_image_metadata").filter(|m| m.as_object().is_some_and(|o| !o.is_empty()));
    metadata.push(entry("image_id", or_null(image_metadata.and_then(|m| m.get("image_id")))));
    let first_attachment = volume["attachments"].as_array().and_then(|a| a.first());
    metadata.push(entry("instance_id", or_null(first_attachment.and_then(|a| a.get("server_id")))));
    metadata.push(entry("os-vol-host-attr:host", or_null(volume.get("os-vol-host-attr:host"))));
    metadata.push(entry("source_volid", or_null(volume.get("source_volid"))));
    DiscoveredResource {
        id: id.to_string(),
        name: text("name").filter(|n| !n.is_empty()).unwrap_or_else(|| id.to_string()),
        user_id: text("user_id"),
        project_id: text("os-vol-tenant-attr:tenant_id"),
        metadata,
        data: Some(volume["size"].to_string()),
    }
}

export_discoverer!(CinderVolumes);
