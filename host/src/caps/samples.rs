//! `pollen:plugin/samples`: what a transformer reads behind sample handles.

use super::bounds::{MAX_MADE_METERS, MAX_METER_NAME, MAX_UNIT};
use std::sync::atomic::Ordering;

/// The handle given for a meter past the bounds: no meter has it.
const NO_METER: u32 = u32::MAX;
use crate::bindings::agent::pollen::plugin::samples::Host;
use crate::bindings::types::{Meter as WitMeter, MeterType as WitMeterType, Value};
use crate::convert;
use crate::plugin::PluginState;
use crate::sample::{Meter, Owner, Resource};

impl Host for PluginState {
    fn lookup_meter(&mut self, handle: u32) -> Option<WitMeter> {
        let meter = self.context.registry.meter(handle)?;
        Some(WitMeter {
            name: meter.name.clone(),
            type_: convert::wit_meter_type(meter.kind),
            unit: meter.unit.clone(),
            default_discoverer: None,
        })
    }

    /// A meter of the plugin's making. Past the bounds (a name or unit too long, more
    /// than [`MAX_MADE_METERS`] new meters) the handle is one no sample may use: the
    /// samples are refused and counted, the registry does not grow.
    fn intern_meter(&mut self, name: String, type_: WitMeterType, unit: String) -> u32 {
        if name.is_empty() || name.len() > MAX_METER_NAME || unit.len() > MAX_UNIT {
            return NO_METER;
        }
        let meter = Meter { name, kind: convert::meter_type(type_), unit };
        let registry = &self.context.registry;
        if let Some(handle) = registry.meter_handle(&meter) {
            return handle;
        }
        if self.context.made_meters.fetch_add(1, Ordering::Relaxed) >= MAX_MADE_METERS {
            return NO_METER;
        }
        registry.intern_meter(meter)
    }

    fn lookup_resource_id(&mut self, handle: u32) -> Option<String> {
        self.context.registry.resource(handle).map(|r| r.id.to_string())
    }

    fn lookup_metadata(&mut self, handle: u32, key: String) -> Option<Value> {
        let resource = self.context.registry.resource(handle)?;
        resource.metadata_value(&key).as_ref().map(convert::json_to_value)
    }

    fn lookup_owner(&mut self, handle: u32) -> Option<(Option<String>, Option<String>)> {
        let resource = self.context.registry.resource(handle)?;
        Some((resource.user_id().map(str::to_string), resource.project_id().map(str::to_string)))
    }

    fn derive_resource(
        &mut self,
        id_from: u32,
        user_from: u32,
        project_from: u32,
        metadata_from: Option<u32>,
    ) -> Option<u32> {
        let registry = &self.context.registry;
        let base = registry.resource(id_from)?;
        let owner = Owner::of(registry.resource(user_from)?.user_id(), registry.resource(project_from)?.project_id());
        let (metadata, extra) = match metadata_from {
            Some(handle) => {
                let source = registry.resource(handle)?;
                (source.metadata.clone(), source.extra.clone())
            }
            None => Default::default(),
        };
        let variant = format!("{user_from}/{project_from}/{metadata_from:?}");
        let derived = Resource { id: base.id.clone(), name: base.name.clone(), owner, metadata, extra };
        Some(registry.intern_derived(derived, &variant))
    }
}
