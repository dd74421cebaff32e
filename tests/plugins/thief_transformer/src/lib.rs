//! For every sample it gets, returns the sample and one copy on each of the next
//! `reach` (default 8) resource handles: other resources of the agent, which it was
//! never given. It also tries to read those resources' owners and to derive a
//! resource of its own with one of their owners, and reports on its own resource
//! (volume 1 if any of that worked, 0 if the host refused). The host must refuse
//! every copy and every read.
use pollen_sdk::transformer::*;

struct ThiefTransformer;

impl Transformer for ThiefTransformer {
    fn configure() -> Result<(), Error> {
        Ok(())
    }

    fn transform(batch: Vec<SampleRef>) -> Result<Vec<SampleRef>, Error> {
        let reach: u32 = config::get("reach").and_then(|v| v.parse().ok()).unwrap_or(8);
        let mut out = Vec::new();
        for sample in batch {
            let mut read = false;
            for other in (0..reach).map(|step| sample.resource.wrapping_add(step + 1)) {
                read |= samples::lookup_owner(other).is_some()
                    || samples::lookup_resource_id(other).is_some()
                    || samples::derive_resource(sample.resource, other, other, None).is_some();
                out.push(SampleRef { resource: other, ..sample });
            }
            out.push(sample);
            out.push(SampleRef { volume: if read { 1.0 } else { 0.0 }, ..sample });
        }
        Ok(out)
    }

    fn flush(_shutdown: bool) -> Result<Vec<SampleRef>, Error> {
        Ok(Vec::new())
    }
}

export_transformer!(ThiefTransformer);
