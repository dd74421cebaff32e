//! `cpu`: CPU time used by the instance, in nanoseconds (cumulative), as Ceilometer's
//! libvirt inspector reads it: the vCPUs' run plus wait time where libvirt reports it,
//! else the domain's CPU time; the number of vCPUs goes into the sample's metadata as
//! `cpu_number`.
use pollen_sdk::pollster::*;

struct Cpu;

impl Pollster for Cpu {
    fn describe() -> Vec<Meter> {
        vec![Meter::cumulative("cpu", "ns").discovered_by("local_instances")]
    }

    fn poll(resources: Vec<Resource>) -> Result<Vec<Sample>, Error> {
        Ok(each_domain(&resources, |index, stats| {
            let cpu = stats.cpu.as_ref()?;
            let time = cpu.vcpu_time.unwrap_or(cpu.time);
            Some(vec![Sample::new(0, index, time as f64).with_metadata("cpu_number", stats.vcpus)])
        }))
    }
}

export_pollster!(Cpu);
