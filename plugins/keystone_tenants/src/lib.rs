//! `tenant`: the projects of every Keystone domain, as Ceilometer's `TenantDiscovery`
//! (`ceilometer/polling/discovery/tenant.py`: `list_domains`, then `list_projects` of
//! each), for pollsters whose work is per project: resource id and project the
//! project's id, name its name, metadata `name`, `domain_id`, `enabled`, and the
//! project as JSON in `data`. Parameter `ignore_disabled_projects: true` (Ceilometer's
//! `[polling] ignore_disabled_projects`) lists only enabled domains and projects.
//!
//! Needs `grants: [openstack]`.
use pollen_sdk::discoverer::*;
use pollen_sdk::openstack;
use serde_json::Value as Json;

struct KeystoneTenants;

impl Discoverer for KeystoneTenants {
    fn name() -> String {
        "tenant".into()
    }

    fn discover(_param: Option<String>) -> Result<(), Error> {
        let host_error = |e: openstack::ListError| Error::Host(e.to_string());
        let Some(identity) = openstack::endpoint("identity").map_err(host_error)? else {
            return Err(Error::Host("the catalog has no identity service".into()));
        };
        let v3 = if identity.ends_with("/v3") { identity } else { format!("{identity}/v3") };
        let enabled =
            if config::get("ignore_disabled_projects").is_some_and(|v| v == "true") { "&enabled=true" } else { "" };
        let domains = openstack::list(&format!("{v3}/domains?{}", enabled.trim_start_matches('&')), "domains", &[])
            .map_err(host_error)?;
        let mut projects = Vec::new();
        for domain in &domains {
            let Some(domain_id) = domain["id"].as_str() else { continue };
            projects.extend(
                openstack::list(&format!("{v3}/projects?domain_id={domain_id}{enabled}"), "projects", &[])
                    .map_err(host_error)?,
            );
        }
        let id_of = |project: &Json| project["id"].as_str().map(str::to_string);
        report_items(&projects, id_of, resource_of);
        Ok(())
    }
}

fn resource_of(id: &str, project: &Json) -> DiscoveredResource {
    let field = |key: &str| project.get(key).map_or(Value::Null, Value::from);
    DiscoveredResource {
        id: id.to_string(),
        name: project["name"].as_str().unwrap_or(id).to_string(),
        user_id: None,
        project_id: Some(id.to_string()),
        metadata: vec![
            entry("name", field("name")),
            entry("domain_id", field("domain_id")),
            entry("enabled", field("enabled")),
        ],
        data: Some(project.to_string()),
    }
}

export_discoverer!(KeystoneTenants);
