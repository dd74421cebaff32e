//! `{{name}}`: a Pollen transformer. It multiplies every sample's volume by its
//! sink's `factor` parameter (default 1):
//! `transformers: [{name: {{name}}, parameters: {factor: 2}}]`.
use pollen_sdk::transformer::*;
use std::cell::Cell;

thread_local! {
    static FACTOR: Cell<f64> = const { Cell::new(1.0) };
}

struct Plugin;

impl Transformer for Plugin {
    /// Reads the parameters; an error here is what `pollen validate` reports.
    fn configure() -> Result<(), Error> {
        let factor = match config::get("factor") {
            Some(text) => number_param("factor", &text)?,
            None => 1.0,
        };
        FACTOR.set(factor);
        Ok(())
    }

    fn transform(batch: Vec<SampleRef>) -> Result<Vec<SampleRef>, Error> {
        let factor = FACTOR.get();
        Ok(batch.into_iter().map(|sample| SampleRef { volume: sample.volume * factor, ..sample }).collect())
    }

    /// Nothing is held back between batches.
    fn flush(_shutdown: bool) -> Result<Vec<SampleRef>, Error> {
        Ok(Vec::new())
    }
}

export_transformer!(Plugin);
