//! `pollen:plugin/samples`: what a transformer reads behind sample handles.

use super::MAX_GUEST_STRING;
use crate::bindings::agent::pollen::plugin::samples::Host;
use crate::bindings::types::{Meter as WitMeter, MeterType as WitMeterType, Value};
use crate::convert;
use crate::plugin::PluginState;
use crate::sample::Meter;

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

    fn intern_meter(&mut self, name: String, type_: WitMeterType, unit: String) -> u32 {
        let name: String = name.chars().take(MAX_GUEST_STRING).collect();
        let kind = convert::meter_type(type_);
        self.context.registry.intern_meter(Meter { name, kind, unit })
    }

    fn lookup_resource_id(&mut self, handle: u32) -> Option<String> {
        self.context.registry.resource(handle).map(|r| r.id.clone())
    }

    fn lookup_metadata(&mut self, handle: u32, key: String) -> Option<Value> {
        let resource = self.context.registry.resource(handle)?;
        resource.metadata_value(&key).map(convert::json_to_value)
    }
}
