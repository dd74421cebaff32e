//! Hardware performance counters of an instance (gauges), where libvirt's perf events
//! are enabled for the domain (`<perf><event name='cpu_cycles' enabled='yes'/>`).
//! Without a unit, as Ceilometer 27 has them (`instance_stats.py` gives them none).
use pollen_sdk::pollster::*;

struct Perf;

impl Pollster for Perf {
    fn describe() -> Vec<Meter> {
        vec![
            Meter::gauge("perf.cpu.cycles", "").discovered_by("local_instances"),
            Meter::gauge("perf.instructions", "").discovered_by("local_instances"),
            Meter::gauge("perf.cache.references", "").discovered_by("local_instances"),
            Meter::gauge("perf.cache.misses", "").discovered_by("local_instances"),
        ]
    }

    fn poll(resources: Vec<Resource>) -> Result<Vec<Sample>, Error> {
        Ok(each_domain(&resources, |index, stats| {
            let perf = stats.perf.as_ref()?;
            let readings = [perf.cpu_cycles, perf.instructions, perf.cache_references, perf.cache_misses];
            Some(
                readings
                    .into_iter()
                    .enumerate()
                    .filter_map(|(meter, value)| Some(Sample::new(meter as u32, index, value? as f64)))
                    .collect(),
            )
        }))
    }
}

export_pollster!(Perf);
