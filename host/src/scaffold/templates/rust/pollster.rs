//! `{{name}}`: a Pollen pollster. Its meter is polled on every instance of this host
//! (the built-in `local_instances` discoverer), and reads the hypervisor: the agent
//! grants it with `agent.plugins.{{name}}.grants: [hypervisor]`.
use pollen_sdk::pollster::*;

struct Plugin;

impl Pollster for Plugin {
    /// The meters, in the order samples index them.
    fn describe() -> Vec<Meter> {
        vec![Meter::gauge("{{name}}", "MiB").discovered_by("local_instances")]
    }

    /// One sample per instance: the memory it has now, in MiB.
    fn poll(resources: Vec<Resource>) -> Result<Vec<Sample>, Error> {
        Ok(each_domain(&resources, |index, stats| Some(vec![Sample::new(0, index, stats.memory as f64 / 1024.0)])))
    }
}

export_pollster!(Plugin);
