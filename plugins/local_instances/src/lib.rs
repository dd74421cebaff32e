//! `local_instances`: the instances (libvirt domains) running on this host, with the
//! owner and instance metadata that Nova writes into each domain's XML
//! (`http://openstack.org/xmlns/libvirt/nova/1.1`, then `1.0`). Domains without Nova
//! metadata are still reported, with their libvirt UUID and name.
//!
//! Parameters (`params` in the pipeline): `include_stopped: true` also reports domains
//! that are not running.
use pollen_sdk::discoverer::*;
use pollen_sdk::Recent;
use std::cell::RefCell;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

mod nova;

thread_local! {
    /// Each domain's resource, with a hash of what it was made from (XML, state, host,
    /// name): the XML is parsed again only when that changed. Domains gone for 100
    /// discoveries are forgotten.
    static KNOWN: RefCell<Recent<(u64, DiscoveredResource)>> = RefCell::new(Recent::new(100));
}

/// The resource for a domain, from the cache when its inputs are unchanged.
fn resource(domain: &hypervisor::Domain, xml: &str, host: Option<&str>) -> DiscoveredResource {
    let mut hasher = DefaultHasher::new();
    (xml, domain.state == hypervisor::DomainState::Running, host, &domain.name).hash(&mut hasher);
    let hash = hasher.finish();
    KNOWN.with(|known| {
        let mut known = known.borrow_mut();
        if let Some((_, resource)) = known.get(&domain.uuid).filter(|(seen, _)| *seen == hash) {
            return resource.clone();
        }
        let resource = nova::resource_from_domain(domain, xml);
        known.insert(domain.uuid.clone(), (hash, resource.clone()));
        resource
    })
}

struct LocalInstances;

impl Discoverer for LocalInstances {
    fn name() -> String {
        "local_instances".into()
    }

    fn discover() -> Result<Vec<DiscoveredResource>, Error> {
        let include_stopped = config::get("include_stopped").is_some_and(|v| v == "true");
        let host = config::get("host");
        KNOWN.with(|known| known.borrow_mut().next_call());
        let domains = hypervisor::list_domains()?;
        let mut resources = Vec::with_capacity(domains.len());
        for domain in domains {
            if !include_stopped && domain.state != hypervisor::DomainState::Running {
                continue;
            }
            let xml = match hypervisor::get_xml(&domain.uuid) {
                Ok(xml) => xml,
                Err(error) => {
                    log::warn(&format!("domain {} skipped: {error:?}", domain.uuid));
                    continue;
                }
            };
            resources.push(resource(&domain, &xml, host.as_deref()));
        }
        Ok(resources)
    }
}

export_discoverer!(LocalInstances);
