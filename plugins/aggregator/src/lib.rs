//! Ceilometer's `aggregator`: one sample per meter and resource (and per user and
//! project, unless a policy merges those) out of many, emitted when `size` samples were
//! aggregated or `retention_time` seconds passed since the first (by the samples'
//! timestamps), and at shutdown. Cumulative meters keep their latest value, others
//! are summed, gauges then averaged; `target.*` and `source.map_from` convert as
//! `unit_conversion` does.
//!
//! Parameters: `size` (default 1), `retention_time` (seconds), `timestamp`
//! (`first`|`last`), `user_id` and `project_id` (`first`|`last`: merge, keeping that
//! sample's; unset: part of the key), `resource_metadata` (`first`|`last`|`drop`,
//! default `last`), and the conversion's `target.*` / `source.*`.

use pollen_sdk::transformer::bindings::pollen::plugin::samples;
use pollen_sdk::transformer::*;
use std::collections::HashMap;
use std::rc::Rc;

#[derive(Clone, Copy, PartialEq)]
enum Pick {
    First,
    Last,
}

struct Policy {
    size: Option<u64>,
    retention_ns: Option<i64>,
    timestamp: Pick,
    /// `None`: the user is part of the key.
    user: Option<Pick>,
    project: Option<Pick>,
    /// `None`: metadata dropped.
    metadata: Option<Pick>,
}

struct Aggregate {
    meter: u32,
    gauge: bool,
    volume: f64,
    count: u64,
    timestamp: i64,
    first: u32,
    last: u32,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    meter: u32,
    resource_id: Rc<str>,
    user: Option<String>,
    project: Option<String>,
}

struct State {
    policy: Policy,
    conversion: Conversion,
    lookups: Lookups,
    aggregates: HashMap<Key, Aggregate>,
    order: Vec<Key>,
    aggregated: u64,
    initial_timestamp: Option<i64>,
    latest_timestamp: i64,
}

thread_local! {
    static STATE: Configured<State> = const { Configured::new() };
}

struct Aggregator;

impl Transformer for Aggregator {
    fn configure() -> Result<(), Error> {
        let mut params = Params::load();
        let as_pick = |text: Option<String>| text.map(|t| if t == "first" { Pick::First } else { Pick::Last });
        let size = params.number("size")?;
        let retention = params.number("retention_time")?;
        if size.is_some_and(|s| s < 0.0 || s.fract() != 0.0) || retention.is_some_and(|r| r < 0.0) {
            return Err(Error::BadConfig("`size` must be a whole number and `retention_time` positive".into()));
        }
        let mut size = size.filter(|s| *s > 0.0).map(|s| s as u64);
        let retention_ns = retention.filter(|r| *r > 0.0).map(|r| (r * 1e9) as i64);
        if size.is_none() && retention_ns.is_none() {
            size = Some(1);
        }
        let policy = Policy {
            size,
            retention_ns,
            timestamp: as_pick(params.choice("timestamp", &["first", "last"])?).unwrap_or(Pick::First),
            user: as_pick(params.choice("user_id", &["first", "last"])?),
            project: as_pick(params.choice("project_id", &["first", "last"])?),
            metadata: match params.choice("resource_metadata", &["first", "last", "drop"])?.as_deref() {
                Some("drop") => None,
                Some("first") => Some(Pick::First),
                _ => Some(Pick::Last),
            },
        };
        let conversion = Conversion::read(&mut params)?;
        params.finish()?;
        STATE.with(|slot| {
            slot.set(State {
                policy,
                conversion,
                lookups: Lookups::default(),
                aggregates: HashMap::new(),
                order: Vec::new(),
                aggregated: 0,
                initial_timestamp: None,
                latest_timestamp: 0,
            })
        });
        Ok(())
    }

    fn transform(batch: Vec<SampleRef>) -> Result<Vec<SampleRef>, Error> {
        STATE.with(|slot| {
            slot.with(|state| {
                for sample in batch {
                    state.add(sample);
                }
                Ok(Vec::new())
            })
        })
    }

    fn flush(shutdown: bool) -> Result<Vec<SampleRef>, Error> {
        STATE.with(|slot| slot.with(|state| Ok(state.flush(shutdown))))
    }
}

impl State {
    fn add(&mut self, sample: SampleRef) {
        let (Some(meter), Some(resource_id)) =
            (self.lookups.meter(sample.meter), self.lookups.resource_id(sample.resource))
        else {
            return;
        };
        let Some(volume) = self.conversion.volume(&self.lookups, &sample) else { return };
        let owner = if self.policy.user.is_none() || self.policy.project.is_none() {
            self.lookups.owner(sample.resource).unwrap_or_default()
        } else {
            (None, None)
        };
        let key = Key {
            meter: sample.meter,
            resource_id,
            user: if self.policy.user.is_none() { owner.0 } else { None },
            project: if self.policy.project.is_none() { owner.1 } else { None },
        };
        self.initial_timestamp.get_or_insert(sample.timestamp);
        self.latest_timestamp = self.latest_timestamp.max(sample.timestamp);
        self.aggregated += 1;
        match self.aggregates.get_mut(&key) {
            Some(aggregate) => {
                if self.policy.timestamp == Pick::Last {
                    aggregate.timestamp = sample.timestamp;
                }
                if meter.type_ == MeterType::Cumulative {
                    aggregate.volume = volume;
                } else {
                    aggregate.volume += volume;
                }
                aggregate.count += 1;
                aggregate.last = sample.resource;
            }
            None => {
                let Some(output) = self.conversion.output_meter(&self.lookups, sample.meter) else { return };
                let gauge = self.conversion.output_type(meter.type_) == MeterType::Gauge;
                self.order.push(key.clone());
                self.aggregates.insert(
                    key,
                    Aggregate {
                        meter: output,
                        gauge,
                        volume,
                        count: 1,
                        timestamp: sample.timestamp,
                        first: sample.resource,
                        last: sample.resource,
                    },
                );
            }
        }
    }

    fn flush(&mut self, shutdown: bool) -> Vec<SampleRef> {
        self.conversion.report();
        let Some(initial) = self.initial_timestamp else { return Vec::new() };
        let expired = self.policy.retention_ns.is_some_and(|r| self.latest_timestamp - initial >= r);
        let full = self.policy.size.is_some_and(|size| self.aggregated >= size);
        if !(full || expired || shutdown) {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(self.order.len());
        for key in std::mem::take(&mut self.order) {
            let Some(aggregate) = self.aggregates.remove(&key) else { continue };
            let Some(resource) = self.resource(&aggregate) else { continue };
            let volume = if aggregate.gauge { aggregate.volume / aggregate.count as f64 } else { aggregate.volume };
            out.push(SampleRef { meter: aggregate.meter, resource, volume, timestamp: aggregate.timestamp });
        }
        self.aggregates.clear();
        self.aggregated = 0;
        self.initial_timestamp = None;
        self.lookups.forget_resources();
        out
    }

    /// The resource of an aggregate: the first or last sample's, per policy.
    fn resource(&self, aggregate: &Aggregate) -> Option<u32> {
        let choose = |pick: Option<Pick>| match pick {
            Some(Pick::Last) => aggregate.last,
            _ => aggregate.first,
        };
        let (user, project) = (choose(self.policy.user), choose(self.policy.project));
        match self.policy.metadata {
            Some(pick) => {
                let metadata = choose(Some(pick));
                if user == metadata && project == metadata {
                    return Some(metadata);
                }
                samples::derive_resource(aggregate.first, user, project, Some(metadata))
            }
            None => samples::derive_resource(aggregate.first, user, project, None),
        }
    }
}

export_transformer!(Aggregator);
