//! `endpoint:<service_type>`: the catalog's endpoints of a service type, on the agent's
//! interface and region, as Ceilometer's `EndpointDiscovery`
//! (`ceilometer/polling/discovery/endpoint.py`: `keystone_client.get_urls`): one
//! resource per URL (its id, name and `data`), for pollsters that poll a whole service
//! at once. A type the catalog does not have gives no resource, with one warning.
//!
//! Needs `grants: [openstack]` and the type: `discovery: ["endpoint:image"]`.
use pollen_sdk::discoverer::*;
use pollen_sdk::openstack;
use std::cell::{Cell, RefCell};

thread_local! {
    static CHANGES: RefCell<Changes> = RefCell::new(Changes::new());
    static WARNED: Cell<bool> = const { Cell::new(false) };
}

struct KeystoneEndpoints;

impl Discoverer for KeystoneEndpoints {
    fn name() -> String {
        "endpoint".into()
    }

    fn discover(param: Option<String>) -> Result<(), Error> {
        let Some(service_type) = param.filter(|p| !p.is_empty()) else {
            return Err(Error::BadConfig(
                "`endpoint` needs a service type: write `endpoint:<type>`, e.g. `endpoint:image`".into(),
            ));
        };
        let urls = openstack::endpoints(&service_type).map_err(|e| Error::Host(e.to_string()))?;
        if urls.is_empty() && !WARNED.replace(true) {
            log::warn(&format!("no endpoints found for service `{service_type}`"));
        }
        CHANGES.with(|changes| {
            let mut changes = changes.borrow_mut();
            for url in &urls {
                changes.report(url, url.as_bytes(), || DiscoveredResource {
                    id: url.clone(),
                    name: url.clone(),
                    user_id: None,
                    project_id: None,
                    metadata: Vec::new(),
                    data: Some(serde_json::Value::from(url.as_str()).to_string()),
                });
            }
            changes.finish();
        });
        Ok(())
    }
}

export_discoverer!(KeystoneEndpoints);
