//! Memory meters of an instance, in MiB (Ceilometer 27's unit), from the balloon driver's statistics, as
//! Ceilometer's libvirt inspector computes them:
//!
//! | meter | type | value |
//! |---|---|---|
//! | `memory.available` | gauge | available |
//! | `memory.usage` | gauge | available − usable, or available − unused |
//! | `memory.resident` | gauge | RSS of the hypervisor process |
//! | `memory.swap.in` | cumulative | swapped in |
//! | `memory.swap.out` | cumulative | swapped out |
//!
//! A meter whose statistic the guest does not report (no balloon driver) is left out.
use pollen_sdk::pollster::*;

struct Memory;

const AVAILABLE: u32 = 0;
const USAGE: u32 = 1;
const RESIDENT: u32 = 2;
const SWAP_IN: u32 = 3;
const SWAP_OUT: u32 = 4;

impl Pollster for Memory {
    fn describe() -> Vec<Meter> {
        vec![
            Meter::gauge("memory.available", "MiB").discovered_by("local_instances"),
            Meter::gauge("memory.usage", "MiB").discovered_by("local_instances"),
            Meter::gauge("memory.resident", "MiB").discovered_by("local_instances"),
            Meter::cumulative("memory.swap.in", "MiB").discovered_by("local_instances"),
            Meter::cumulative("memory.swap.out", "MiB").discovered_by("local_instances"),
        ]
    }

    fn poll(resources: Vec<Resource>) -> Result<Vec<Sample>, Error> {
        Ok(each_domain(&resources, |index, stats| {
            let memory = stats.memory_stats.as_ref()?;
            let mib = |kib: u64| kib as f64 / 1024.0;
            let used = memory.available.zip(memory.usable.or(memory.unused)).map(|(a, free)| a.saturating_sub(free));
            let readings = [
                (AVAILABLE, memory.available),
                (USAGE, used),
                (RESIDENT, memory.rss),
                (SWAP_IN, memory.swap_in),
                (SWAP_OUT, memory.swap_out),
            ];
            Some(readings.into_iter().filter_map(|(meter, kib)| Some(Sample::new(meter, index, mib(kib?)))).collect())
        }))
    }
}

export_pollster!(Memory);
