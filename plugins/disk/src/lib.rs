//! Per-disk meters, one resource per disk (`<instance uuid>-<device>`, metadata
//! `disk_name`), as Ceilometer's `disk.device.*` pollsters report them. Counters are
//! read only from running domains; sizes also from stopped ones.
//!
//! | meter | type | unit |
//! |---|---|---|
//! | `disk.device.read.requests`, `disk.device.write.requests` | cumulative | request |
//! | `disk.device.read.bytes`, `disk.device.write.bytes` | cumulative | B |
//! | `disk.device.read.latency`, `disk.device.write.latency` | cumulative | ns (where libvirt reports it) |
//! | `disk.device.capacity`, `disk.device.allocation`, `disk.device.usage` | gauge | B |
use pollen_sdk::pollster::*;

struct Disk;

const METERS: [(&str, MeterType, &str); 9] = [
    ("disk.device.read.requests", MeterType::Cumulative, "request"),
    ("disk.device.write.requests", MeterType::Cumulative, "request"),
    ("disk.device.read.bytes", MeterType::Cumulative, "B"),
    ("disk.device.write.bytes", MeterType::Cumulative, "B"),
    ("disk.device.read.latency", MeterType::Cumulative, "ns"),
    ("disk.device.write.latency", MeterType::Cumulative, "ns"),
    ("disk.device.capacity", MeterType::Gauge, "B"),
    ("disk.device.allocation", MeterType::Gauge, "B"),
    ("disk.device.usage", MeterType::Gauge, "B"),
];

impl Pollster for Disk {
    fn describe() -> Vec<Meter> {
        METERS.iter().map(|(name, kind, unit)| Meter::of(name, *kind, unit).discovered_by("local_instances")).collect()
    }

    fn poll(resources: Vec<Resource>) -> Result<Vec<Sample>, Error> {
        Ok(each_domain(&resources, |index, stats| {
            let running = stats.domain.state == hypervisor::DomainState::Running;
            let mut samples = Vec::new();
            for disk in &stats.blocks {
                let counters = [
                    Some(disk.read_requests),
                    Some(disk.write_requests),
                    Some(disk.read_bytes),
                    Some(disk.write_bytes),
                    disk.read_time,
                    disk.write_time,
                ];
                let sizes = [disk.capacity, disk.allocation, disk.physical];
                let readings = counters.into_iter().map(|c| c.filter(|_| running)).chain(sizes);
                let id = format!("{}-{}", stats.domain.uuid, disk.device);
                let mut first = true;
                for (meter, value) in readings.enumerate() {
                    let Some(value) = value else { continue };
                    let sample = Sample::new(meter as u32, index, value as f64).with_resource_id(id.clone());
                    // The device's metadata goes once; the samples after share it.
                    samples.push(if first { sample.with_metadata("disk_name", disk.device.as_str()) } else { sample });
                    first = false;
                }
            }
            Some(samples)
        }))
    }
}

export_pollster!(Disk);
