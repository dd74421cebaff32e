//! `memory.usage`: memory used by the instance, in MB (a gauge), as Ceilometer's
//! libvirt inspector computes it: available − usable, or available − unused where the
//! balloon driver does not report `usable`.
use pollen_sdk::pollster::*;

struct MemoryUsage;

impl Pollster for MemoryUsage {
    fn describe() -> Vec<Meter> {
        vec![Meter::gauge("memory.usage", "MB").discovered_by("local_instances")]
    }

    fn poll(resources: Vec<Resource>) -> Result<Vec<Sample>, Error> {
        Ok(each_domain(&resources, |index, stats| {
            let memory = stats.memory_stats.as_ref()?;
            let available = memory.available?;
            let free = memory.usable.or(memory.unused)?;
            let used_mib = available.saturating_sub(free) as f64 / 1024.0;
            Some(vec![Sample::new(0, index, used_mib)])
        }))
    }
}

export_pollster!(MemoryUsage);
