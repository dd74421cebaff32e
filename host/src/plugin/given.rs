//! What a transformer instance may put its samples on: the meters and resources of
//! the samples it was given, and those it made through the host (`intern-meter`,
//! `derive-resource`) — never another plugin's resources it was not handed. Kept as
//! bit sets over the registry's handles (dense, never reused), so that checking a
//! batch costs a bit test per sample.

use crate::sample::Sample;

/// A sample's handle that no meter or resource has: what a refused sample is given,
/// so that the chain's check of handles drops and counts it.
pub(crate) const NO_HANDLE: u32 = u32::MAX;

/// The handles one transformer instance was given or made.
#[derive(Default)]
pub(crate) struct Given {
    meters: Bits,
    resources: Bits,
}

impl Given {
    /// Takes in a batch handed to the instance.
    pub fn take(&mut self, batch: &[Sample]) {
        for sample in batch {
            self.meters.insert(sample.meter);
            self.resources.insert(sample.resource);
        }
    }

    /// A meter the instance made.
    pub fn made_meter(&mut self, handle: u32) {
        self.meters.insert(handle);
    }

    /// A resource the instance derived.
    pub fn made_resource(&mut self, handle: u32) {
        self.resources.insert(handle);
    }

    /// Whether the instance may read or use this resource.
    pub fn has_resource(&self, handle: u32) -> bool {
        self.resources.contains(handle)
    }

    /// Whether the instance may read or use this meter.
    pub fn has_meter(&self, handle: u32) -> bool {
        self.meters.contains(handle)
    }

    /// Marks the samples on meters or resources the instance was never given as
    /// refused ([`NO_HANDLE`]); returns how many.
    pub fn refuse_foreign(&self, samples: &mut [Sample]) -> usize {
        let mut refused = 0;
        for sample in samples {
            if !(self.meters.contains(sample.meter) && self.resources.contains(sample.resource)) {
                sample.resource = NO_HANDLE;
                refused += 1;
            }
        }
        refused
    }
}

/// A set of `u32` handles, one bit each.
#[derive(Default)]
struct Bits(Vec<u64>);

impl Bits {
    fn insert(&mut self, handle: u32) {
        if handle == NO_HANDLE {
            return;
        }
        let (word, bit) = ((handle / 64) as usize, handle % 64);
        if word >= self.0.len() {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= 1 << bit;
    }

    fn contains(&self, handle: u32) -> bool {
        let (word, bit) = ((handle / 64) as usize, handle % 64);
        self.0.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_given_or_made_handles_pass() {
        let mut given = Given::default();
        given.take(&[Sample { meter: 3, resource: 70, volume: 1.0, timestamp: 0 }]);
        given.made_meter(5);
        given.made_resource(1000);
        let sample = |meter, resource| Sample { meter, resource, volume: 1.0, timestamp: 0 };
        let mut out = vec![sample(3, 70), sample(5, 1000), sample(3, 71), sample(4, 70), sample(NO_HANDLE, 70)];
        assert_eq!(given.refuse_foreign(&mut out), 3);
        let kept: Vec<_> = out.iter().map(|s| s.resource != NO_HANDLE).collect();
        assert_eq!(kept, [true, true, false, false, false]);
    }
}
