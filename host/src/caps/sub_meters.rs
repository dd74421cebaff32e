//! `pollen:plugin/sub-meters`: the meters a multi-metric pollster names as it polls,
//! each the sub-meter of one it described (`prefix.{category}` gives `prefix.get_obj`):
//! same type and unit, a name the host makes (the placeholder replaced by a word), so
//! a pollster cannot publish under another meter's name. Shared by the plugin's
//! instances, kept for its lifetime, at most [`MAX_SUB_METERS`].

use crate::bindings::agent::pollen::plugin::sub_meters as wit;
use crate::plugin::PluginState;
use crate::registry::{MeterHandle, Registry};
use crate::sample::Meter;
use std::collections::HashMap;
use std::sync::Mutex;

/// Sub-meters one pollster may name.
pub const MAX_SUB_METERS: usize = 1000;
/// The longest part a sub-meter's name gets, bytes.
pub const MAX_PART: usize = 64;

/// One sub-meter: the index of its described meter, and its handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubMeter {
    /// Index of the meter in the pollster's `describe` list.
    pub parent: usize,
    /// Its handle in the registry.
    pub handle: MeterHandle,
}

/// A pollster's sub-meters, all its instances together.
#[derive(Debug, Default)]
pub struct SubMeters(Mutex<Table>);

#[derive(Debug, Default)]
struct Table {
    described: Vec<Meter>,
    made: Vec<SubMeter>,
    by_name: HashMap<String, usize>,
}

impl SubMeters {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records what the pollster described (the loader, after `describe`).
    pub fn described(&self, meters: Vec<Meter>) {
        self.table().described = meters;
    }

    /// The sub-meters named so far, in the order of their indices.
    pub fn all(&self) -> Vec<SubMeter> {
        self.table().made.clone()
    }

    /// The index (among the sub-meters) of the sub-meter of `meter` for `part`.
    fn add(&self, registry: &Registry, meter: u32, part: &str) -> Option<usize> {
        let word = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
        if part.is_empty() || part.len() > MAX_PART || !part.chars().all(word) {
            return None;
        }
        let mut table = self.table();
        let parent = table.described.get(meter as usize)?.clone();
        let (prefix, last) = parent.name.rsplit_once('.')?;
        if !(last.starts_with('{') && last.ends_with('}')) {
            return None;
        }
        let name = format!("{prefix}.{part}");
        if let Some(index) = table.by_name.get(&name) {
            return Some(*index);
        }
        if table.made.len() >= MAX_SUB_METERS {
            return None;
        }
        let handle = registry.intern_meter(Meter { name: name.clone(), kind: parent.kind, unit: parent.unit });
        let index = table.made.len();
        table.made.push(SubMeter { parent: meter as usize, handle });
        table.by_name.insert(name, index);
        Some(index)
    }
}

impl wit::Host for PluginState {
    fn add(&mut self, meter: u32, part: String) -> Option<u32> {
        if self.naming.is_none() {
            tracing::warn!(plugin = %self.name(), "a sub-meter named outside `poll` is ignored");
            return None;
        }
        let sub_meters = self.context.sub_meters.clone();
        let described = sub_meters.table().described.len();
        match sub_meters.add(&self.context.registry, meter, &part) {
            Some(index) => u32::try_from(described + index).ok(),
            None => {
                tracing::debug!(plugin = %self.name(), meter, part = %crate::plugin::plugin_text(&part, 64),
                    "sub-meter refused");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::MeterType;

    #[test]
    fn sub_meters_replace_the_placeholder_and_nothing_else() {
        let registry = Registry::default();
        let sub_meters = SubMeters::default();
        let gauge = |name: &str| Meter { name: name.into(), kind: MeterType::Gauge, unit: "request".into() };
        sub_meters.described(vec![gauge("rgw.request.{category}"), gauge("plain")]);
        assert_eq!(sub_meters.add(&registry, 0, "get_obj"), Some(0));
        assert_eq!(sub_meters.add(&registry, 0, "put_obj"), Some(1));
        assert_eq!(sub_meters.add(&registry, 0, "get_obj"), Some(0));
        assert_eq!(sub_meters.add(&registry, 1, "x"), None, "no placeholder");
        assert_eq!(sub_meters.add(&registry, 2, "x"), None, "no such meter");
        assert_eq!(sub_meters.add(&registry, 0, "../cpu"), None);
        assert_eq!(sub_meters.add(&registry, 0, "a.b"), None);
        assert_eq!(sub_meters.add(&registry, 0, &"x".repeat(65)), None);
        let made = sub_meters.all();
        assert_eq!(made.len(), 2);
        assert_eq!(registry.meter(made[0].handle).unwrap().name, "rgw.request.get_obj");
        for index in 2..MAX_SUB_METERS {
            assert!(sub_meters.add(&registry, 0, &format!("c{index}")).is_some());
        }
        assert_eq!(sub_meters.add(&registry, 0, "one_more"), None);
    }
}
