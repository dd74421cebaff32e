//! `volume_services`: Cinder's services, as Ceilometer's `volume_services` discovery
//! (`ceilometer/volume/discovery.py`, `ceilometer/cinder_client.py`:
//! `block_storage.services()`, i.e. `GET <endpoint>/os-services`,
//! `openstack/block_storage/v3/service.py`). Each is reported as Ceilometer's
//! `volume.service.health` samples carry it (`ceilometer/volume/cinder.py`,
//! `VolumeServiceHealthPollster`): resource id `<binary>@<host>`, no user or project,
//! metadata `binary`, `host`, `status` and `zone`, and its state for the
//! `volume_service_health` pollster.
//!
//! Parameter `service_type` (default `volumev3`). Needs `grants: [openstack]`.
use pollen_sdk::discoverer::*;
use serde_json::Value as Json;

struct CinderServices;

impl Discoverer for CinderServices {
    fn name() -> String {
        "volume_services".into()
    }

    fn discover(_param: Option<String>) -> Result<(), Error> {
        let id_of =
            |service: &Json| Some(format!("{}@{}", service.get("binary")?.as_str()?, service.get("host")?.as_str()?));
        discover_cinder_listing("os-services", "services", id_of, resource_of)
    }
}

/// A service as Ceilometer's `volume.service.health` sees it.
fn resource_of(id: &str, service: &Json) -> DiscoveredResource {
    let field = |key: &str| service.get(key).map_or(Value::Null, Value::from);
    DiscoveredResource {
        id: id.to_string(),
        name: id.to_string(),
        user_id: None,
        project_id: None,
        metadata: vec![
            entry("binary", field("binary")),
            entry("host", field("host")),
            entry("status", field("status")),
            entry("zone", field("zone")),
        ],
        data: Some(service.get("state").cloned().unwrap_or(Json::Null).to_string()),
    }
}

export_discoverer!(CinderServices);
