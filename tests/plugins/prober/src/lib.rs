//! Tries what a plugin must not be able to do, and reports each attempt as a sample
//! on the first resource: 1 if it worked, 0 if it was denied. `probe.clock` is the
//! wall clock the plugin sees, in seconds since the epoch.
use pollen_sdk::pollster::*;
use std::time::{SystemTime, UNIX_EPOCH};

struct Prober;

const METERS: [&str; 6] = ["probe.read_root", "probe.read_file", "probe.env", "probe.args", "probe.tcp", "probe.clock"];

impl Pollster for Prober {
    fn describe() -> Vec<Meter> {
        METERS.iter().map(|name| Meter::gauge(name, "1").discovered_by("local_instances")).collect()
    }

    fn poll(resources: Vec<Resource>) -> Result<Vec<Sample>, Error> {
        if resources.is_empty() {
            return Ok(Vec::new());
        }
        let flag = |worked: bool| if worked { 1.0 } else { 0.0 };
        let clock = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(-1.0);
        let probes = [
            flag(std::fs::read_dir("/").is_ok()),
            flag(std::fs::read_to_string("/etc/hostname").is_ok()),
            flag(std::env::vars().next().is_some()),
            flag(std::env::args().next().is_some()),
            flag(std::net::TcpStream::connect("127.0.0.1:5672").is_ok()),
            clock,
        ];
        Ok(probes.iter().enumerate().map(|(meter, volume)| Sample::new(meter as u32, 0, *volume)).collect())
    }
}

export_pollster!(Prober);
