//! `{{name}}`: a Pollen discoverer. It reports this host's running domains as
//! resources (id: the domain's UUID), for the pollsters of the sources that name it
//! (`discovery: [{{name}}]`); the agent grants it the hypervisor with
//! `agent.plugins.{{name}}.grants: [hypervisor]`.
use pollen_sdk::discoverer::*;
use std::cell::RefCell;

thread_local! {
    /// What the previous call reported: unchanged resources are reported by id alone.
    static REPORTS: RefCell<Reports> = RefCell::new(Reports::new());
}

struct Plugin;

impl Discoverer for Plugin {
    fn name() -> String {
        "{{name}}".into()
    }

    fn discover(_param: Option<String>) -> Result<(), Error> {
        let domains = hypervisor::list_domains()?;
        REPORTS.with_borrow_mut(|reports| {
            reports.next_call();
            for domain in domains.iter().filter(|d| d.state == hypervisor::DomainState::Running) {
                reports.report(&domain.uuid, &domain.name, || {
                    Some(DiscoveredResource {
                        id: domain.uuid.clone(),
                        name: domain.name.clone(),
                        user_id: None,
                        project_id: None,
                        metadata: vec![entry("display_name", domain.name.as_str())],
                        data: None,
                    })
                });
            }
        });
        Ok(())
    }
}

export_discoverer!(Plugin);
