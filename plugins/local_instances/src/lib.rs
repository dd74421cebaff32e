//! `local_instances`: the instances (libvirt domains) running on this host, with the
//! owner and instance metadata that Nova writes into each domain's XML
//! (`http://openstack.org/xmlns/libvirt/nova/1.1`, then `1.0`). Domains without Nova
//! metadata are still reported, with their libvirt UUID and name.
//!
//! Parameters (`params` in the pipeline): `include_stopped: true` also reports domains
//! that are not running.
use pollen_sdk::discoverer::*;
use pollen_sdk::nova::DomainInfo;
use pollen_sdk::Recent;
use std::cell::RefCell;

mod nova;

thread_local! {
    /// What each domain's XML says, with a hash of the XML: it is parsed again only when
    /// it changed. Domains gone for 100 discoveries are forgotten.
    static KNOWN: RefCell<Recent<(u64, DomainInfo)>> = RefCell::new(Recent::new(100));
}

/// What the domain's XML says, from the cache when the XML is unchanged.
fn domain_info(uuid: &str, xml: &str) -> DomainInfo {
    KNOWN.with(|known| known.borrow_mut().derived(uuid, xml, || DomainInfo::from_xml(xml)).clone())
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
            resources.push(nova::resource_from_domain(&domain, &domain_info(&domain.uuid, &xml), host.as_deref()));
        }
        Ok(resources)
    }
}

export_discoverer!(LocalInstances);
