//! `volume.service.health`: 1 for a Cinder service that is up, 0 for one that is down
//! (gauge, unit `health`), on the `volume_services` discoverer's services, as
//! Ceilometer's `VolumeServiceHealthPollster` (`ceilometer/volume/cinder.py`,
//! `SERVICE_STATE`). A service in another state has no sample and is logged
//! (Ceilometer's pollster fails on it, losing every service's sample).
use pollen_sdk::pollster::*;

struct VolumeServiceHealth;

impl Pollster for VolumeServiceHealth {
    fn describe() -> Vec<Meter> {
        vec![Meter::gauge("volume.service.health", "health").discovered_by("volume_services")]
    }

    fn poll(resources: Vec<Resource>) -> Result<Vec<Sample>, Error> {
        let mut samples = Vec::new();
        for (index, service) in resources.iter().enumerate() {
            let state = service.data.as_deref().unwrap_or_default().trim_matches('"').to_ascii_lowercase();
            match state.as_str() {
                "up" => samples.push(Sample::new(0, index, 1.0)),
                "down" => samples.push(Sample::new(0, index, 0.0)),
                other => {
                    log::warn(&format!("service {} is in state `{other}`, neither up nor down: no sample", service.id))
                }
            }
        }
        Ok(samples)
    }
}

export_pollster!(VolumeServiceHealth);
