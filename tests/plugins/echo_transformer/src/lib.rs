//! Multiplies every volume by the `factor` parameter (default 2) under a new meter
//! named `<meter>.scaled`, and on flush emits one sample whose volume is the number
//! of samples seen so far: proof that state survives between calls.
use pollen_sdk::transformer::*;
use std::cell::Cell;

thread_local! {
    static SEEN: Cell<u64> = const { Cell::new(0) };
}

struct Echo;

impl Transformer for Echo {
    fn configure() -> Result<(), Error> {
        Ok(())
    }

    fn transform(batch: Vec<SampleRef>) -> Result<Vec<SampleRef>, Error> {
        let factor: f64 = match config::get("factor") {
            Some(text) => text.parse().map_err(|_| Error::BadConfig(format!("factor `{text}` is not a number")))?,
            None => 2.0,
        };
        SEEN.with(|seen| seen.set(seen.get() + batch.len() as u64));
        Ok(batch
            .into_iter()
            .map(|sample| {
                let meter = samples::lookup_meter(sample.meter).expect("meter handle from the host");
                let scaled = samples::intern_meter(&format!("{}.scaled", meter.name), meter.type_, &meter.unit);
                SampleRef { meter: scaled, volume: sample.volume * factor, ..sample }
            })
            .collect())
    }

    fn flush(_shutdown: bool) -> Result<Vec<SampleRef>, Error> {
        let seen = SEEN.with(Cell::get);
        let meter = samples::intern_meter("test.seen", MeterType::Gauge, "sample");
        Ok(vec![SampleRef { meter, resource: 0, volume: seen as f64, timestamp: 0 }])
    }
}

export_transformer!(Echo);
