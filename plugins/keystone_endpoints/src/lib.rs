//! `endpoint:<service_type>`: the catalog's endpoints of a service type, on the agent's
//! interface and region, as Ceilometer's `EndpointDiscovery`
//! (`ceilometer/polling/discovery/endpoint.py`: `keystone_client.get_urls`): one
//! resource per URL (its id, name and `data`), for pollsters that poll a whole service
//! at once. A type the catalog does not have gives no resource, with one warning.
//!
//! Needs `grants: [openstack]` and the type: `discovery: ["endpoint:image"]`.
use pollen_sdk::discoverer::*;
use pollen_sdk::openstack;
use serde_json::Value as Json;
use std::cell::Cell;

thread_local! {
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
        let urls: Vec<Json> = urls.into_iter().map(Json::from).collect();
        let id_of = |url: &Json| url.as_str().map(str::to_string);
        report_items(&urls, id_of, |url, json| DiscoveredResource {
            id: url.to_string(),
            name: url.to_string(),
            user_id: None,
            project_id: None,
            metadata: Vec::new(),
            data: Some(json.to_string()),
        });
        Ok(())
    }
}

export_discoverer!(KeystoneEndpoints);
