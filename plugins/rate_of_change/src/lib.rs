//! Ceilometer's `rate_of_change`: the rate of a counter between two readings of the
//! same meter on the same resource, per second, times `target.scale`, under the
//! target's name, unit and type (e.g. `cpu` → `cpu_util` in %).
//!
//! The first reading of a series gives nothing (there is no rate yet); a reading
//! older than the one before it is dropped (and the older kept); a cumulative counter
//! that went down was reset, so its new value is the growth since the reset.
//! Parameters: `target.{name,unit,type,scale,max}`, `source.map_from.{name,unit}` with
//! `target.map_to.{name,unit}`.

use pollen_sdk::transformer::*;
use pollen_sdk::Recent;

/// Series not seen for this many cycles (flushes) are forgotten.
const FORGET_AFTER_CYCLES: u64 = 100;

struct State {
    conversion: Conversion,
    lookups: Lookups,
    /// Per (meter, resource): the previous volume and timestamp (ns).
    previous: Recent<(f64, i64), (u32, u32)>,
    /// Samples older than the previous one of their series, since the last flush.
    out_of_order: u64,
}

thread_local! {
    static STATE: Configured<State> = const { Configured::new() };
}

struct RateOfChange;

impl Transformer for RateOfChange {
    fn configure() -> Result<(), Error> {
        let mut params = Params::load();
        let conversion = Conversion::read(&mut params)?;
        params.finish()?;
        STATE.with(|slot| {
            slot.set(State {
                conversion,
                lookups: Lookups::default(),
                previous: Recent::new(FORGET_AFTER_CYCLES),
                out_of_order: 0,
            })
        });
        Ok(())
    }

    fn transform(batch: Vec<SampleRef>) -> Result<Vec<SampleRef>, Error> {
        with_state(|state| {
            let mut out = Vec::with_capacity(batch.len());
            for sample in batch {
                if let Some(rate) = state.rate(&sample) {
                    out.push(rate);
                }
            }
            Ok(out)
        })
    }

    fn flush(_shutdown: bool) -> Result<Vec<SampleRef>, Error> {
        with_state(|state| {
            let out_of_order = std::mem::take(&mut state.out_of_order);
            if out_of_order > 0 {
                log::warn(&format!("dropped {out_of_order} samples older than the previous one of their series"));
            }
            state.conversion.report();
            state.lookups.forget_resources();
            state.previous.next_call();
            Ok(Vec::new())
        })
    }
}

impl State {
    fn rate(&mut self, sample: &SampleRef) -> Option<SampleRef> {
        let key = (sample.meter, sample.resource);
        let Some(&(previous_volume, previous_time)) = self.previous.get(&key) else {
            self.previous.insert(key, (sample.volume, sample.timestamp));
            return None;
        };
        let elapsed_ns = sample.timestamp - previous_time;
        if elapsed_ns < 0 {
            self.out_of_order += 1;
            return None;
        }
        self.previous.insert(key, (sample.volume, sample.timestamp));
        let meter = self.lookups.meter(sample.meter)?;
        // A cumulative counter that went down was reset: it grew by its new value.
        let growth = if previous_volume <= sample.volume || meter.type_ != MeterType::Cumulative {
            sample.volume - previous_volume
        } else {
            sample.volume
        };
        let rate = if elapsed_ns == 0 { 0.0 } else { growth / (elapsed_ns as f64 / 1e9) };
        let volume = self.conversion.scaled(&self.lookups, sample, rate)?;
        let meter = self.conversion.output_meter(&self.lookups, sample.meter)?;
        Some(SampleRef { meter, volume, ..*sample })
    }
}

fn with_state<R>(f: impl FnOnce(&mut State) -> Result<R, Error>) -> Result<R, Error> {
    STATE.with(|slot| slot.with(f))
}

export_transformer!(RateOfChange);
