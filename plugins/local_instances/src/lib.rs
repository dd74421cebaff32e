//! `local_instances`: the instances (libvirt domains) running on this host, with the
//! owner and instance metadata that Nova writes into each domain's XML
//! (`http://openstack.org/xmlns/libvirt/nova/1.1`, then `1.0`). Domains without Nova
//! metadata are still reported, with their libvirt UUID and name.
//!
//! Parameters (`params` in the pipeline): `include_stopped: true` also reports domains
//! that are not running.
use pollen_sdk::discoverer::*;
use pollen_sdk::nova::DomainInfo;
use pollen_sdk::{key_of, Recent};
use std::cell::RefCell;

mod nova;

thread_local! {
    /// The stamp of each domain's XML as last read, by `key_of` its UUID: the host
    /// sends the XML again only when it changed (a key that meets another's only costs a
    /// read). Domains gone for 100 discoveries are forgotten.
    static STAMPS: RefCell<Recent<u64, u64>> = RefCell::new(Recent::new(100));
    /// What was reported of each domain in the previous discovery.
    static REPORTS: RefCell<Reports> = RefCell::new(Reports::new());
}

struct LocalInstances;

impl Discoverer for LocalInstances {
    fn name() -> String {
        "local_instances".into()
    }

    fn discover(_param: Option<String>) -> Result<(), Error> {
        let include_stopped = config::get("include_stopped").is_some_and(|v| v == "true");
        let host = config::get("host");
        let domains = hypervisor::list_domains()?;
        STAMPS.with(|stamps| {
            REPORTS.with(|reports| {
                let (mut stamps, mut reports) = (stamps.borrow_mut(), reports.borrow_mut());
                stamps.next_call();
                reports.next_call();
                for domain in domains {
                    if !include_stopped && domain.state != hypervisor::DomainState::Running {
                        continue;
                    }
                    let key = key_of(&domain.uuid);
                    let known = stamps.get(&key).copied().unwrap_or(0);
                    let mut current = match hypervisor::get_xml(&domain.uuid, known) {
                        Ok(current) => current,
                        Err(error) => {
                            log::warn(&format!("domain {} skipped: {error:?}", domain.uuid));
                            continue;
                        }
                    };
                    let stamp = current.as_ref().map_or(known, |c| c.stamp);
                    stamps.insert(key, stamp);
                    // The resource is made from the XML, the state and the host's name.
                    let source = (stamp, domain.state as u8, host.as_deref());
                    reports.report(&domain.uuid, &source, || {
                        // The XML did not change but the state did: read it again.
                        let xml = match current.take() {
                            Some(current) => current.xml,
                            None => hypervisor::get_xml(&domain.uuid, 0).ok()??.xml,
                        };
                        Some(nova::resource_from_domain(&domain, &DomainInfo::from_xml(&xml), host.as_deref()))
                    });
                }
                Ok(())
            })
        })
    }
}

export_discoverer!(LocalInstances);
