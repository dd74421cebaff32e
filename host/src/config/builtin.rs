//! The built-in plugins' default grants: what each needs, given unless the pipeline
//! writes the plugin's `grants` itself (`grants: []` takes everything away), so that
//! adding a plugin of one's own to their folder means writing one grant. Keyed by
//! the file's name: whoever can write the plugin folder is trusted as the operator.

use super::model::Grant;

/// The built-in plugins that read the hypervisor.
pub const COMPUTE_PLUGINS: &[&str] = &["local_instances", "cpu", "memory", "instance", "disk", "network", "perf"];

/// The built-in central plugins that reach the cloud (the discoverers, and `dynamic`,
/// which runs the dynamic pollsters): the OpenStack catalog.
pub const CENTRAL_DISCOVERERS: &[&str] = &[
    "dynamic",
    "glance_images",
    "cinder_volumes",
    "cinder_snapshots",
    "cinder_backups",
    "cinder_pools",
    "cinder_services",
    "keystone_endpoints",
    "keystone_tenants",
];

/// What the built-in plugin `name` is granted by default; nothing for any other name.
pub fn default_grants(name: &str) -> &'static [Grant] {
    if COMPUTE_PLUGINS.contains(&name) {
        &[Grant::Hypervisor]
    } else if CENTRAL_DISCOVERERS.contains(&name) {
        &[Grant::Openstack]
    } else {
        &[]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_get_what_they_need_and_no_other_name_gets_anything() {
        assert_eq!(default_grants("cpu"), [Grant::Hypervisor]);
        assert_eq!(default_grants("local_instances"), [Grant::Hypervisor]);
        assert_eq!(default_grants("glance_images"), [Grant::Openstack]);
        assert!(default_grants("rate_of_change").is_empty());
        assert!(default_grants("my_meter").is_empty());
    }
}
