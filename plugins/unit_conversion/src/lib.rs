//! Ceilometer's `unit_conversion`: every sample under the target's name, unit and type,
//! its volume scaled by `target.scale` (a factor, or an expression such as
//! `volume * 1.0 / 1024.0`) and capped by `target.max`. Parameters:
//! `target.{name,unit,type,scale,max}`, `source.map_from.{name,unit}` with
//! `target.map_to.{name,unit}`.

use pollen_sdk::transformer::*;

struct State {
    conversion: Conversion,
    lookups: Lookups,
}

thread_local! {
    static STATE: Configured<State> = const { Configured::new() };
}

struct UnitConversion;

impl Transformer for UnitConversion {
    fn configure() -> Result<(), Error> {
        let mut params = Params::load();
        let conversion = Conversion::read(&mut params)?;
        params.finish()?;
        STATE.with(|slot| slot.set(State { conversion, lookups: Lookups::default() }));
        Ok(())
    }

    fn transform(batch: Vec<SampleRef>) -> Result<Vec<SampleRef>, Error> {
        with_state(|state| {
            let mut out = Vec::with_capacity(batch.len());
            for sample in batch {
                let Some(meter) = state.conversion.output_meter(&state.lookups, sample.meter) else {
                    continue;
                };
                if let Some(volume) = state.conversion.volume(&state.lookups, &sample) {
                    out.push(SampleRef { meter, volume, ..sample });
                }
            }
            Ok(out)
        })
    }

    fn flush(_shutdown: bool) -> Result<Vec<SampleRef>, Error> {
        with_state(|state| {
            state.conversion.report();
            state.lookups.forget_resources();
            Ok(Vec::new())
        })
    }
}

fn with_state<R>(f: impl FnOnce(&mut State) -> Result<R, Error>) -> Result<R, Error> {
    STATE.with(|slot| slot.with(f))
}

export_transformer!(UnitConversion);
