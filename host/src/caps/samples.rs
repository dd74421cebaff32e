//! `pollen:plugin/samples`: what a transformer reads behind sample handles. It reads
//! and derives only from the handles it was given (or made): another plugin's
//! resources are not its to see, nor their owners to borrow.

use super::bounds::{meter_fits, MAX_MADE_METERS};
use crate::bindings::agent::pollen::plugin::samples::Host;
use crate::bindings::types::{Meter as WitMeter, MeterType as WitMeterType, Value};
use crate::convert;
use crate::plugin::PluginState;
use crate::plugin::NO_HANDLE;
use crate::sample::{Meter, Owner, Resource};
use std::sync::atomic::Ordering;

impl Host for PluginState {
    fn lookup_meter(&mut self, handle: u32) -> Option<WitMeter> {
        if !self.given.has_meter(handle) {
            return None;
        }
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
        if !meter_fits(&name, &unit) {
            return NO_HANDLE;
        }
        let meter = Meter { name, kind: convert::meter_type(type_), unit };
        let registry = &self.context.registry;
        let handle = match registry.meter_handle(&meter) {
            Some(handle) => handle,
            None if self.context.made_meters.fetch_add(1, Ordering::Relaxed) >= MAX_MADE_METERS => return NO_HANDLE,
            None => registry.intern_meter(meter),
        };
        self.given.made_meter(handle);
        handle
    }

    fn lookup_resource_id(&mut self, handle: u32) -> Option<String> {
        self.given_resource(handle).map(|r| r.id.to_string())
    }

    fn lookup_metadata(&mut self, handle: u32, key: String) -> Option<Value> {
        let resource = self.given_resource(handle)?;
        resource.metadata_value(&key).as_ref().map(convert::json_to_value)
    }

    fn lookup_owner(&mut self, handle: u32) -> Option<(Option<String>, Option<String>)> {
        let resource = self.given_resource(handle)?;
        Some((resource.user_id().map(str::to_string), resource.project_id().map(str::to_string)))
    }

    fn derive_resource(
        &mut self,
        id_from: u32,
        user_from: u32,
        project_from: u32,
        metadata_from: Option<u32>,
    ) -> Option<u32> {
        let base = self.given_resource(id_from)?;
        let owner =
            Owner::of(self.given_resource(user_from)?.user_id(), self.given_resource(project_from)?.project_id());
        let (metadata, extra) = match metadata_from {
            Some(handle) => {
                let source = self.given_resource(handle)?;
                (source.metadata.clone(), source.extra.clone())
            }
            None => Default::default(),
        };
        let variant = format!("{id_from}/{user_from}/{project_from}/{metadata_from:?}");
        let derived = Resource { id: base.id.clone(), handed: base.handed.clone(), owner, metadata, extra };
        let registry = &self.context.registry;
        let handle = registry.intern_derived(registry.namespace(id_from)?, derived, &variant);
        self.given.made_resource(handle);
        Some(handle)
    }
}

impl PluginState {
    /// The resource behind a handle, if this instance was given or made it.
    fn given_resource(&self, handle: u32) -> Option<std::sync::Arc<Resource>> {
        self.given.has_resource(handle).then(|| self.context.registry.resource(handle)).flatten()
    }
}
