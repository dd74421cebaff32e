//! OpenStack APIs from a pollster or discoverer granted `openstack` (feature
//! `openstack`): the catalog of the agent's Keystone session, and listings followed
//! page by page. The host adds the agent's token to every request to a catalog
//! endpoint; the plugin never sees it (nor the password).
//!
//! ```ignore
//! use pollen_sdk::openstack;
//!
//! let Some(glance) = openstack::endpoint("image")? else {
//!     return Ok(()); // no image service in this cloud
//! };
//! for image in openstack::list(&format!("{glance}/v2/images?limit=1000"), "images", &[])? {
//!     // image["id"], image["size"], ...
//! }
//! ```

use crate::http::{self, HttpError};
use crate::pollster::bindings::pollen::plugin::openstack as host;
use serde_json::Value;
use std::fmt;

/// Cinder as Ceilometer reaches it (`ceilometer/cinder_client.py`).
pub mod cinder {
    /// The microversion Ceilometer asks for (3.41 for snapshots' `user_id`, 3.56 for
    /// backups' owners, 3.63 for volumes' `volume_type_id`).
    pub const MICROVERSION: (&str, &str) = ("openstack-api-version", "volume 3.64");

    /// The catalog type of Cinder: the plugin's `service_type` parameter, else
    /// `volumev3` (Ceilometer's `[service_types] cinder`).
    pub fn service_type() -> String {
        crate::pollster::bindings::pollen::plugin::config::get("service_type").unwrap_or_else(|| "volumev3".into())
    }
}

/// Pages a listing follows at most (a loop or a runaway API stops there).
pub const MAX_PAGES: usize = 10_000;

/// Why a listing failed.
#[derive(Debug, Clone, PartialEq)]
pub enum ListError {
    /// The catalog could not be read (Keystone unreachable or refusing the agent).
    Catalog(String),
    /// A request failed.
    Http(HttpError),
    /// A page is not JSON, or has no list under the collection's key.
    Malformed {
        /// The page's URL.
        url: String,
        /// What is wrong.
        problem: String,
    },
    /// A `next` link pointed to a page already read.
    Loop {
        /// The link.
        url: String,
    },
    /// More than [`MAX_PAGES`] pages.
    TooManyPages {
        /// The URL of the first page.
        url: String,
    },
}

impl fmt::Display for ListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Catalog(message) => write!(f, "cannot read the catalog: {message}"),
            Self::Http(error) => error.fmt(f),
            Self::Malformed { url, problem } => write!(f, "{url}: {problem}"),
            Self::Loop { url } => write!(f, "the listing loops: its next page {url} was already read"),
            Self::TooManyPages { url } => write!(f, "{url}: more than {MAX_PAGES} pages"),
        }
    }
}

impl std::error::Error for ListError {}

impl From<HttpError> for ListError {
    fn from(error: HttpError) -> Self {
        Self::Http(error)
    }
}

/// The URL of the first endpoint of `service_type` in the catalog, on the agent's
/// interface and region (`[service_credentials] interface`, `region_name`), without a
/// trailing slash; `None` if the cloud has no such service.
pub fn endpoint(service_type: &str) -> Result<Option<String>, ListError> {
    let endpoints = host::endpoints(service_type).map_err(|e| ListError::Catalog(error_text(e)))?;
    Ok(endpoints.into_iter().next().map(|e| e.url.trim_end_matches('/').to_string()))
}

/// The URLs of every endpoint of `service_type` in the catalog, on the agent's
/// interface and region, as Ceilometer's `keystone_client.get_urls` gives them.
pub fn endpoints(service_type: &str) -> Result<Vec<String>, ListError> {
    let endpoints = host::endpoints(service_type).map_err(|e| ListError::Catalog(error_text(e)))?;
    Ok(endpoints.into_iter().map(|e| e.url).collect())
}

/// The user id and project id of the agent's token.
pub fn scope() -> Result<(String, String), ListError> {
    host::scope().map_err(|e| ListError::Catalog(error_text(e)))
}

fn error_text(error: crate::pollster::bindings::pollen::plugin::types::Error) -> String {
    use crate::pollster::bindings::pollen::plugin::types::Error;
    match error {
        Error::BadConfig(message) | Error::Host(message) | Error::Other(message) => message,
    }
}

/// Every item of a listing: the list under `collection` (`images`, `volumes`) of each
/// page, from `url` on, following the API's `next` links (Glance's `next`, Cinder's
/// and Nova's `<collection>_links`, Keystone's `links.next`) to the end, at most
/// [`MAX_PAGES`] pages, a link to a page already read ending in [`ListError::Loop`].
/// `headers` go with every request (e.g. `OpenStack-API-Version`).
pub fn list(url: &str, collection: &str, headers: &[(&str, &str)]) -> Result<Vec<Value>, ListError> {
    let mut items = Vec::new();
    let mut seen = Vec::new();
    let mut next = Some(url.to_string());
    while let Some(page_url) = next.take() {
        if seen.len() >= MAX_PAGES {
            return Err(ListError::TooManyPages { url: url.to_string() });
        }
        if seen.contains(&page_url) {
            return Err(ListError::Loop { url: page_url });
        }
        let mut request = http::get(&page_url).header("accept", "application/json");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request.send()?.ok()?;
        let malformed = |problem: String| ListError::Malformed { url: page_url.clone(), problem };
        let mut page: Value =
            serde_json::from_slice(&response.body).map_err(|e| malformed(format!("not JSON ({e})")))?;
        match page.get_mut(collection).map(Value::take) {
            Some(Value::Array(list)) => items.extend(list),
            _ => return Err(malformed(format!("no `{collection}` list"))),
        }
        next = next_link(&page, collection).map(|link| absolute(&page_url, &link));
        seen.push(page_url);
    }
    Ok(items)
}

/// A page's link to the next one, if any.
fn next_link(page: &Value, collection: &str) -> Option<String> {
    if let Some(next) = page.get("next").and_then(Value::as_str) {
        return Some(next.to_string());
    }
    if let Some(links) = page.get(format!("{collection}_links")).and_then(Value::as_array) {
        return links
            .iter()
            .find(|l| l.get("rel").and_then(Value::as_str) == Some("next"))
            .and_then(|l| l.get("href")?.as_str())
            .map(str::to_string);
    }
    page.get("links")?.get("next")?.as_str().map(str::to_string)
}

/// A link made absolute against the page it is on. Glance's are paths from its own
/// root (`/v2/images?marker=…`): as openstacksdk does (`Resource._get_next_link`), the
/// path from the version on is put after the endpoint's own prefix, so that a Glance
/// behind a proxy (`https://cloud.example/image/v2/images`) keeps its `/image`.
fn absolute(page: &str, link: &str) -> String {
    if link.contains("://") {
        return link.to_string();
    }
    let link = if link.starts_with('/') { link.to_string() } else { format!("/{link}") };
    let path_start = page.find("://").map_or(0, |at| at + 3);
    let path_start = page[path_start..].find('/').map_or(page.len(), |at| path_start + at);
    let path_end = page.find(['?', '#']).map_or(page.len(), |at| at.max(path_start));
    let version = link[1..]
        .split(['/', '?'])
        .next()
        .filter(|v| v.strip_prefix('v').is_some_and(|number| number.starts_with(|c: char| c.is_ascii_digit())));
    let prefix_end = version
        .and_then(|version| {
            let segment = format!("/{version}");
            page[path_start..path_end]
                .match_indices(&segment)
                .map(|(at, _)| path_start + at)
                .find(|at| matches!(page[at + segment.len()..path_end].chars().next(), None | Some('/')))
        })
        .unwrap_or(path_start);
    format!("{}{link}", &page[..prefix_end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn next_links_are_found_in_every_api_s_shape() {
        assert_eq!(
            next_link(&json!({"images": [], "next": "/v2/images?marker=a"}), "images").unwrap(),
            "/v2/images?marker=a"
        );
        let cinder = json!({"volumes": [], "volumes_links": [{"rel": "next", "href": "http://c:8776/v3/p/volumes/detail?marker=b"}]});
        assert_eq!(next_link(&cinder, "volumes").unwrap(), "http://c:8776/v3/p/volumes/detail?marker=b");
        assert_eq!(
            next_link(&json!({"projects": [], "links": {"next": "http://k/v3/projects?x"}}), "projects").unwrap(),
            "http://k/v3/projects?x"
        );
        assert!(next_link(&json!({"projects": [], "links": {"next": null}}), "projects").is_none());
        assert!(next_link(&json!({"images": []}), "images").is_none());
    }

    #[test]
    fn glance_s_relative_links_are_made_absolute() {
        assert_eq!(
            absolute("http://g:9292/v2/images?limit=5", "/v2/images?marker=a"),
            "http://g:9292/v2/images?marker=a"
        );
        assert_eq!(absolute("http://g:9292/v2/images", "http://other/x"), "http://other/x");
        // Behind a proxy, the endpoint's prefix stays.
        assert_eq!(
            absolute("https://cloud.example/image/v2/images?limit=5", "/v2/images?marker=a"),
            "https://cloud.example/image/v2/images?marker=a"
        );
        // A prefix that merely starts like the version is not taken for it.
        assert_eq!(absolute("http://g/v22/x/v2/images", "/v2/images?m=1"), "http://g/v22/x/v2/images?m=1");
        // A page without the link's version: the link is from the origin.
        assert_eq!(absolute("http://g:9292/images", "/v2/images?m=1"), "http://g:9292/v2/images?m=1");
        assert_eq!(absolute("http://g:9292", "v2/images"), "http://g:9292/v2/images");
    }
}
