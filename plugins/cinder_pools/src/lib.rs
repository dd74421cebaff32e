//! `volume_pools`: Cinder's back-end pools, as Ceilometer's `volume_pools` discovery
//! (`ceilometer/volume/discovery.py`, `ceilometer/cinder_client.py`:
//! `block_storage.backend_pools()`, i.e. `GET <endpoint>/scheduler-stats/get_pools?detail=True`,
//! `openstack/block_storage/v3/stats.py`). Each pool is reported as Ceilometer's
//! `volume.provider.pool.capacity.*` samples carry it (`ceilometer/volume/cinder.py`,
//! `_VolumeProviderPoolBase`): resource id the pool's name
//! (`<host>@<backend>#<pool>`), no user or project, metadata `pool_name` (from its
//! capabilities) and `provider` (the name up to `#`), and its capabilities for the
//! `volume_pool_capacity` pollster.
//!
//! Parameter `service_type` (default `volumev3`). Needs `grants: [openstack]`.
use pollen_sdk::discoverer::*;
use serde_json::Value as Json;

struct CinderPools;

impl Discoverer for CinderPools {
    fn name() -> String {
        "volume_pools".into()
    }

    fn discover(_param: Option<String>) -> Result<(), Error> {
        let id_of = |pool: &Json| pool.get("name").and_then(Json::as_str).map(str::to_string);
        discover_cinder_listing("scheduler-stats/get_pools?detail=True", "pools", id_of, resource_of)
    }
}

/// A pool as Ceilometer's pool capacity samples see it.
fn resource_of(name: &str, pool: &Json) -> DiscoveredResource {
    let capabilities =
        pool.get("capabilities").filter(|c| c.is_object()).cloned().unwrap_or_else(|| serde_json::json!({}));
    // `caps.get("pool_name") or None`: an empty or false value is None too.
    let pool_name = capabilities
        .get("pool_name")
        .filter(|n| !matches!(n, Json::Null | Json::Bool(false)) && n.as_str() != Some(""));
    DiscoveredResource {
        id: name.to_string(),
        name: name.to_string(),
        user_id: None,
        project_id: None,
        metadata: vec![
            entry("pool_name", pool_name.map_or(Value::Null, Value::from)),
            entry("provider", name.split('#').next().unwrap_or(name)),
        ],
        data: Some(capabilities.to_string()),
    }
}

export_discoverer!(CinderPools);
