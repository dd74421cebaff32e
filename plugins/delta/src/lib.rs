//! Ceilometer's `delta`: the change of a meter between two readings on the same
//! resource, as a delta meter under `target.name` (e.g. `cpu` → `cpu.delta`).
//!
//! The first reading of a series gives nothing; a reading older than the one before
//! it is dropped; with `growth_only: true` a negative change is dropped. Parameters:
//! `growth_only`, `target.name`, `source.map_from.name` with `target.map_to.name`.

use pollen_sdk::transformer::*;
use pollen_sdk::Recent;

/// Series not seen for this many cycles (flushes) are forgotten.
const FORGET_AFTER_CYCLES: u64 = 100;

struct State {
    conversion: Conversion,
    growth_only: bool,
    lookups: Lookups,
    previous: Recent<(f64, i64), (u32, u32)>,
    out_of_order: u64,
    negative: u64,
}

thread_local! {
    static STATE: Configured<State> = const { Configured::new() };
}

struct Delta;

impl Transformer for Delta {
    fn configure() -> Result<(), Error> {
        let mut params = Params::load();
        let growth_only = params.flag("growth_only")?.unwrap_or(false);
        let conversion = Conversion::read(&mut params)?.with_type(MeterType::Delta);
        if conversion.has_scale() {
            return Err(Error::BadConfig("`target.scale` is not a delta parameter; chain a unit_conversion".into()));
        }
        params.finish()?;
        STATE.with(|slot| {
            slot.set(State {
                conversion,
                growth_only,
                lookups: Lookups::default(),
                previous: Recent::new(FORGET_AFTER_CYCLES),
                out_of_order: 0,
                negative: 0,
            })
        });
        Ok(())
    }

    fn transform(batch: Vec<SampleRef>) -> Result<Vec<SampleRef>, Error> {
        with_state(|state| {
            let mut out = Vec::with_capacity(batch.len());
            for sample in batch {
                let key = (sample.meter, sample.resource);
                let Some(&(previous_volume, previous_time)) = state.previous.get(&key) else {
                    state.previous.insert(key, (sample.volume, sample.timestamp));
                    continue;
                };
                if sample.timestamp < previous_time {
                    state.out_of_order += 1;
                    continue;
                }
                state.previous.insert(key, (sample.volume, sample.timestamp));
                let delta = sample.volume - previous_volume;
                if state.growth_only && delta < 0.0 {
                    state.negative += 1;
                    continue;
                }
                if let Some(meter) = state.conversion.output_meter(&state.lookups, sample.meter) {
                    out.push(SampleRef { meter, volume: delta, ..sample });
                }
            }
            Ok(out)
        })
    }

    fn flush(_shutdown: bool) -> Result<Vec<SampleRef>, Error> {
        with_state(|state| {
            if state.out_of_order + state.negative > 0 {
                log::warn(&format!(
                    "dropped {} samples older than the previous one of their series and {} negative changes (growth_only)",
                    state.out_of_order, state.negative
                ));
                (state.out_of_order, state.negative) = (0, 0);
            }
            state.previous.next_call();
            Ok(Vec::new())
        })
    }
}

fn with_state<R>(f: impl FnOnce(&mut State) -> Result<R, Error>) -> Result<R, Error> {
    STATE.with(|slot| slot.with(f))
}

export_transformer!(Delta);
