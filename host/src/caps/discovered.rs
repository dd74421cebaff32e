//! `pollen:plugin/discovered`: where a discoverer reports its resources, one at a
//! time, during its `discover` call. Each is interned in the registry as it arrives,
//! in the plugin's own namespace: what another discoverer reports under the same id
//! is another resource, and cannot change this one's owner or metadata.

use super::bounds;
use crate::bindings::agent::pollen::plugin::discovered as wit;
use crate::bindings::types::Discovery;
use crate::convert;
use crate::plugin::PluginState;

impl wit::Host for PluginState {
    fn report(&mut self, item: Discovery) {
        let registry = self.context.registry.clone();
        let Some(call) = self.discovering.as_mut() else {
            tracing::warn!(plugin = %self.name(), "a resource reported outside `discover` is ignored");
            return;
        };
        if call.found.resources.len() >= bounds::MAX_DISCOVERED {
            return over_bounds(&mut call.found, || {
                format!("more than {} resources in one call", bounds::MAX_DISCOVERED)
            });
        }
        let (handle, id) = match item {
            Discovery::Changed(resource) => {
                if let Some(fault) = bounds::discovered_fault(&resource) {
                    return over_bounds(&mut call.found, || fault);
                }
                call.found.changed += 1;
                let id = resource.id.clone();
                let resource = convert::resource_from_discovered(resource);
                (registry.intern_in(self.context.namespace, resource), id)
            }
            Discovery::Unchanged(id) => {
                match registry.resource_handle(self.context.namespace, &id).filter(|h| call.previous.contains(h)) {
                    Some(handle) => (handle, id),
                    None => return call.found.refused.push(id),
                }
            }
        };
        // Evicted in the meantime: as good as unknown.
        match registry.touch(handle) {
            Some(resource) => {
                call.found.resources.push((handle, resource));
                self.reported.insert(handle);
            }
            None => call.found.refused.push(id),
        }
    }
}

/// Counts a resource left out for being over the host's bounds.
fn over_bounds(found: &mut crate::plugin::Discovered, fault: impl FnOnce() -> String) {
    found.over_bounds += 1;
    if found.first_over_bounds.is_none() {
        found.first_over_bounds = Some(fault());
    }
}
