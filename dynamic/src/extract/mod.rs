//! How a response becomes samples, as Ceilometer's `PollsterSampleGatherer` and
//! sample extractors do (`ceilometer/polling/dynamic_pollster.py`): the response's
//! entries (`retrieve_entries_from_response`), each entry's ids (`prepare_samples`),
//! value (`value_attribute`, `skip_sample_values`, `value_mapping`), metadata
//! (`metadata_fields`, `metadata_mapping`), and the next page's URL.

use crate::definition::{Definition, Handler};
use crate::expr::{python_str, EvalError};
use crate::Attribute;
use serde_json::{Map, Value as Json};
use std::fmt;

/// Why a response or an entry yields nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtractError {
    /// No handler could read the body.
    Unreadable(String),
    /// An attribute could not be read: which, and why.
    Attribute {
        /// The attribute's text.
        attribute: String,
        /// Why.
        error: EvalError,
    },
    /// The value is not a number (and no `value_mapping` made it one).
    NotANumber(String),
    /// A multi-metric definition's list is not a list.
    NotAList(String),
    /// The entry has no resource id.
    NoResourceId,
}

impl fmt::Display for ExtractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreadable(why) => write!(f, "the response cannot be read: {why}"),
            Self::Attribute { attribute, error } => write!(f, "`{attribute}`: {error}"),
            Self::NotANumber(value) => {
                write!(f, "the value {value} is not a number (map it to one with `value_mapping`)")
            }
            Self::NotAList(value) => {
                write!(f, "a multi-metric pollster's value must be a list of objects, not {value}")
            }
            Self::NoResourceId => write!(f, "the entry has no resource id (see `resource_id_attribute`)"),
        }
    }
}

impl std::error::Error for ExtractError {}

fn read(attribute: &Attribute, object: &Json) -> Result<Json, ExtractError> {
    attribute.get(object).map_err(|error| ExtractError::Attribute { attribute: attribute.text().to_string(), error })
}

/// A response body as the handlers read it, tried in order (`ResponseHandlerChain`).
pub fn parse_body(body: &[u8], handlers: &[Handler]) -> Result<Json, ExtractError> {
    let mut failures = Vec::new();
    for handler in handlers {
        match handler {
            Handler::Json => match serde_json::from_slice(body) {
                Ok(value) => return Ok(value),
                Err(error) => failures.push(format!("json: {error}")),
            },
            Handler::Text => {
                let mut entry = Map::new();
                entry.insert("out".into(), Json::String(String::from_utf8_lossy(body).into_owned()));
                return Ok(Json::Array(vec![Json::Object(entry)]));
            }
            Handler::Xml => match std::str::from_utf8(body).map_err(|e| e.to_string()).and_then(crate::xml::to_json) {
                Ok(value) => return Ok(value),
                Err(error) => failures.push(format!("xml: {error}")),
            },
        }
    }
    Err(ExtractError::Unreadable(failures.join("; ")))
}

/// The entries of a response: the response itself if it is a list, else the value
/// of `response_entries_key` (or of its first key), a list or one entry.
pub fn entries(response: Json, entries_key: Option<&Attribute>) -> Result<Vec<Json>, ExtractError> {
    let value = match (response, entries_key) {
        (Json::Array(items), _) => return Ok(items),
        (Json::Object(map), _) if map.is_empty() => return Ok(Vec::new()),
        (response, Some(key)) => match key.plain_keys() {
            // The common case, without copying the response.
            Some([only]) => match response {
                Json::Object(mut map) => map.remove(only).ok_or_else(|| ExtractError::Attribute {
                    attribute: key.text().to_string(),
                    error: EvalError { message: format!("no key '{only}'"), offset: 0 },
                })?,
                other => read(key, &other)?,
            },
            _ => read(key, &response)?,
        },
        (Json::Object(map), None) => map.into_iter().next().map(|(_, v)| v).unwrap_or(Json::Null),
        (other, None) => other,
    };
    Ok(match value {
        Json::Array(items) => items,
        Json::Null => Vec::new(),
        one => vec![one],
    })
}

/// The next page's URL (`next_sample_url_attribute`), if the response has one: a
/// missing key is the last page.
pub fn next_url(response: &Json, attribute: Option<&Attribute>) -> Result<Option<String>, ExtractError> {
    let Some(attribute) = attribute else { return Ok(None) };
    match attribute.get(response) {
        Ok(Json::Null) => Ok(None),
        Ok(Json::String(url)) if url.is_empty() => Ok(None),
        Ok(value) => Ok(Some(python_str(&value))),
        Err(error) if error.message.starts_with("no key") => Ok(None),
        Err(error) => Err(ExtractError::Attribute { attribute: attribute.text().to_string(), error }),
    }
}

/// `path` joined to `base` as Python's `urljoin(base + "/", path)`: an absolute URL
/// as it is, `/path` from the origin, `path` under the base.
pub fn join(base: &str, path: &str) -> Result<String, String> {
    if crate::definition::is_absolute(path) {
        return Ok(path.to_string());
    }
    let base = if base.ends_with('/') { base.to_string() } else { format!("{base}/") };
    let base = url::Url::parse(&base).map_err(|e| format!("`{base}` is not a URL: {e}"))?;
    base.join(path).map(String::from).map_err(|e| format!("`{path}` cannot be joined to `{base}`: {e}"))
}

/// One entry's samples, with what they share.
#[derive(Debug, Clone, PartialEq)]
pub struct Extracted {
    /// The resource id (`resource_id_attribute`).
    pub resource_id: String,
    /// The user (`user_id_attribute`), if the entry has one.
    pub user_id: Option<String>,
    /// The project (`project_id_attribute`), if the entry has one.
    pub project_id: Option<String>,
    /// The metadata: `metadata_fields`, then `metadata_mapping`.
    pub metadata: Map<String, Json>,
    /// The samples: the sub-meter's name part for a multi-metric definition (none for
    /// a single meter), and the volume.
    pub values: Vec<(Option<String>, f64)>,
    /// The value before mapping, as Ceilometer's request sample carries it.
    pub raw_value: Json,
}

/// An id as text: `None` for a missing or null one.
fn id_text(value: Result<Json, ExtractError>) -> Option<String> {
    match value {
        Ok(Json::Null) | Err(_) => None,
        Ok(value) => Some(python_str(&value)),
    }
}

/// A volume: numbers, booleans and numeric strings (`value_mapping` values are often
/// written `"1"`).
fn volume(value: &Json) -> Result<f64, ExtractError> {
    let number = match value {
        Json::Number(number) => number.as_f64(),
        Json::Bool(flag) => Some(if *flag { 1.0 } else { 0.0 }),
        Json::String(text) => text.trim().parse::<f64>().ok(),
        _ => None,
    };
    number.filter(|n| n.is_finite()).ok_or_else(|| ExtractError::NotANumber(python_str(value)))
}

/// Python's `value in collection` over JSON: YAML's numeric and boolean keys
/// (`1:`, `true:`) arrive as text, so a number or a boolean also matches its text.
fn listed(value: &Json, candidate: &Json) -> bool {
    match (value, candidate) {
        (Json::Number(_), Json::String(text)) => python_str(value) == *text,
        (Json::Bool(flag), Json::String(text)) => flag.to_string() == *text,
        _ => crate::expr::equal(value, candidate),
    }
}

/// The samples of one entry; `Ok(None)` for an entry that `skip_sample_values` skips.
pub fn extract(definition: &Definition, entry: &Json) -> Result<Option<Extracted>, ExtractError> {
    let resource_id = id_text(read(&definition.resource_id_attribute, entry)).ok_or(ExtractError::NoResourceId)?;
    let user_id = id_text(read(&definition.user_id_attribute, entry));
    let project_id = id_text(read(&definition.project_id_attribute, entry));
    let (values, raw_value) = match &definition.multi_metric {
        None => {
            let raw = read(&definition.value_attribute, entry)?;
            if definition.skip_sample_values.iter().any(|skip| listed(&raw, skip)) {
                return Ok(None);
            }
            let mapped = if definition.value_mapping.is_empty() {
                raw.clone()
            } else {
                definition
                    .value_mapping
                    .iter()
                    .find(|(key, _)| listed(&raw, key))
                    .map_or_else(|| definition.default_value.clone(), |(_, mapped)| mapped.clone())
            };
            (vec![(None, volume(&mapped)?)], raw)
        }
        Some(multi) => {
            let list = entry.get(&multi.list_key).ok_or_else(|| ExtractError::Attribute {
                attribute: format!("[{}]", multi.list_key),
                error: EvalError { message: format!("no key '{}'", multi.list_key), offset: 0 },
            })?;
            let Json::Array(items) = list else { return Err(ExtractError::NotAList(python_str(list))) };
            let mut values = Vec::with_capacity(items.len());
            for item in items {
                let part = item.get(&multi.name_attribute).map(python_str).ok_or_else(|| ExtractError::Attribute {
                    attribute: multi.name_attribute.clone(),
                    error: EvalError { message: format!("no key '{}'", multi.name_attribute), offset: 0 },
                })?;
                let value = read(&definition.value_attribute, item)?;
                let skipped =
                    |candidate: &Json| definition.skip_sample_values.iter().any(|skip| listed(candidate, skip));
                if skipped(&value) || skipped(&Json::String(part.clone())) {
                    continue;
                }
                values.push((Some(part), volume(&value)?));
            }
            (values, list.clone())
        }
    };
    let mut metadata = Map::new();
    for field in &definition.metadata_fields {
        metadata.insert(field.text().to_string(), read(field, entry)?);
    }
    map_metadata(&mut metadata, &definition.metadata_mapping, definition.preserve_mapped_metadata);
    Ok(Some(Extracted { resource_id, user_id, project_id, metadata, values, raw_value }))
}

/// `metadata_mapping`: each mapped key copied to its new name, and removed unless
/// `preserve_mapped_metadata` (`generate_new_metadata_fields`).
fn map_metadata(metadata: &mut Map<String, Json>, mapping: &[(String, String)], preserve: bool) {
    let keys: Vec<String> = metadata.keys().cloned().collect();
    for key in keys {
        let Some((_, new_key)) = mapping.iter().find(|(from, _)| *from == key) else { continue };
        let Some(value) = metadata.get(&key).cloned() else { continue };
        metadata.insert(new_key.clone(), value);
        if !preserve && *new_key != key {
            metadata.remove(&key);
        }
    }
}

/// The request sample Ceilometer hands `url_path` expressions as `sample`: the entry
/// with its `id`, `user_id`, `project_id`, `value` and `metadata` set.
pub fn request_sample(entry: &Json, extracted: &Extracted) -> Json {
    let mut sample = match entry {
        Json::Object(map) => map.clone(),
        _ => Map::new(),
    };
    let text = |value: &Option<String>| value.clone().map_or(Json::Null, Json::String);
    sample.insert("id".into(), Json::String(extracted.resource_id.clone()));
    sample.insert("user_id".into(), text(&extracted.user_id));
    sample.insert("project_id".into(), text(&extracted.project_id));
    sample.insert("value".into(), extracted.raw_value.clone());
    sample.insert("metadata".into(), Json::Object(extracted.metadata.clone()));
    Json::Object(sample)
}

/// Whether `extra_metadata_fields_skip` skips enriching this request sample: one of
/// its non-empty entries matches it (`skip_sample`).
pub fn enrichment_skipped(skips: &[Json], sample: &Json) -> bool {
    skips.iter().filter(|skip| crate::expr::truthy(skip)).any(|skip| skip_matches(skip, sample))
}

/// Whether a skip entry matches: every key of the skip, recursively, has the same
/// value in the sample (`should_skip_extra_metadata`).
fn skip_matches(skip: &Json, sample: &Json) -> bool {
    match (skip, sample) {
        (Json::Object(skip), Json::Object(sample)) => {
            skip.iter().all(|(key, wanted)| sample.get(key).is_some_and(|found| skip_matches(wanted, found)))
        }
        _ => crate::expr::equal(skip, sample),
    }
}

#[cfg(test)]
mod tests;
