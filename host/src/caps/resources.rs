//! `pollen:plugin/resources`: resources a pollster names itself during its `poll`
//! call (an API pollster's, found in its responses). Each is checked against the same
//! bounds as a discoverer's and interned in the pollster's own namespace, so a
//! pollster cannot change another plugin's resources; its samples refer to it by the
//! index this returns.

use super::bounds;
use crate::bindings::agent::pollen::plugin::resources as wit;
use crate::bindings::types::DiscoveredResource;
use crate::convert;
use crate::plugin::PluginState;

impl wit::Host for PluginState {
    fn add(&mut self, resource: DiscoveredResource) -> Option<u32> {
        let registry = self.context.registry.clone();
        let namespace = self.context.namespace;
        let Some(call) = self.naming.as_mut() else {
            tracing::warn!(plugin = %self.name(), "a resource named outside `poll` is ignored");
            return None;
        };
        if call.named.len() >= bounds::MAX_DISCOVERED {
            call.refused += 1;
            return None;
        }
        if let Some(fault) = bounds::discovered_fault(&resource) {
            call.refused += 1;
            call.first_refused.get_or_insert(fault);
            return None;
        }
        let handle = registry.intern_in(namespace, convert::resource_from_discovered(resource));
        let resource = registry.touch(handle)?;
        call.named.push((handle, resource));
        u32::try_from(call.given + call.named.len() - 1).ok()
    }
}
