//! `dynamic`: Ceilometer's dynamic pollsters (`pollsters.d/*.yaml`,
//! `ceilometer/polling/dynamic_pollster.py`), run in the sandbox. The host reads and
//! checks the definitions (`agent.pollsters_definitions_dirs`) and makes one instance
//! of this plugin per definition, handing it in the `definition` parameter (JSON);
//! the instance provides that definition's meter.
//!
//! An OpenStack definition is polled on the `endpoint:<endpoint_type>` discoverer's
//! endpoints (its `url_path` joined to each, as Python's `urljoin`), with the
//! agent's token added by the host; another API's once a cycle, at its absolute
//! `url_path`, with the credential the agent holds for it. Pages are followed
//! through `next_sample_url_attribute`, at most `max_pages` (parameter, 1000) and
//! never to a page already read. Each entry names its resource (`resources.add`)
//! with its user, project and metadata; `extra_metadata_fields` adds what child
//! requests return, their responses kept `extra_metadata_fields_cache_seconds`.
//!
//! Needs `grants: [openstack]` (and `http` with `allowed_hosts` for other APIs).
mod clock;
mod enrich;
mod fetch;

use pollen_dynamic::definition::{Api, SampleType, UrlPath, URL_PATH_NAMES};
use pollen_dynamic::extract::{self, Extracted};
use pollen_dynamic::Definition;
use pollen_sdk::pollster::*;
use serde_json::Value as Json;
use std::sync::OnceLock;

/// The definition this instance runs, read once from its `definition` parameter.
fn definition() -> Result<&'static Definition, Error> {
    static DEFINITION: OnceLock<Result<Definition, String>> = OnceLock::new();
    let read = || {
        let text = config::get("definition").ok_or_else(|| {
            "no `definition` parameter: the agent hands each instance its definition (from agent.pollsters_definitions_dirs)".to_string()
        })?;
        let value: Json =
            serde_json::from_str(&text).map_err(|e| format!("the `definition` parameter is not JSON: {e}"))?;
        Definition::parse(&value)
            .map(|(definition, _)| definition)
            .map_err(|problems| problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
    };
    DEFINITION.get_or_init(read).as_ref().map_err(|message| Error::BadConfig(message.clone()))
}

/// What went wrong with some entries of one poll: how many, and the first reason.
#[derive(Default)]
struct Skipped {
    count: usize,
    first: Option<String>,
}

impl Skipped {
    fn note(&mut self, why: impl ToString) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(why.to_string());
        }
    }

    fn log(&self, name: &str) {
        if let Some(first) = &self.first {
            log::warn(&format!("{name}: {} entries gave no sample; the first: {first}", self.count));
        }
    }
}

struct Dynamic;

impl Pollster for Dynamic {
    fn describe() -> Vec<Meter> {
        let definition = match definition() {
            Ok(definition) => definition,
            Err(Error::BadConfig(why) | Error::Host(why) | Error::Other(why)) => {
                log::error(&why);
                return Vec::new();
            }
        };
        let kind = match definition.sample_type {
            SampleType::Gauge => MeterType::Gauge,
            SampleType::Cumulative => MeterType::Cumulative,
            SampleType::Delta => MeterType::Delta,
        };
        let mut meter = Meter::of(&definition.name, kind, &definition.unit);
        meter.default_discoverer = definition.default_discovery();
        vec![meter]
    }

    fn poll(resources: Vec<Resource>) -> Result<Vec<Sample>, Error> {
        let definition = definition()?;
        let bases: Vec<Option<String>> = match definition.api {
            Api::OpenStack { .. } => resources.iter().map(|r| Some(r.id.clone())).collect(),
            Api::External { .. } => vec![None],
        };
        let mut poll =
            Poll { definition, samples: Vec::new(), skipped: Skipped::default(), enricher: enrich::Enricher::new() };
        let mut failures = Vec::new();
        for base in &bases {
            let url = match first_url(definition, base.as_deref()) {
                Ok(url) => url,
                Err(error) => {
                    failures.push(error);
                    continue;
                }
            };
            let fetched = fetch::pages(&fetch::Query::of_definition(definition), &url, base.as_deref(), |entries| {
                for entry in entries {
                    poll.entry(&entry);
                }
            });
            match fetched {
                Ok(()) => {}
                Err(fetch::Stop::Bounded(why)) => log::warn(&format!("{}: {url}: {why}", definition.name)),
                Err(fetch::Stop::Failed(why)) => failures.push(format!("{url}: {why}")),
            }
        }
        poll.skipped.log(&definition.name);
        if !failures.is_empty() && failures.len() == bases.len() {
            return Err(Error::Host(failures.join("; ")));
        }
        for failure in failures {
            log::warn(&format!("{}: {failure}", definition.name));
        }
        Ok(poll.samples)
    }
}

/// The first page's URL: `url_path` on the endpoint (as `urljoin`), or as it is.
fn first_url(definition: &Definition, base: Option<&str>) -> Result<String, String> {
    let path = match &definition.url_path {
        UrlPath::Literal(path) => path.clone(),
        // Ceilometer evaluates a definition's own url_path with nothing in scope, and
        // uses the text where that fails.
        UrlPath::Expression { expr, text } => {
            let nothing = [&Json::Null; URL_PATH_NAMES.len()];
            match expr.eval(&nothing) {
                Ok(Json::String(path)) => path,
                _ => text.clone(),
            }
        }
    };
    match base {
        Some(base) => extract::join(base, &path),
        None => Ok(path),
    }
}

/// One poll's samples, as its entries arrive.
struct Poll<'d> {
    definition: &'d Definition,
    samples: Vec<Sample>,
    skipped: Skipped,
    enricher: enrich::Enricher,
}

impl Poll<'_> {
    fn entry(&mut self, entry: &Json) {
        let mut extracted = match extract::extract(self.definition, entry) {
            Ok(Some(extracted)) => extracted,
            Ok(None) => return,
            Err(error) => return self.skipped.note(error),
        };
        if !self.definition.extra_metadata_fields.is_empty() {
            if let Err(error) = self.enricher.enrich(self.definition, entry, &mut extracted) {
                self.skipped.note(format!("extra metadata: {error}"));
            }
        }
        let Some(resource) = name_resource(&resource_of(&extracted)) else {
            return self
                .skipped
                .note(format!("the agent refused resource `{}` (over its bounds)", extracted.resource_id));
        };
        for (part, volume) in extracted.values {
            let meter = match part {
                None => 0,
                Some(part) => match sub_meter(&part) {
                    Some(meter) => meter,
                    None => {
                        self.skipped
                            .note(format!("the agent refused sub-meter `{part}` (not a word, or over its bound)"));
                        continue;
                    }
                },
            };
            self.samples.push(Sample { meter, resource, volume, resource_id: None, metadata: Vec::new() });
        }
    }
}

/// The index of a multi-metric definition's sub-meter, named once.
fn sub_meter(part: &str) -> Option<u32> {
    thread_local! {
        static NAMED: std::cell::RefCell<std::collections::HashMap<String, u32>> = Default::default();
    }
    if let Some(index) = NAMED.with(|named| named.borrow().get(part).copied()) {
        return Some(index);
    }
    let index = name_sub_meter(0, part)?;
    NAMED.with(|named| named.borrow_mut().insert(part.to_string(), index));
    Some(index)
}

fn resource_of(extracted: &Extracted) -> DiscoveredResource {
    DiscoveredResource {
        id: extracted.resource_id.clone(),
        name: extracted.resource_id.clone(),
        user_id: extracted.user_id.clone(),
        project_id: extracted.project_id.clone(),
        metadata: extracted.metadata.iter().map(|(key, value)| entry(key, value)).collect(),
        data: None,
    }
}

export_pollster!(Dynamic);
