//! `volume.size`: a volume's size, GiB (gauge), on the `volumes` discoverer's volumes,
//! as Ceilometer's `VolumeSizePollster` (`ceilometer/volume/cinder.py`): resource id
//! the volume's id, its user, project and metadata as discovered.
use pollen_sdk::pollster::*;

struct VolumeSize;

impl Pollster for VolumeSize {
    fn describe() -> Vec<Meter> {
        vec![Meter::gauge("volume.size", "GiB").discovered_by("volumes")]
    }

    fn poll(resources: Vec<Resource>) -> Result<Vec<Sample>, Error> {
        Ok(samples_from_data(0, &resources))
    }
}

export_pollster!(VolumeSize);
