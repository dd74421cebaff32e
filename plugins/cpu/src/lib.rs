//! `cpu`: CPU time used by the instance, in nanoseconds (cumulative), with the number
//! of vCPUs as `cpu_number` in the sample's metadata, as Ceilometer reports it.
use pollen_sdk::pollster::*;

struct Cpu;

impl Pollster for Cpu {
    fn describe() -> Vec<Meter> {
        vec![Meter::cumulative("cpu", "ns").discovered_by("local_instances")]
    }

    fn poll(resources: Vec<Resource>) -> Result<Vec<Sample>, Error> {
        Ok(each_domain(&resources, |index, stats| {
            let cpu = stats.cpu.as_ref()?;
            let sample = Sample::new(0, index, cpu.time as f64).with_metadata("cpu_number", stats.vcpus);
            Some(vec![sample])
        }))
    }
}

export_pollster!(Cpu);
