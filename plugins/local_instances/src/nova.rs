//! The resource metadata that Ceilometer's compute pollsters put on every sample,
//! made from what Nova writes into a libvirt domain's XML.
use pollen_sdk::discoverer::*;
use pollen_sdk::nova::{DomainInfo, Flavor};
use sha2::{Digest, Sha224};

fn flavor_json(flavor: &Flavor) -> String {
    serde_json::json!({
        "id": flavor.id, "name": flavor.name, "vcpus": flavor.vcpus, "ram": flavor.ram,
        "disk": flavor.disk, "ephemeral": flavor.ephemeral, "swap": flavor.swap,
    })
    .to_string()
}

/// The resource for one domain, from what its XML says (`info`): Nova's view of it
/// where the XML has Nova metadata, else the libvirt UUID and name alone. `host` is the
/// compute host's name.
pub fn resource_from_domain(domain: &hypervisor::Domain, info: &DomainInfo, host: Option<&str>) -> DiscoveredResource {
    let flavor = &info.flavor;
    let host_id = match (&info.project_id, host) {
        (Some(project), Some(host)) => Some(hex(&Sha224::digest(format!("{project}{host}")))),
        _ => None,
    };
    let (status, vm_state) = states(domain.state);
    let image_json = info.image_id.as_ref().map(|id| serde_json::json!({ "id": id }).to_string());

    let mut metadata = vec![
        entry("display_name", info.display_name.clone().unwrap_or_else(|| domain.name.clone())),
        entry("name", domain.name.as_str()),
        entry("instance_id", domain.uuid.as_str()),
        entry("instance_type", flavor.name.clone()),
        entry("host", host_id),
        entry("instance_host", host),
        entry("flavor", Value::Json(flavor_json(flavor))),
        entry("status", status),
        entry("state", vm_state),
        // Discovered from libvirt, Ceilometer has no task state: `getattr(…, '')`.
        entry("task_state", ""),
        entry("image", image_json.map_or(Value::Null, Value::Json)),
        entry("image_ref", info.image_id.clone()),
        // Images known from libvirt's metadata have no links.
        entry("image_ref_url", Value::Null),
        entry("architecture", info.architecture.clone()),
        entry("os_type", info.os_type.clone()),
        entry("vcpus", flavor.vcpus),
        entry("memory_mb", flavor.ram),
        entry("disk_gb", flavor.disk),
        // As Ceilometer computes it (`disk_gb - ephemeral_gb`).
        entry("root_gb", flavor.disk.zip(flavor.ephemeral).map(|(disk, ephemeral)| disk - ephemeral)),
        entry("ephemeral_gb", flavor.ephemeral),
    ];
    if !info.is_nova {
        metadata.retain(|e| {
            !matches!(e.key.as_str(), "flavor" | "instance_type" | "image" | "image_ref" | "image_ref_url")
        });
    }
    DiscoveredResource {
        id: domain.uuid.clone(),
        name: domain.name.clone(),
        user_id: info.user_id.clone(),
        project_id: info.project_id.clone(),
        metadata,
        data: None,
    }
}

/// Nova's status and vm state for a libvirt state, as Ceilometer guesses them
/// (`LIBVIRT_STATUS` and `LIBVIRT_POWER_STATE` in `compute/virt/libvirt/utils.py`).
fn states(state: hypervisor::DomainState) -> (&'static str, &'static str) {
    use hypervisor::DomainState as S;
    match state {
        S::Nostate => ("building", "pending"),
        S::Running | S::Blocked => ("active", "running"),
        S::Paused => ("paused", "paused"),
        S::Shutdown | S::Shutoff => ("stopped", "shutdown"),
        S::Crashed => ("error", "crashed"),
        S::Pmsuspended => ("suspended", "suspended"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
