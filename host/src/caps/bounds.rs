//! The most the host takes from a plugin, beyond its memory limit: what a plugin hands
//! over is kept by the host (resources until they are evicted, meters for the agent's
//! life), so it must be bounded where it is handed over. Past a bound the item is
//! refused and counted, and the plugin told nothing it could use to probe further.

use crate::bindings::types::{DiscoveredResource, MetadataEntry, Value};

/// Longest resource id a discoverer or pollster may give, bytes.
pub const MAX_ID: usize = 1024;
/// Longest resource name, user or project id, bytes.
pub const MAX_NAME: usize = 1024;
/// Longest meter name a pollster may describe or a transformer make, bytes.
pub const MAX_METER_NAME: usize = 255;
/// Longest unit of such a meter, bytes.
pub const MAX_UNIT: usize = 63;
/// Most metadata one resource may carry: its keys and values' text, bytes.
pub const MAX_METADATA: usize = 64 * 1024;
/// Most resources one `discover` call may report (a large hypervisor has thousands).
pub const MAX_DISCOVERED: usize = 50_000;
/// Most distinct meters one plugin may make (a transformer's `intern-meter`), over
/// the agent's life: meters are never forgotten.
pub const MAX_MADE_METERS: usize = 1024;

/// Whether a meter's name (not empty) and unit are within the bounds.
pub fn meter_fits(name: &str, unit: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_METER_NAME && unit.len() <= MAX_UNIT
}

/// What is wrong with a discovered resource, if anything.
pub fn discovered_fault(resource: &DiscoveredResource) -> Option<String> {
    if resource.id.is_empty() || resource.id.len() > MAX_ID {
        return Some(format!("an id of {} bytes (1 to {MAX_ID})", resource.id.len()));
    }
    let names = [Some(&resource.name), resource.user_id.as_ref(), resource.project_id.as_ref()];
    if let Some(long) = names.into_iter().flatten().find(|text| text.len() > MAX_NAME) {
        return Some(format!("a name, user or project of {} bytes (at most {MAX_NAME})", long.len()));
    }
    let metadata = metadata_size(&resource.metadata) + resource.data.as_ref().map_or(0, String::len);
    (metadata > MAX_METADATA).then(|| format!("{metadata} bytes of metadata (at most {MAX_METADATA})"))
}

/// The bytes of text in metadata entries: keys, and values as written.
pub fn metadata_size(entries: &[MetadataEntry]) -> usize {
    entries
        .iter()
        .map(|entry| {
            entry.key.len()
                + match &entry.value {
                    Value::Text(text) | Value::Json(text) => text.len(),
                    _ => 8,
                }
        })
        .sum()
}
