//! A transformer that makes a new meter for every sample it gets (`made.<n>`, counting
//! across calls), or, with `long: true`, meters whose name and unit are a megabyte
//! each. Meters are never forgotten: the host must bound what a plugin makes.
use pollen_sdk::transformer::*;
use std::cell::Cell;

thread_local! {
    static MADE: Cell<u64> = const { Cell::new(0) };
}

struct MeterMaker;

impl Transformer for MeterMaker {
    fn configure() -> Result<(), Error> {
        Ok(())
    }

    fn transform(batch: Vec<SampleRef>) -> Result<Vec<SampleRef>, Error> {
        let long = config::get("long").as_deref() == Some("true");
        Ok(batch
            .into_iter()
            .map(|sample| {
                let n = MADE.with(|made| {
                    made.set(made.get() + 1);
                    made.get()
                });
                let meter = if long {
                    let big = format!("{n}{}", "m".repeat(1 << 20));
                    samples::intern_meter(&big, MeterType::Gauge, &big)
                } else {
                    samples::intern_meter(&format!("made.{n}"), MeterType::Gauge, "1")
                };
                SampleRef { meter, ..sample }
            })
            .collect())
    }

    fn flush(_shutdown: bool) -> Result<Vec<SampleRef>, Error> {
        Ok(Vec::new())
    }
}

export_transformer!(MeterMaker);
