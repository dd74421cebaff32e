//! Panics when polled: the host must log it, throw the instance away and go on.
use pollen_sdk::pollster::*;

struct Trap;

impl Pollster for Trap {
    fn describe() -> Vec<Meter> {
        vec![Meter::gauge("test.trap", "1").discovered_by("local_instances")]
    }

    fn poll(resources: Vec<Resource>) -> Result<Vec<Sample>, Error> {
        panic!("test plugin panics on purpose with {} resources", resources.len());
    }
}

export_pollster!(Trap);
