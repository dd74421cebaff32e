//! `volume.backup.size`: a backup's size, GiB (gauge), on the `volume_backups`
//! discoverer's backups, as Ceilometer's `VolumeBackupSize`
//! (`ceilometer/volume/cinder.py`): resource id the backup's id, its user, project and
//! metadata as discovered.
use pollen_sdk::pollster::*;

struct VolumeBackupSize;

impl Pollster for VolumeBackupSize {
    fn describe() -> Vec<Meter> {
        vec![Meter::gauge("volume.backup.size", "GiB").discovered_by("volume_backups")]
    }

    fn poll(resources: Vec<Resource>) -> Result<Vec<Sample>, Error> {
        Ok(samples_from_data(0, &resources))
    }
}

export_pollster!(VolumeBackupSize);
