//! A pollster whose meter names no discoverer: called once per cycle with no
//! resources, it names its own (`resources.add`). Each call it names `host-1` (project
//! `p1`, metadata `kind: host`) and samples `test.named` = 1 on it, the number of the
//! call on `call-<n>`, a resource over the host's bounds (an id of 2000 bytes: refused;
//! were it taken, a sample of -1 on it would show), and one sample on an index nothing
//! was named at (refused as malformed), and 7 on this host (`this_host()`). Given
//! resources, it fails.
use pollen_sdk::pollster::*;
use std::cell::Cell;

thread_local! {
    static CALLS: Cell<u32> = const { Cell::new(0) };
}

struct Namer;

fn resource(id: &str, project: &str) -> DiscoveredResource {
    DiscoveredResource {
        id: id.into(),
        name: id.into(),
        user_id: None,
        project_id: Some(project.into()),
        metadata: vec![entry("kind", "host")],
        data: None,
    }
}

impl Pollster for Namer {
    fn describe() -> Vec<Meter> {
        vec![Meter::gauge("test.named", "1")]
    }

    fn poll(resources: Vec<Resource>) -> Result<Vec<Sample>, Error> {
        if !resources.is_empty() {
            return Err(Error::Other(format!("called with {} resources; expected none", resources.len())));
        }
        let call = CALLS.with(|c| {
            c.set(c.get() + 1);
            c.get()
        });
        let mut samples = Vec::new();
        let host = name_resource(&resource("host-1", "p1")).ok_or_else(|| Error::Other("host-1 refused".into()))?;
        samples.push(Sample::new(0, host as usize, 1.0));
        let counted =
            name_resource(&resource(&format!("call-{call}"), "p2")).ok_or_else(|| Error::Other("refused".into()))?;
        samples.push(Sample::new(0, counted as usize, f64::from(call)));
        if let Some(index) = name_resource(&resource(&"x".repeat(2000), "p3")) {
            samples.push(Sample::new(0, index as usize, -1.0));
        }
        // This host, as the SDK names it for a host-level meter.
        let this = this_host().ok_or_else(|| Error::Other("this host refused".into()))?;
        samples.push(Sample::new(0, this as usize, 7.0));
        samples.push(Sample::new(0, counted as usize + 10, 99.0));
        Ok(samples)
    }
}

export_pollster!(Namer);
