//! Describes a meter, then loops forever when polled: the host's deadlines must stop
//! it. By default it loops in its own code (`call_timeout` stops it); with the
//! parameter `on: host` it asks the hypervisor for the first resource's XML over and
//! over, so that its time is mostly the host's (`call_wall_timeout` stops it).
use pollen_sdk::pollster::*;

struct SpinForever;

impl Pollster for SpinForever {
    fn describe() -> Vec<Meter> {
        vec![Meter::gauge("test.spin", "1").discovered_by("local_instances")]
    }

    fn poll(resources: Vec<Resource>) -> Result<Vec<Sample>, Error> {
        if config::get("on").as_deref() == Some("host") {
            let uuid = resources.first().map(|r| r.id.clone()).unwrap_or_default();
            loop {
                std::hint::black_box(hypervisor::get_xml(&uuid, 0)?);
            }
        }
        if config::get("on").as_deref() == Some("bogus-stats") {
            let mut id = "0".repeat(64 * 1024);
            for n in 0u64.. {
                id.replace_range(..20, &format!("{n:020}"));
                std::hint::black_box(hypervisor::get_stats(&id).is_err());
            }
        }
        let mut counter = 0u64;
        loop {
            counter = std::hint::black_box(counter.wrapping_add(1));
        }
    }
}

export_pollster!(SpinForever);
