//! Fetches its `url` parameter once per `poll` (through `pollen_sdk::http`, so over
//! `wasi:http`) and reports, on the first resource, `test.http.status` (the status
//! code) and `test.http.bytes` (the body's length). A failed request fails the call
//! with the SDK's error text. With `urls` (comma-separated) it fetches each in turn.
//! With `burst: N` it starts N requests to `url` at once, through raw `wasi:http`
//! (the SDK sends one at a time), and reports `test.http.refused`: how many the host
//! refused for the plugin's bound on requests in flight.
use pollen_sdk::http;
use pollen_sdk::pollster::bindings::wasi::http::{outgoing_handler, types};
use pollen_sdk::pollster::*;

struct HttpProbe;

impl Pollster for HttpProbe {
    fn describe() -> Vec<Meter> {
        vec![
            Meter::gauge("test.http.status", "1").discovered_by("local_instances"),
            Meter::gauge("test.http.bytes", "B").discovered_by("local_instances"),
            Meter::gauge("test.http.refused", "request").discovered_by("local_instances"),
        ]
    }

    fn poll(resources: Vec<Resource>) -> Result<Vec<Sample>, Error> {
        if resources.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(burst) = config::get("burst").and_then(|n| n.parse::<usize>().ok()) {
            let url = config::get("url").unwrap_or_default();
            return Ok(vec![Sample::new(2, 0, refused_of_burst(&url, burst) as f64)]);
        }
        let urls = config::get("urls").or_else(|| config::get("url")).unwrap_or_default();
        let mut samples = Vec::new();
        for url in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            let response = http::get(url).header("accept", "application/json").send()?;
            samples.push(Sample::new(0, 0, f64::from(response.status)));
            samples.push(Sample::new(1, 0, response.body.len() as f64));
        }
        Ok(samples)
    }
}

/// Starts `count` GETs of `url` (`http://authority/path`) before waiting on any, and
/// counts those refused with `connection-limit-reached`.
fn refused_of_burst(url: &str, count: usize) -> usize {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let pending: Vec<_> = (0..count)
        .filter_map(|_| {
            let request = types::OutgoingRequest::new(types::Fields::new());
            request.set_scheme(Some(&types::Scheme::Http)).ok()?;
            request.set_authority(Some(authority)).ok()?;
            request.set_path_with_query(Some(if path.is_empty() { "/" } else { path })).ok()?;
            outgoing_handler::handle(request, None).ok()
        })
        .collect();
    pending
        .iter()
        .filter(|future| {
            future.subscribe().block();
            matches!(future.get(), Some(Ok(Err(types::ErrorCode::ConnectionLimitReached))))
        })
        .count()
}

export_pollster!(HttpProbe);
