//! What a transformer reads behind sample handles, asked of the host once and kept.

use super::bindings::pollen::plugin::samples;
use super::{Meter, MeterType, SampleRef, Value};
use crate::expr::Operand;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// A resource's user id and project id.
pub type Owner = (Option<String>, Option<String>);

/// Caches of host lookups. Meters never change behind a handle, nor does a
/// resource's id, so those are kept; metadata and owners may change, so
/// [`Lookups::forget_resources`] drops them (call it in `flush`, once per cycle).
#[derive(Default)]
pub struct Lookups {
    meters: RefCell<HashMap<u32, Option<Rc<Meter>>>>,
    interned: RefCell<HashMap<(String, u8, String), u32>>,
    resource_ids: RefCell<HashMap<u32, Option<Rc<str>>>>,
    metadata: RefCell<HashMap<u32, HashMap<String, Option<f64>>>>,
    owners: RefCell<HashMap<u32, Option<Owner>>>,
}

impl Lookups {
    /// The meter behind a handle.
    pub fn meter(&self, handle: u32) -> Option<Rc<Meter>> {
        self.meters.borrow_mut().entry(handle).or_insert_with(|| samples::lookup_meter(handle).map(Rc::new)).clone()
    }

    /// The handle of a meter, interned by the host if new.
    pub fn intern(&self, name: &str, type_: MeterType, unit: &str) -> u32 {
        let key = (name.to_string(), type_ as u8, unit.to_string());
        *self.interned.borrow_mut().entry(key).or_insert_with(|| samples::intern_meter(name, type_, unit))
    }

    /// The resource id behind a resource handle.
    pub fn resource_id(&self, handle: u32) -> Option<Rc<str>> {
        self.resource_ids
            .borrow_mut()
            .entry(handle)
            .or_insert_with(|| samples::lookup_resource_id(handle).map(Rc::from))
            .clone()
    }

    /// One metadata key of a resource, as a number: integers, floats, booleans
    /// (1 or 0) and text that reads as a number; `None` otherwise or when absent.
    pub fn metadata_number(&self, handle: u32, key: &str) -> Option<f64> {
        let mut metadata = self.metadata.borrow_mut();
        let keys = metadata.entry(handle).or_default();
        if let Some(value) = keys.get(key) {
            return *value;
        }
        let value = samples::lookup_metadata(handle, key).and_then(|value| match value {
            Value::Integer(number) => Some(number as f64),
            Value::Float(number) => Some(number),
            Value::Boolean(flag) => Some(if flag { 1.0 } else { 0.0 }),
            Value::Text(text) => text.trim().parse().ok(),
            Value::Null | Value::Json(_) => None,
        });
        keys.insert(key.to_string(), value);
        value
    }

    /// A resource's user and project ids.
    pub fn owner(&self, handle: u32) -> Option<Owner> {
        self.owners.borrow_mut().entry(handle).or_insert_with(|| samples::lookup_owner(handle)).clone()
    }

    /// Forgets metadata and owners (they may have changed); meters and ids are kept.
    pub fn forget_resources(&self) {
        self.metadata.borrow_mut().clear();
        self.owners.borrow_mut().clear();
        let mut ids = self.resource_ids.borrow_mut();
        if ids.len() > 100_000 {
            ids.clear();
        }
    }

    /// The value of an expression operand for one sample: `volume` and
    /// `resource_metadata.KEY` (operands naming another meter have none here).
    pub fn sample_operand(&self, sample: &SampleRef, operand: &Operand) -> Option<f64> {
        match operand {
            Operand::Volume { meter: None } => Some(sample.volume),
            Operand::Metadata { meter: None, key } => self.metadata_number(sample.resource, key),
            _ => None,
        }
    }
}
