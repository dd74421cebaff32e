//! Ceilometer's `accumulator`: holds samples back until `size` of them are held, then
//! lets them all go at the end of the cycle (and everything held at shutdown). With
//! `size` below 1, samples pass straight through.

use pollen_sdk::transformer::*;

struct State {
    size: usize,
    held: Vec<SampleRef>,
}

thread_local! {
    static STATE: Configured<State> = const { Configured::new() };
}

struct Accumulator;

impl Transformer for Accumulator {
    fn configure() -> Result<(), Error> {
        let mut params = Params::load();
        let size = params.number("size")?.unwrap_or(1.0);
        params.finish()?;
        if size.fract() != 0.0 || size > 1e9 {
            return Err(Error::BadConfig(format!("`size`: {size} is not a whole number of samples")));
        }
        STATE.with(|slot| slot.set(State { size: size.max(0.0) as usize, held: Vec::new() }));
        Ok(())
    }

    fn transform(batch: Vec<SampleRef>) -> Result<Vec<SampleRef>, Error> {
        STATE.with(|slot| {
            slot.with(|state| {
                if state.size == 0 {
                    return Ok(batch);
                }
                state.held.extend(batch);
                Ok(Vec::new())
            })
        })
    }

    fn flush(shutdown: bool) -> Result<Vec<SampleRef>, Error> {
        STATE.with(|slot| {
            slot.with(|state| {
                if shutdown || (state.size > 0 && state.held.len() >= state.size) {
                    return Ok(std::mem::take(&mut state.held));
                }
                Ok(Vec::new())
            })
        })
    }
}

export_transformer!(Accumulator);
