//! `volume_backups`: Cinder's backups of every project, as Ceilometer's
//! `volume_backups` discovery (`ceilometer/volume/discovery.py` and
//! `ceilometer/cinder_client.py`: `block_storage.backups(details=True,
//! all_projects=True)` at microversion 3.64 — 3.56 for `user_id` and the project — on
//! the `volumev3` endpoint): `GET <endpoint>/backups/detail?all_tenants=True`, page by
//! page. Each backup is reported with what Ceilometer's `volume.backup.size` samples
//! carry (`ceilometer/volume/cinder.py`, `VolumeBackupSize`): its user and project
//! (`os-backup-project-attr:project_id`), the seven metadata keys (openstacksdk's
//! attribute names read back from Cinder's, `openstack/block_storage/v3/backup.py`),
//! and its size for the `volume_backup_size` pollster. A backup is reported whatever
//! its status (Ceilometer filters none out): one that failed still holds its size.
//!
//! Parameter `service_type` (default `volumev3`). Needs `grants: [openstack]`.
use pollen_sdk::discoverer::*;
use serde_json::Value as Json;

/// Ceilometer's `VolumeBackupSize.FIELDS`, each read from the key of Cinder's answer of
/// the same name.
const METADATA: [&str; 7] =
    ["name", "is_incremental", "object_count", "container", "volume_id", "status", "description"];

struct CinderBackups;

impl Discoverer for CinderBackups {
    fn name() -> String {
        "volume_backups".into()
    }

    fn discover(_param: Option<String>) -> Result<(), Error> {
        discover_cinder_listing("backups/detail?all_tenants=True&limit=1000", "backups", id_field, resource_of)
    }
}

/// A backup as Ceilometer's `volume.backup.size` sees it.
fn resource_of(id: &str, backup: &Json) -> DiscoveredResource {
    let text = |key: &str| backup.get(key).and_then(Json::as_str).map(str::to_string);
    let metadata = METADATA.iter().map(|key| entry(key, backup.get(*key).map_or(Value::Null, Value::from))).collect();
    DiscoveredResource {
        id: id.to_string(),
        name: text("name").filter(|n| !n.is_empty()).unwrap_or_else(|| id.to_string()),
        user_id: text("user_id"),
        project_id: text("os-backup-project-attr:project_id"),
        metadata,
        data: Some(backup["size"].to_string()),
    }
}

export_discoverer!(CinderBackups);
