//! Reading Nova's instance metadata out of a libvirt domain XML, into the resource
//! metadata that Ceilometer's compute pollsters put on every sample.
use pollen_sdk::discoverer::*;
use roxmltree::{Document, Node};
use sha2::{Digest, Sha224};

/// Nova's metadata namespaces, newest first.
const NOVA_NAMESPACES: [&str; 2] =
    ["http://openstack.org/xmlns/libvirt/nova/1.1", "http://openstack.org/xmlns/libvirt/nova/1.0"];

/// The flavor as Nova records it in the domain XML.
#[derive(Default)]
struct Flavor {
    id: Option<String>,
    name: Option<String>,
    vcpus: Option<i64>,
    ram: Option<i64>,
    disk: Option<i64>,
    ephemeral: Option<i64>,
    swap: Option<i64>,
}

impl Flavor {
    fn to_json(&self) -> String {
        serde_json::json!({
            "id": self.id, "name": self.name, "vcpus": self.vcpus, "ram": self.ram,
            "disk": self.disk, "ephemeral": self.ephemeral, "swap": self.swap,
        })
        .to_string()
    }
}

/// The resource for one domain: Nova's view of it where the XML has Nova metadata,
/// else the libvirt UUID and name alone.
pub fn resource_from_domain(domain: &hypervisor::Domain, xml: &str) -> DiscoveredResource {
    let document = Document::parse(xml);
    let root = document.as_ref().ok().map(|d| d.root_element());
    let nova = root.and_then(nova_instance);
    let child = |name: &str| nova.and_then(|n| n.children().find(|c| c.has_tag_name_local(name)));

    let display_name = child("name").and_then(|n| n.text()).map(str::to_string);
    let owner = child("owner");
    let owner_id = |role: &str| {
        owner
            .and_then(|o| o.children().find(|c| c.has_tag_name_local(role)))
            .and_then(|n| n.attribute("uuid"))
            .map(str::to_string)
    };
    let user_id = owner_id("user");
    let project_id = owner_id("project");
    let flavor = child("flavor").map(read_flavor).unwrap_or_default();
    let image_id = child("root")
        .filter(|r| r.attribute("type") == Some("image"))
        .and_then(|r| r.attribute("uuid"))
        .map(str::to_string);
    let os_type = root
        .and_then(|r| {
            r.descendants().find(|n| n.has_tag_name("type") && n.parent().is_some_and(|p| p.has_tag_name("os")))
        })
        .and_then(|n| n.text())
        .map(str::to_string);
    let architecture = root
        .and_then(|r| r.descendants().find(|n| n.has_tag_name("type") && n.attribute("arch").is_some()))
        .and_then(|n| n.attribute("arch"))
        .map(str::to_string);

    let host = config::get("host");
    let host_id = match (&project_id, &host) {
        (Some(project), Some(host)) => Some(hex(&Sha224::digest(format!("{project}{host}")))),
        _ => None,
    };
    let state = if domain.state == hypervisor::DomainState::Running { "active" } else { "stopped" };
    let image_json = image_id.as_ref().map(|id| serde_json::json!({ "id": id }).to_string());

    let mut metadata = vec![
        entry("display_name", display_name.clone().unwrap_or_else(|| domain.name.clone())),
        entry("name", domain.name.as_str()),
        entry("instance_id", domain.uuid.as_str()),
        entry("instance_type", flavor.name.clone()),
        entry("host", host_id),
        entry("instance_host", host),
        entry("flavor", Value::Json(flavor.to_json())),
        entry("status", state),
        entry("state", state),
        entry("task_state", Value::Null),
        entry("image", image_json.map_or(Value::Null, Value::Json)),
        entry("image_ref", image_id),
        entry("architecture", architecture),
        entry("os_type", os_type),
        entry("vcpus", flavor.vcpus),
        entry("memory_mb", flavor.ram),
        entry("disk_gb", flavor.disk),
        entry("root_gb", flavor.disk),
        entry("ephemeral_gb", flavor.ephemeral),
    ];
    if nova.is_none() {
        metadata.retain(|e| !matches!(e.key.as_str(), "flavor" | "instance_type" | "image" | "image_ref"));
    }
    DiscoveredResource { id: domain.uuid.clone(), name: domain.name.clone(), user_id, project_id, metadata }
}

/// The `<nova:instance>` element under `<metadata>`, in the newest namespace present.
fn nova_instance<'a, 'i>(root: Node<'a, 'i>) -> Option<Node<'a, 'i>> {
    let metadata = root.children().find(|c| c.has_tag_name("metadata"))?;
    NOVA_NAMESPACES.iter().find_map(|ns| {
        metadata.children().find(|c| c.tag_name().namespace() == Some(*ns) && c.tag_name().name() == "instance")
    })
}

fn read_flavor(node: Node) -> Flavor {
    let number = |name: &str| {
        node.children().find(|c| c.has_tag_name_local(name)).and_then(|c| c.text()).and_then(|t| t.trim().parse().ok())
    };
    Flavor {
        id: node.attribute("id").map(str::to_string),
        name: node.attribute("name").map(str::to_string),
        vcpus: number("vcpus"),
        ram: number("memory"),
        disk: number("disk"),
        ephemeral: number("ephemeral"),
        swap: number("swap"),
    }
}

trait LocalName {
    fn has_tag_name_local(&self, name: &str) -> bool;
}

impl LocalName for Node<'_, '_> {
    fn has_tag_name_local(&self, name: &str) -> bool {
        self.is_element() && self.tag_name().name() == name
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
