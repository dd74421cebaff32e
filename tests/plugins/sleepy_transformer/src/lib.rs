//! A transformer that blocks in WASI (`std::thread::sleep` for an hour, again and
//! again) on every batch and at every flush: neither the pipeline nor the agent's
//! shutdown may wait for it longer than its deadline.
use pollen_sdk::transformer::*;
use std::time::Duration;

struct SleepyTransformer;

fn sleep_for_ever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

impl Transformer for SleepyTransformer {
    fn configure() -> Result<(), Error> {
        Ok(())
    }

    fn transform(_batch: Vec<SampleRef>) -> Result<Vec<SampleRef>, Error> {
        sleep_for_ever();
    }

    fn flush(_shutdown: bool) -> Result<Vec<SampleRef>, Error> {
        sleep_for_ever();
    }
}

export_transformer!(SleepyTransformer);
