//! Reading what Nova writes into a libvirt domain's XML: the `<nova:instance>` element
//! under `<metadata>` (namespace `http://openstack.org/xmlns/libvirt/nova/1.1`, then
//! `1.0`) with the instance's name, owner, flavor and image, and the guest's OS type and
//! architecture. For discoverers and pollsters that read `hypervisor.get-xml`
//! (feature `nova`).
use roxmltree::{Document, Node};

/// Nova's metadata namespaces, newest first.
pub const NOVA_NAMESPACES: [&str; 2] =
    ["http://openstack.org/xmlns/libvirt/nova/1.1", "http://openstack.org/xmlns/libvirt/nova/1.0"];

/// The flavor as Nova records it (`<nova:flavor>`); sizes in MiB (memory) and GiB
/// (disks).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Flavor {
    /// Flavor id.
    pub id: Option<String>,
    /// Flavor name, e.g. `m1.small`.
    pub name: Option<String>,
    /// vCPUs.
    pub vcpus: Option<i64>,
    /// Memory, MiB.
    pub ram: Option<i64>,
    /// Root disk, GiB.
    pub disk: Option<i64>,
    /// Ephemeral disk, GiB.
    pub ephemeral: Option<i64>,
    /// Swap, MiB.
    pub swap: Option<i64>,
}

/// What a domain's XML says of the instance; the `nova:*` fields are `None` for a
/// domain without Nova metadata.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DomainInfo {
    /// Whether the XML carries Nova metadata.
    pub is_nova: bool,
    /// The instance's display name (`<nova:name>`).
    pub display_name: Option<String>,
    /// The owner's user id.
    pub user_id: Option<String>,
    /// The owner's project id.
    pub project_id: Option<String>,
    /// The flavor.
    pub flavor: Flavor,
    /// The image the root disk was made from.
    pub image_id: Option<String>,
    /// `<os><type>`, e.g. `hvm`.
    pub os_type: Option<String>,
    /// The guest architecture, e.g. `x86_64`.
    pub architecture: Option<String>,
}

impl DomainInfo {
    /// Reads a domain XML; unreadable XML gives the empty default.
    pub fn from_xml(xml: &str) -> Self {
        let Ok(document) = Document::parse(xml) else { return Self::default() };
        let root = document.root_element();
        let nova = nova_instance(root);
        let child = |name: &str| nova.and_then(|n| n.children().find(|c| has_local_name(c, name)));
        let owner_id = |role: &str| {
            child("owner")
                .and_then(|o| o.children().find(|c| has_local_name(c, role)))
                .and_then(|n| n.attribute("uuid"))
                .map(str::to_string)
        };
        let os_type = root
            .descendants()
            .find(|n| n.has_tag_name("type") && n.parent().is_some_and(|p| p.has_tag_name("os")))
            .and_then(|n| n.text())
            .map(str::to_string);
        let architecture = root
            .descendants()
            .find(|n| n.has_tag_name("type") && n.attribute("arch").is_some())
            .and_then(|n| n.attribute("arch"))
            .map(str::to_string);
        Self {
            is_nova: nova.is_some(),
            display_name: child("name").and_then(|n| n.text()).map(str::to_string),
            user_id: owner_id("user"),
            project_id: owner_id("project"),
            flavor: child("flavor").map(read_flavor).unwrap_or_default(),
            image_id: child("root")
                .filter(|r| r.attribute("type") == Some("image"))
                .and_then(|r| r.attribute("uuid"))
                .map(str::to_string),
            os_type,
            architecture,
        }
    }
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
        node.children().find(|c| has_local_name(c, name)).and_then(|c| c.text()).and_then(|t| t.trim().parse().ok())
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

fn has_local_name(node: &Node, name: &str) -> bool {
    node.is_element() && node.tag_name().name() == name
}
