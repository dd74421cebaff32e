//! `extra_metadata_fields`: child requests whose values become metadata keys of each
//! sample (`PollsterDefinitions.retrieve_extra_metadata`), their responses kept
//! `extra_metadata_fields_cache_seconds` (by URL, as Ceilometer's response cache).

use crate::fetch;
use pollen_dynamic::definition::{Definition, UrlPath};
use pollen_dynamic::expr::python_str;
use pollen_dynamic::extract::{self, Extracted};
use pollen_sdk::openstack;
use serde_json::{Map, Value as Json};
use std::cell::RefCell;
use std::collections::HashMap;

/// Responses kept at most (the expired ones are dropped first).
const MAX_CACHED: usize = 10_000;

/// A cached response's entries, and until when (seconds since the epoch).
struct Cached {
    entries: Vec<Json>,
    until: u64,
}

thread_local! {
    static CACHE: RefCell<HashMap<String, Cached>> = RefCell::new(HashMap::new());
}

/// One poll's enrichment: the endpoints it looked up, and the responses it read
/// (kept for the poll whatever the cache's clock).
pub(crate) struct Enricher {
    endpoints: HashMap<String, Option<String>>,
    read: HashMap<String, Vec<Json>>,
}

impl Enricher {
    pub(crate) fn new() -> Self {
        Self { endpoints: HashMap::new(), read: HashMap::new() }
    }

    fn endpoint(&mut self, service_type: &str) -> Result<String, String> {
        if !self.endpoints.contains_key(service_type) {
            let found = openstack::endpoint(service_type).map_err(|e| e.to_string())?;
            self.endpoints.insert(service_type.to_string(), found);
        }
        self.endpoints[service_type].clone().ok_or_else(|| format!("the catalog has no `{service_type}` endpoint"))
    }

    /// Adds the extra metadata of one entry's sample to its metadata.
    pub(crate) fn enrich(
        &mut self,
        definition: &Definition,
        entry: &Json,
        extracted: &mut Extracted,
    ) -> Result<(), String> {
        let sample = extract::request_sample(entry, extracted);
        let mut captured = Map::new();
        let mut by_name = Map::new();
        for extra in &definition.extra_metadata_fields {
            if extract::enrichment_skipped(&extra.skip, &sample) {
                continue;
            }
            let endpoint = self.endpoint(&extra.endpoint_type)?;
            let path = match &extra.url_path {
                UrlPath::Literal(path) => path.clone(),
                UrlPath::Expression { expr, text } => {
                    let scope = [&sample, &Json::Object(captured.clone()), &Json::Object(by_name.clone())];
                    match expr.eval(&scope).map_err(|e| format!("{}: url_path `{text}`: {e}", extra.name))? {
                        Json::String(path) => path,
                        other => python_str(&other),
                    }
                }
            };
            let url = extract::join(&endpoint, &path)?;
            let entries = match self.read.get(&url) {
                Some(entries) if extra.cache_seconds > 0 => entries.clone(),
                _ => {
                    let entries = cached(&url, extra.cache_seconds, || {
                        let mut entries = Vec::new();
                        fetch::pages(&fetch::Query::of_extra(extra), &url, Some(&endpoint), |page| {
                            entries.extend(page)
                        })
                        .map_err(|stop| stop.to_string())?;
                        Ok(entries)
                    })?;
                    if extra.cache_seconds > 0 {
                        self.read.insert(url.clone(), entries.clone());
                    }
                    entries
                }
            };
            for child in &entries {
                let value =
                    extra.value.get(child).map_err(|e| format!("{}: `{}`: {e}", extra.name, extra.value.text()))?;
                let mut metadata = Map::new();
                for field in &extra.metadata_fields {
                    let found = field.get(child).map_err(|e| format!("{}: `{}`: {e}", extra.name, field.text()))?;
                    metadata.insert(field.text().to_string(), found);
                }
                captured.insert(extra.name.clone(), value.clone());
                for (key, found) in &metadata {
                    // A null does not override what an earlier field captured.
                    if !(found.is_null() && captured.contains_key(key)) {
                        captured.insert(key.clone(), found.clone());
                    }
                }
                let mut named = Map::new();
                named.insert("value".into(), value);
                named.insert("metadata".into(), Json::Object(metadata));
                by_name.insert(extra.name.clone(), Json::Object(named));
            }
        }
        for (key, value) in captured {
            // What metadata_fields and metadata_mapping gave wins, as in Ceilometer.
            extracted.metadata.entry(key).or_insert(value);
        }
        Ok(())
    }
}

/// The entries of `url`, from the cache while they are fresh, else read by `read`
/// (and kept `seconds`; 0 keeps nothing; without a clock, nothing past the poll).
fn cached(url: &str, seconds: u64, read: impl FnOnce() -> Result<Vec<Json>, String>) -> Result<Vec<Json>, String> {
    let Some(now) = crate::clock::now().filter(|_| seconds > 0) else {
        return read();
    };
    let hit = CACHE.with(|cache| cache.borrow().get(url).filter(|c| c.until > now).map(|c| c.entries.clone()));
    if let Some(entries) = hit {
        return Ok(entries);
    }
    let entries = read()?;
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, c| c.until > now);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(url.to_string(), Cached { entries: entries.clone(), until: now.saturating_add(seconds) });
    });
    Ok(entries)
}
