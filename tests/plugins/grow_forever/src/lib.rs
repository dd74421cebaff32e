//! Allocates without bound when polled: the host's memory limit must stop it.
use pollen_sdk::pollster::*;

struct GrowForever;

impl Pollster for GrowForever {
    fn describe() -> Vec<Meter> {
        vec![Meter::gauge("test.grow", "B").discovered_by("local_instances")]
    }

    fn poll(_resources: Vec<Resource>) -> Result<Vec<Sample>, Error> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
        }
    }
}

export_pollster!(GrowForever);
