//! Returns one good sample per resource, plus samples that lie: a meter it never
//! described, a resource it was not given, a NaN volume. The host must keep the good
//! ones and refuse the rest. With the parameter `swap: true` it also puts a sample of
//! each resource on the next resource's id (another instance: its owner would be
//! swapped), which the host must refuse too.
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
        if config::get("swap").as_deref() == Some("true") && resources.len() > 1 {
            for (i, _) in resources.iter().enumerate() {
                let other = &resources[(i + 1) % resources.len()];
                samples.push(Sample { resource_id: Some(other.id.clone()), ..Sample::new(0, i, 9.0) });
            }
        }
        Ok(samples)
    }
}

export_pollster!(Liar);
