//! `image.size`: an image's size, bytes (gauge), on the `images` discoverer's images,
//! as Ceilometer's `ImageSizePollster` (`ceilometer/image/glance.py`): resource id the
//! image's id, its owner and metadata as discovered. An image without a size yet
//! (`queued`) has no sample: Ceilometer's would carry a null volume, which no
//! downstream stores.
use pollen_sdk::pollster::*;

struct ImageSize;

impl Pollster for ImageSize {
    fn describe() -> Vec<Meter> {
        vec![Meter::gauge("image.size", "B").discovered_by("images")]
    }

    fn poll(resources: Vec<Resource>) -> Result<Vec<Sample>, Error> {
        Ok(samples_from_data(0, &resources))
    }
}

export_pollster!(ImageSize);
