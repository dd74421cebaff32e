//! Reading a listing page by page: each page's entries handed on as it arrives,
//! `next_sample_url_attribute` followed at most `max_pages` pages, never to a page
//! already read (Ceilometer follows links with neither bound).

use pollen_dynamic::definition::{ExtraMetadata, Handler};
use pollen_dynamic::{extract, Attribute, Definition};
use pollen_sdk::http;
use pollen_sdk::pollster::config;
use serde_json::Value as Json;
use std::collections::HashSet;
use std::time::Duration;

/// Pages read from one first URL when the `max_pages` parameter does not say.
const MAX_PAGES: usize = 1000;

/// What a request of a definition (or of one of its extra metadata fields) needs.
pub(crate) struct Query<'a> {
    headers: &'a [(String, String)],
    entries_key: Option<&'a Attribute>,
    next: Option<&'a Attribute>,
    handlers: &'a [Handler],
    timeout: Option<f64>,
}

impl<'a> Query<'a> {
    pub(crate) fn of_definition(definition: &'a Definition) -> Self {
        Self {
            headers: &definition.headers,
            entries_key: definition.response_entries_key.as_ref(),
            next: definition.next_sample_url_attribute.as_ref(),
            handlers: &definition.response_handlers,
            timeout: definition.timeout,
        }
    }

    pub(crate) fn of_extra(extra: &'a ExtraMetadata) -> Self {
        Self {
            headers: &extra.headers,
            entries_key: extra.response_entries_key.as_ref(),
            next: extra.next_sample_url_attribute.as_ref(),
            handlers: &extra.response_handlers,
            timeout: extra.timeout,
        }
    }
}

fn max_pages() -> usize {
    config::get("max_pages").and_then(|text| text.trim().parse().ok()).filter(|n| *n > 0).unwrap_or(MAX_PAGES)
}

/// Why a listing ended early.
pub(crate) enum Stop {
    /// A bound stopped it (a loop, too many pages): what was read stands.
    Bounded(String),
    /// A request or a page failed.
    Failed(String),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bounded(why) | Self::Failed(why) => f.write_str(why),
        }
    }
}

/// Reads `first` and the pages it links to, handing each page's entries to `each`.
/// Relative links are joined to `base` (the endpoint), else to `first`.
pub(crate) fn pages(
    query: &Query<'_>,
    first: &str,
    base: Option<&str>,
    mut each: impl FnMut(Vec<Json>),
) -> Result<(), Stop> {
    let limit = max_pages();
    let mut seen = HashSet::new();
    let mut next = Some(first.to_string());
    while let Some(url) = next.take() {
        if seen.len() >= limit {
            return Err(Stop::Bounded(format!(
                "more than {limit} pages (the `max_pages` parameter of the dynamic plugin); the rest of the listing is not read"
            )));
        }
        if !seen.insert(url.clone()) {
            return Err(Stop::Bounded(format!("the listing loops: its next page {url} was already read")));
        }
        let page = page(query, &url).map_err(Stop::Failed)?;
        let link = extract::next_url(&page, query.next).map_err(|e| Stop::Failed(format!("{url}: {e}")))?;
        next = match link {
            Some(link) if pollen_dynamic::definition::is_absolute(&link) => Some(link),
            Some(link) => Some(extract::join(base.unwrap_or(first), &link).map_err(Stop::Failed)?),
            None => None,
        };
        each(extract::entries(page, query.entries_key).map_err(|e| Stop::Failed(format!("{url}: {e}")))?);
    }
    Ok(())
}

/// One page, read by the query's handlers.
fn page(query: &Query<'_>, url: &str) -> Result<Json, String> {
    let mut request = http::get(url);
    if !query.headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("accept")) {
        request = request.header("accept", "application/json");
    }
    for (name, value) in query.headers {
        request = request.header(name, value);
    }
    if let Some(seconds) = query.timeout {
        request = request.timeout(Duration::from_secs_f64(seconds));
    }
    let response = request.send().and_then(|r| r.ok()).map_err(|e| e.to_string())?;
    if let Some(date) = response.header("date") {
        crate::clock::saw(date);
    }
    extract::parse_body(&response.body, query.handlers).map_err(|e| format!("{url}: {e}"))
}
