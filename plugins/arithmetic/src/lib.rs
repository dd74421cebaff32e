//! Ceilometer's `arithmetic`: one new sample per resource from an expression over
//! several of its meters, e.g. `target.expr: "$(memory.usage) / $(memory) * 100"`
//! under `target.name: memory.util`, `unit: "%"`.
//!
//! It keeps the latest sample of each meter the expression names, per resource id,
//! and at the end of each cycle emits the value for every resource that has them
//! all, with the first-named meter's resource, type and unit unless the target says
//! otherwise, and the latest timestamp seen. The samples it reads are consumed (as in
//! Ceilometer): give the raw meters their own sink. A resource whose expression has
//! no value (a missing metadata key, a division by zero) is skipped and logged.

use pollen_sdk::expr::{Expr, Operand};
use pollen_sdk::transformer::*;
use std::collections::HashMap;
use std::rc::Rc;

/// Resources with some but not all meters are forgotten after this many cycles.
const FORGET_AFTER_CYCLES: u64 = 10;

struct Target {
    expr: Expr,
    /// The meters `$(...)` names, the first being the reference.
    meters: Vec<String>,
    name: Option<String>,
    unit: Option<String>,
    type_: Option<MeterType>,
}

struct State {
    target: Target,
    lookups: Lookups,
    /// Per resource id, per meter (index into `target.meters`), the latest sample, and
    /// the cycle it last changed in.
    cache: HashMap<Rc<str>, (Vec<Option<SampleRef>>, u64)>,
    latest_timestamp: i64,
    /// Cycles (flushes) so far.
    cycles: u64,
}

thread_local! {
    static STATE: Configured<State> = const { Configured::new() };
}

struct Arithmetic;

impl Transformer for Arithmetic {
    fn configure() -> Result<(), Error> {
        let mut params = Params::load();
        let Some(expr) = params.expr("target.expr")? else {
            return Err(Error::BadConfig("`target.expr` is required, e.g. `$(memory.usage) / $(memory) * 100`".into()));
        };
        let meters: Vec<String> = expr.meters().into_iter().map(String::from).collect();
        if meters.is_empty() {
            return Err(Error::BadConfig("`target.expr` must name at least one meter as `$(name)`".into()));
        }
        if let Some(Operand::Volume { meter: None } | Operand::Metadata { meter: None, .. }) = expr
            .operands()
            .into_iter()
            .find(|o| matches!(o, Operand::Volume { meter: None } | Operand::Metadata { meter: None, .. }))
        {
            return Err(Error::BadConfig(
                "`target.expr`: say whose value: `$(meter)` or `$(meter).resource_metadata.KEY`, not a bare `volume` or `resource_metadata`".into(),
            ));
        }
        let target = Target {
            meters,
            name: params.text("target.name"),
            unit: params.text("target.unit"),
            type_: params.meter_type("target.type")?,
            expr,
        };
        params.finish()?;
        STATE.with(|slot| {
            slot.set(State {
                target,
                lookups: Lookups::default(),
                cache: HashMap::new(),
                latest_timestamp: 0,
                cycles: 0,
            })
        });
        Ok(())
    }

    fn transform(batch: Vec<SampleRef>) -> Result<Vec<SampleRef>, Error> {
        STATE.with(|slot| {
            slot.with(|state| {
                for sample in batch {
                    state.latest_timestamp = sample.timestamp;
                    let Some(meter) = state.lookups.meter(sample.meter) else { continue };
                    let Some(index) = state.target.meters.iter().position(|m| *m == meter.name) else { continue };
                    let Some(resource_id) = state.lookups.resource_id(sample.resource) else { continue };
                    let count = state.target.meters.len();
                    let (found, changed) = state.cache.entry(resource_id).or_insert_with(|| (vec![None; count], 0));
                    found[index] = Some(sample);
                    *changed = state.cycles;
                }
                Ok(Vec::new())
            })
        })
    }

    fn flush(_shutdown: bool) -> Result<Vec<SampleRef>, Error> {
        STATE.with(|slot| slot.with(State::flush))
    }
}

impl State {
    fn flush(&mut self) -> Result<Vec<SampleRef>, Error> {
        let complete: Vec<Rc<str>> = self
            .cache
            .iter()
            .filter(|(_, (found, _))| found.iter().all(Option::is_some))
            .map(|(id, _)| id.clone())
            .collect();
        let mut out = Vec::with_capacity(complete.len());
        let mut failed = (0, String::new());
        for id in complete {
            let Some((found, _)) = self.cache.remove(&id) else { continue };
            let found: Vec<SampleRef> = found.into_iter().flatten().collect();
            let meters = &self.target.meters;
            let lookups = &self.lookups;
            let value = self.target.expr.eval(&|operand: &Operand| {
                let (meter, key) = match operand {
                    Operand::Volume { meter: Some(meter) } => (meter, None),
                    Operand::Metadata { meter: Some(meter), key } => (meter, Some(key)),
                    _ => return None,
                };
                let sample = &found[meters.iter().position(|m| m == meter)?];
                match key {
                    None => Some(sample.volume),
                    Some(key) => lookups.metadata_number(sample.resource, key),
                }
            });
            let reference = found[0];
            match (value, self.output_meter(reference.meter)) {
                (Ok(volume), Some(meter)) => out.push(SampleRef {
                    meter,
                    volume,
                    resource: reference.resource,
                    timestamp: self.latest_timestamp,
                }),
                (Err(error), _) => failed = (failed.0 + 1, format!("{id}: {error}")),
                (_, None) => {}
            }
        }
        if failed.0 > 0 {
            log::warn(&format!(
                "`{}` has no value for {} resources, e.g. {}",
                self.target.expr_text(),
                failed.0,
                failed.1
            ));
        }
        // A resource that stays incomplete (a meter it never reports) is forgotten.
        let cycles = self.cycles;
        self.cache.retain(|_, (_, changed)| cycles - *changed < FORGET_AFTER_CYCLES);
        self.cycles += 1;
        self.lookups.forget_resources();
        Ok(out)
    }

    fn output_meter(&self, reference: u32) -> Option<u32> {
        let meter = self.lookups.meter(reference)?;
        Some(self.lookups.intern(
            self.target.name.as_deref().unwrap_or(&meter.name),
            self.target.type_.unwrap_or(meter.type_),
            self.target.unit.as_deref().unwrap_or(&meter.unit),
        ))
    }
}

impl Target {
    fn expr_text(&self) -> String {
        format!("expression over {}", self.meters.iter().map(|m| format!("$({m})")).collect::<Vec<_>>().join(", "))
    }
}

export_transformer!(Arithmetic);
