//! Returns one good sample per resource, plus samples that lie: a meter it never
//! described, a resource it was not given, a NaN volume. The host must keep the good
//! ones and refuse the rest.
use pollen_sdk::pollster::*;

struct Liar;

impl Pollster for Liar {
    fn describe() -> Vec<Meter> {
        vec![Meter::gauge("test.liar", "1").discovered_by("local_instances")]
    }

    fn poll(resources: Vec<Resource>) -> Result<Vec<Sample>, Error> {
        let mut samples: Vec<Sample> = (0..resources.len()).map(|i| Sample::new(0, i, 7.0)).collect();
        samples.push(Sample::new(3, 0, 1.0));
        samples.push(Sample::new(0, resources.len() + 5, 1.0));
        samples.push(Sample::new(0, 0, f64::NAN));
        Ok(samples)
    }
}

export_pollster!(Liar);
