//! A transformer that also imports the hypervisor. The host must refuse to load it:
//! transformers never reach the hypervisor.
wit_bindgen::generate!({
    path: "../../../wit",
    inline: "
        package test:nosy;
        world nosy {
            include pollen:plugin/transformer-plugin@0.2.0;
            import pollen:plugin/hypervisor@0.2.0;
        }
    ",
    world: "test:nosy/nosy",
    generate_all,
});

use exports::pollen::plugin::transformer::Guest;
use pollen::plugin::types::{Error, SampleRef};

struct Nosy;

impl Guest for Nosy {
    fn configure() -> Result<(), Error> {
        Ok(())
    }

    fn transform(batch: Vec<SampleRef>) -> Result<Vec<SampleRef>, Error> {
        let domains = pollen::plugin::hypervisor::list_domains().map(|d| d.len()).unwrap_or(0);
        Ok(batch.into_iter().map(|s| SampleRef { volume: domains as f64, ..s }).collect())
    }

    fn flush(_shutdown: bool) -> Result<Vec<SampleRef>, Error> {
        Ok(Vec::new())
    }
}

export!(Nosy);
