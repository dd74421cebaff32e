//! `postgresql://user@host/db`, `sqlite:///path.db` and `database://` (the embedded
//! default, a SQLite file in the state directory): samples stored (see
//! [`crate::store`]), from the collector's sinks or the agent's alike.
//!
//! A batch counts as sent once its transaction commits. While the database cannot be
//! reached, the batch waits and is tried again with backoff, for [`MAX_WAIT`] at
//! most (an input waiting on the batch keeps its messages meanwhile). A sample the
//! database refuses is found by halves: the rest of its batch is stored, and it is
//! dropped, counted and logged.

use super::{Batch, Delivery, PublishError, Publisher};
use crate::registry::{MeterHandle, ResourceHandle};
use crate::sample::EncodedResource;
use crate::store::{MeterKey, ResourceVersion, Row, Store, StoreError, StoreUrl, WriteBatch};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a batch waits for an unreachable database before it is given up on.
pub const MAX_WAIT: Duration = Duration::from_secs(300);

/// A publisher into a database.
pub struct DatabasePublisher {
    target: StoreUrl,
    store: Option<Store>,
    /// Since when the database has been unreachable, if it is.
    unreachable_since: Option<Instant>,
    /// Samples refused so far (logged at 1, 2, 4, …).
    refused: u64,
    /// Whether a batch was given up on, the database unreachable, since
    /// [`Publisher::take_unreachable`] last asked.
    gave_up: bool,
}

impl DatabasePublisher {
    /// Opens the database now; one that is unreachable is tried again with the first
    /// batch, but a schema this Pollen cannot write to stops here.
    pub async fn open(target: StoreUrl) -> Result<Self, PublishError> {
        let store = match Store::open(&target).await {
            Ok(store) => {
                tracing::info!(publisher = %target.shown(), "database opened");
                Some(store)
            }
            Err(StoreError::Unavailable(why)) => {
                tracing::warn!(publisher = %target.shown(), "database unreachable; tried again with the first batch: {why}");
                None
            }
            Err(error) => return Err(PublishError::Url { url: target.shown(), message: error.to_string() }),
        };
        Ok(Self { target, store, unreachable_since: None, refused: 0, gave_up: false })
    }

    /// Writes `part`, waiting (with backoff) while the database is unreachable.
    async fn write_waiting(&mut self, part: Arc<WriteBatch>) -> Result<crate::store::Written, StoreError> {
        let mut backoff = super::reconnect_backoff();
        let started = Instant::now();
        loop {
            let attempt = match &mut self.store {
                Some(store) => store.write(part.clone()).await,
                None => match Store::open(&self.target).await {
                    Ok(store) => self.store.insert(store).write(part.clone()).await,
                    Err(error) => Err(error),
                },
            };
            match attempt {
                Ok(written) => {
                    if let Some(since) = self.unreachable_since.take() {
                        tracing::info!(publisher = %self.target.shown(), after = ?since.elapsed(), "database reachable again");
                    }
                    return Ok(written);
                }
                Err(StoreError::Unavailable(why)) => {
                    if self.unreachable_since.is_none() {
                        self.unreachable_since = Some(Instant::now());
                        tracing::warn!(publisher = %self.target.shown(), "database unreachable; the batch waits: {why}");
                    }
                    if started.elapsed() >= MAX_WAIT {
                        return Err(StoreError::Unavailable(why));
                    }
                    tokio::time::sleep(backoff.next().unwrap_or(Duration::from_secs(30))).await;
                }
                Err(other) => return Err(other),
            }
        }
    }
}

impl Publisher for DatabasePublisher {
    async fn publish(&mut self, batch: &Batch) -> Result<Delivery, PublishError> {
        let whole = Arc::new(write_batch(batch));
        let mut delivery = Delivery::default();
        let mut duplicates = 0;
        // The rows still to store, as ranges: the whole batch, then halves of a refused one.
        let mut parts = Vec::with_capacity(8);
        parts.push(0..whole.rows.len());
        while let Some(range) = parts.pop() {
            let part =
                if range.len() == whole.rows.len() { whole.clone() } else { Arc::new(whole.part(range.clone())) };
            match self.write_waiting(part.clone()).await {
                Ok(written) => {
                    delivery.sent += written.stored + written.duplicates;
                    duplicates += written.duplicates;
                }
                Err(StoreError::Refused(_)) if range.len() > 1 => {
                    let middle = range.start + range.len() / 2;
                    parts.push(middle..range.end);
                    parts.push(range.start..middle);
                }
                Err(StoreError::Refused(why)) => {
                    delivery.dropped += 1;
                    self.refused += 1;
                    if self.refused.is_power_of_two() {
                        let row = &part.rows[0];
                        let meter = &part.meters[row.meter as usize].name;
                        let resource = &part.resources[row.resource as usize].resource_id;
                        tracing::error!(publisher = %self.target.shown(), %meter, %resource, refused = self.refused, "sample dropped: {why}");
                    }
                }
                Err(error) => {
                    self.gave_up |= matches!(error, StoreError::Unavailable(_));
                    let left: usize = range.len() + parts.iter().map(|r| r.len()).sum::<usize>();
                    delivery.dropped += left as u64;
                    tracing::error!(publisher = %self.target.shown(), samples = left, "samples not stored: {error}");
                    break;
                }
            }
        }
        if duplicates > 0 {
            tracing::debug!(publisher = %self.target.shown(), duplicates, "samples already stored (a redelivery) skipped");
        }
        Ok(delivery)
    }

    fn take_unreachable(&mut self) -> bool {
        std::mem::take(&mut self.gave_up)
    }

    async fn flush(&mut self) -> Result<Delivery, PublishError> {
        Ok(Delivery::default())
    }
}

/// A batch as rows, its meters and resource versions once each; the message ids it
/// arrived with, or fresh ones for polled samples.
fn write_batch(batch: &Batch) -> WriteBatch {
    let mut out = WriteBatch::default();
    let mut meters: HashMap<MeterHandle, Option<u32>> = HashMap::new();
    let mut resources: HashMap<ResourceHandle, Option<u32>> = HashMap::new();
    let message_ids = batch.received.as_ref().map(|r| &r.message_ids);
    for (index, sample) in batch.samples.iter().enumerate() {
        let meter = *meters.entry(sample.meter).or_insert_with(|| {
            let meter = batch.registry.meter(sample.meter)?;
            out.meters.push(MeterKey { name: meter.name.clone(), kind: meter.kind.as_str(), unit: meter.unit.clone() });
            Some(out.meters.len() as u32 - 1)
        });
        let resource = *resources.entry(sample.resource).or_insert_with(|| {
            let encoded = EncodedResource::new(batch.registry.resource(sample.resource)?);
            let resource = &encoded.resource;
            out.resources.push(ResourceVersion::new(
                &resource.id,
                resource.user_id(),
                resource.project_id(),
                &batch.source,
                encoded.metadata().get(),
            ));
            Some(out.resources.len() as u32 - 1)
        });
        let (Some(meter), Some(resource)) = (meter, resource) else { continue };
        let message_id = match message_ids.and_then(|ids| ids.get(index)) {
            Some(id) => id.clone(),
            None => uuid::Uuid::new_v4().hyphenated().to_string().into(),
        };
        out.rows.push(Row {
            message_id,
            meter,
            resource,
            volume: sample.volume,
            timestamp_us: sample.timestamp.div_euclid(1000),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::Received;
    use crate::registry::Registry;
    use crate::sample::{Meter, MeterType, Owner, Resource, Sample};

    #[test]
    fn a_batch_lists_each_meter_and_resource_once_and_keeps_the_message_ids() {
        let registry = Arc::new(Registry::new());
        let cpu = registry.intern_meter(Meter { name: "cpu".into(), kind: MeterType::Cumulative, unit: "ns".into() });
        let vm = registry.intern_resource(Resource { owner: Owner::of(Some("u"), Some("p")), ..Resource::bare("vm") });
        let samples: Vec<Sample> = (0..3)
            .map(|i| Sample { meter: cpu, resource: vm, volume: i as f64, timestamp: 1_000_000_123_456 + i })
            .collect();
        let mut batch = Batch::new(samples, registry, Arc::from("openstack"));
        let polled = write_batch(&batch);
        assert_eq!((polled.meters.len(), polled.resources.len(), polled.rows.len()), (1, 1, 3));
        assert_eq!(polled.resources[0].user_id.as_deref(), Some("u"));
        assert_eq!(polled.rows[0].timestamp_us, 1_000_000_123);
        assert_ne!(polled.rows[0].message_id, polled.rows[1].message_id, "fresh ids for polled samples");
        batch.received = Some(Received { message_ids: vec!["a".into(), "b".into(), "c".into()], receipt: None });
        let received = write_batch(&batch);
        let ids: Vec<&str> = received.rows.iter().map(|r| &*r.message_id).collect();
        assert_eq!(ids, ["a", "b", "c"]);
    }
}
