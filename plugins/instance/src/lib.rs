//! Per-instance gauges that hold for stopped instances too, with Ceilometer 27's
//! names and units (`ceilometer/compute/pollsters/instance_stats.py`, `disk.py`):
//!
//! | meter | unit | value |
//! |---|---|---|
//! | `power.state` | (none) | libvirt's state number (1 running, 5 shut off, ...) |
//! | `vcpus` | vcpu | virtual CPUs |
//! | `memory` | MiB | memory assigned (the balloon's actual size) |
//! | `disk.root.size` | GiB | the flavor's disk less its ephemeral disk, as Ceilometer computes it (Nova instances only) |
//! | `disk.ephemeral.size` | GiB | the flavor's ephemeral disk (Nova instances only) |
use pollen_sdk::nova::DomainInfo;
use pollen_sdk::pollster::*;
use std::cell::RefCell;

struct Instance;

const POWER_STATE: u32 = 0;
const VCPUS: u32 = 1;
const MEMORY: u32 = 2;
const ROOT_SIZE: u32 = 3;
const EPHEMERAL_SIZE: u32 = 4;

impl Pollster for Instance {
    fn describe() -> Vec<Meter> {
        vec![
            Meter::gauge("power.state", "").discovered_by("local_instances"),
            Meter::gauge("vcpus", "vcpu").discovered_by("local_instances"),
            Meter::gauge("memory", "MiB").discovered_by("local_instances"),
            Meter::gauge("disk.root.size", "GiB").discovered_by("local_instances"),
            Meter::gauge("disk.ephemeral.size", "GiB").discovered_by("local_instances"),
        ]
    }

    fn poll(resources: Vec<Resource>) -> Result<Vec<Sample>, Error> {
        FLAVORS.with(|flavors| flavors.borrow_mut().next_call());
        Ok(each_domain(&resources, |index, stats| {
            let actual = stats.memory_stats.as_ref().and_then(|m| m.actual).unwrap_or(stats.memory);
            let mut samples = vec![
                Sample::new(POWER_STATE, index, stats.domain.state as u8 as f64),
                Sample::new(VCPUS, index, stats.vcpus.into()),
                Sample::new(MEMORY, index, actual as f64 / 1024.0),
            ];
            match flavor_disks(&stats.domain.uuid) {
                Ok((root, ephemeral)) => {
                    // Ceilometer's `RootSizePollster`: `flavor['disk'] - flavor['ephemeral']`.
                    let root = root.zip(ephemeral).map(|(disk, ephemeral)| disk - ephemeral);
                    samples.extend(root.map(|gb| Sample::new(ROOT_SIZE, index, gb as f64)));
                    samples.extend(ephemeral.map(|gb| Sample::new(EPHEMERAL_SIZE, index, gb as f64)));
                }
                Err(error) => log::debug(&format!("no XML for {}: {error:?}", stats.domain.uuid)),
            }
            Some(samples)
        }))
    }
}

thread_local! {
    /// Each domain's flavor disk sizes: the XML is sent and parsed again only when it
    /// changed.
    static FLAVORS: RefCell<FromXml<FlavorDisks>> = RefCell::new(FromXml::new(1000));
}

/// The flavor's disk and ephemeral disk, GiB.
type FlavorDisks = (Option<i64>, Option<i64>);

fn flavor_disks(uuid: &str) -> Result<FlavorDisks, Error> {
    FLAVORS.with(|flavors| {
        let mut flavors = flavors.borrow_mut();
        let (disks, _) = flavors.get(uuid, |xml| {
            let flavor = DomainInfo::from_xml(xml).flavor;
            (flavor.disk, flavor.ephemeral)
        })?;
        Ok(*disks)
    })
}

export_pollster!(Instance);
