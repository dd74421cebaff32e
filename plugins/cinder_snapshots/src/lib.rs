//! `volume_snapshots`: Cinder's snapshots of every project, as Ceilometer's
//! `volume_snapshots` discovery (`ceilometer/volume/discovery.py` and
//! `ceilometer/cinder_client.py`: `block_storage.snapshots(details=True,
//! all_projects=True)` at microversion 3.64 — 3.41 for `user_id` — on the `volumev3`
//! endpoint): `GET <endpoint>/snapshots/detail?all_tenants=True`, page by page. Each
//! snapshot is reported with what Ceilometer's `volume.snapshot.size` samples carry
//! (`ceilometer/volume/cinder.py`, `VolumeSnapshotSize`): its user and project
//! (`os-extended-snapshot-attributes:project_id`), the six metadata keys (openstacksdk's
//! attribute names read back from Cinder's, `openstack/block_storage/v3/snapshot.py`),
//! and its size for the `volume_snapshot_size` pollster.
//!
//! Parameter `service_type` (default `volumev3`). Needs `grants: [openstack]`.
use pollen_sdk::discoverer::*;
use serde_json::Value as Json;

/// Ceilometer's `VolumeSnapshotSize.FIELDS` and the key it adds, with the key of
/// Cinder's answer each is read from.
const METADATA: [(&str, &str); 6] = [
    ("name", "name"),
    ("volume_id", "volume_id"),
    ("status", "status"),
    ("description", "description"),
    ("metadata", "metadata"),
    ("os-extended-snapshot-attributes:progress", "os-extended-snapshot-attributes:progress"),
];

struct CinderSnapshots;

impl Discoverer for CinderSnapshots {
    fn name() -> String {
        "volume_snapshots".into()
    }

    fn discover(_param: Option<String>) -> Result<(), Error> {
        discover_cinder_listing("snapshots/detail?all_tenants=True&limit=1000", "snapshots", id_field, resource_of)
    }
}

/// A snapshot as Ceilometer's `volume.snapshot.size` sees it.
fn resource_of(id: &str, snapshot: &Json) -> DiscoveredResource {
    let text = |key: &str| snapshot.get(key).and_then(Json::as_str).map(str::to_string);
    let metadata =
        METADATA.iter().map(|(key, from)| entry(key, snapshot.get(*from).map_or(Value::Null, Value::from))).collect();
    DiscoveredResource {
        id: id.to_string(),
        name: text("name").filter(|n| !n.is_empty()).unwrap_or_else(|| id.to_string()),
        user_id: text("user_id"),
        project_id: text("os-extended-snapshot-attributes:project_id"),
        metadata,
        data: Some(snapshot["size"].to_string()),
    }
}

export_discoverer!(CinderSnapshots);
