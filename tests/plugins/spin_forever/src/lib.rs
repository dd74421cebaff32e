//! Describes a meter, then loops forever when polled: the host's CPU deadline must stop it.
use pollen_sdk::pollster::*;

struct SpinForever;

impl Pollster for SpinForever {
    fn describe() -> Vec<Meter> {
        vec![Meter::gauge("test.spin", "1").discovered_by("local_instances")]
    }

    fn poll(_resources: Vec<Resource>) -> Result<Vec<Sample>, Error> {
        let mut counter = 0u64;
        loop {
            counter = std::hint::black_box(counter.wrapping_add(1));
        }
    }
}

export_pollster!(SpinForever);
