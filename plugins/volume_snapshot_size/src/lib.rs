//! `volume.snapshot.size`: a snapshot's size, GiB (gauge), on the `volume_snapshots`
//! discoverer's snapshots, as Ceilometer's `VolumeSnapshotSize`
//! (`ceilometer/volume/cinder.py`): resource id the snapshot's id, its user, project
//! and metadata as discovered.
use pollen_sdk::pollster::*;

struct VolumeSnapshotSize;

impl Pollster for VolumeSnapshotSize {
    fn describe() -> Vec<Meter> {
        vec![Meter::gauge("volume.snapshot.size", "GiB").discovered_by("volume_snapshots")]
    }

    fn poll(resources: Vec<Resource>) -> Result<Vec<Sample>, Error> {
        Ok(samples_from_data(0, &resources))
    }
}

export_pollster!(VolumeSnapshotSize);
