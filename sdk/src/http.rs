//! Blocking HTTP(S) requests from a pollster or discoverer, over the standard
//! `wasi:http/outgoing-handler` (so the host sends them, and bounds them).
//!
//! The pipeline must grant them: `grants: [http]` and the origins the plugin may
//! reach, e.g.
//!
//! ```yaml
//! agent:
//!   plugins:
//!     my_pollster:
//!       grants: [http]
//!       allowed_hosts: ["https://api.example:8443"]
//! ```
//!
//! ```ignore
//! use pollen_sdk::http;
//!
//! let response = http::get("https://api.example:8443/v1/things?limit=100")
//!     .header("accept", "application/json")
//!     .send()?;                          // an HttpError converts into the plugin's Error
//! let text = response.ok()?.text();      // a status other than 2xx is an error
//!
//! let created = http::post("https://api.example:8443/v1/things")
//!     .json(r#"{"name": "x"}"#)
//!     .send()?;
//! ```
//!
//! Redirects are followed (at most [`MAX_REDIRECTS`]); the host checks every hop
//! against the grant. The host bounds each request (connect and total timeouts,
//! response size, requests in flight); waiting on the network does not count against
//! the plugin's `call_timeout`, only its `call_wall_timeout`.

use crate::pollster::bindings::wasi::http::outgoing_handler;
use crate::pollster::bindings::wasi::http::types::{
    self as wasi, ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use crate::pollster::bindings::wasi::io::streams::StreamError;
use std::fmt;

/// Redirects followed before a request fails with [`HttpError::TooManyRedirects`].
pub const MAX_REDIRECTS: usize = 5;

/// Bytes read from the response stream at a time.
const READ_CHUNK: u64 = 64 * 1024;

/// Why a request failed.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpError {
    /// The URL cannot be sent (not `http://` or `https://`, no host).
    InvalidUrl(String),
    /// The host refused to send it: the origin is not in the plugin's `allowed_hosts`.
    Denied {
        /// `scheme://host:port`.
        origin: String,
    },
    /// The plugin already has as many requests in flight as the host allows.
    TooManyRequests,
    /// No answer in time (connecting, or the whole request).
    Timeout {
        /// `scheme://host:port`.
        origin: String,
    },
    /// The response body is larger than the host allows.
    TooLarge {
        /// The host's limit, bytes, when it says.
        limit: Option<u64>,
    },
    /// Redirected more than [`MAX_REDIRECTS`] times, or in a loop.
    TooManyRedirects {
        /// The last URL.
        url: String,
    },
    /// The server answered with a status that is not 2xx ([`Response::ok`]).
    Status {
        /// The status code.
        status: u16,
        /// The URL.
        url: String,
        /// The beginning of the body, as text.
        body: String,
    },
    /// Anything else on the way (refused connection, TLS, protocol), as the host says.
    Network {
        /// `scheme://host:port`.
        origin: String,
        /// The `wasi:http` error code.
        code: String,
    },
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUrl(url) => write!(f, "`{url}` is not an http:// or https:// URL with a host"),
            Self::Denied { origin } => write!(
                f,
                "request to {origin} refused by the host: the origin is not in this plugin's allowed_hosts; \
                 add \"{origin}\" to agent.plugins.<this plugin>.allowed_hosts in the pipeline"
            ),
            Self::TooManyRequests => {
                write!(f, "too many requests in flight (the host's agent.http.max_concurrent_requests)")
            }
            Self::Timeout { origin } => write!(f, "request to {origin} timed out"),
            Self::TooLarge { limit: Some(limit) } => write!(f, "response body over the host's limit of {limit} bytes"),
            Self::TooLarge { limit: None } => write!(f, "response body over the host's limit"),
            Self::TooManyRedirects { url } => write!(f, "more than {MAX_REDIRECTS} redirects, the last to {url}"),
            Self::Status { status, url, body } => write!(f, "{url} answered {status}: {body}"),
            Self::Network { origin, code } => write!(f, "request to {origin} failed: {code}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// A request to build and [`send`](Request::send).
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    timeout: Option<std::time::Duration>,
}

/// A `GET` request.
pub fn get(url: &str) -> Request {
    Request::new(Method::Get, url)
}

/// A `POST` request.
pub fn post(url: &str) -> Request {
    Request::new(Method::Post, url)
}

impl Request {
    /// A request with any method.
    pub fn new(method: Method, url: &str) -> Self {
        Self { method, url: url.to_string(), headers: Vec::new(), body: None, timeout: None }
    }

    /// Bounds the connection and each wait on the response (its head, then each
    /// part of its body) by `timeout`, within the host's own bounds.
    pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Sets a JSON body (and `content-type: application/json`).
    pub fn json(self, text: &str) -> Self {
        self.header("content-type", "application/json").body(text.as_bytes())
    }

    /// Sends it and reads the whole response, following redirects.
    pub fn send(self) -> Result<Response, HttpError> {
        let mut request = self;
        let mut seen = vec![request.url.clone()];
        loop {
            let response = request.send_once()?;
            let Some(location) = response.redirect_location() else {
                return Ok(response);
            };
            let next = resolve(&request.url, location).ok_or_else(|| HttpError::InvalidUrl(location.to_string()))?;
            if seen.len() > MAX_REDIRECTS || seen.contains(&next) {
                return Err(HttpError::TooManyRedirects { url: next });
            }
            seen.push(next.clone());
            if response.status == 303
                || (matches!(response.status, 301 | 302) && matches!(request.method, Method::Post))
            {
                request.method = Method::Get;
                request.body = None;
            }
            request.url = next;
        }
    }

    fn send_once(&self) -> Result<Response, HttpError> {
        let url = Url::parse(&self.url).ok_or_else(|| HttpError::InvalidUrl(self.url.clone()))?;
        let failed = |code: ErrorCode| error_of(code, &url);
        let headers = Fields::new();
        for (name, value) in &self.headers {
            headers
                .append(name, value.as_bytes())
                .map_err(|e| HttpError::InvalidUrl(format!("header `{name}`: {e:?}")))?;
        }
        let request = OutgoingRequest::new(headers);
        let set = request
            .set_method(&self.method)
            .and(request.set_scheme(Some(&if url.https { Scheme::Https } else { Scheme::Http })))
            .and(request.set_authority(Some(&url.authority)))
            .and(request.set_path_with_query(Some(&url.path)));
        if set.is_err() {
            return Err(HttpError::InvalidUrl(self.url.clone()));
        }
        let outgoing = request.body().map_err(|()| HttpError::InvalidUrl(self.url.clone()))?;
        let options = self.timeout.map(|timeout| {
            let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
            let options = RequestOptions::new();
            // The host honours what it supports; what it refuses leaves its own bound.
            let _ = options.set_connect_timeout(Some(nanos));
            let _ = options.set_first_byte_timeout(Some(nanos));
            let _ = options.set_between_bytes_timeout(Some(nanos));
            options
        });
        let pending = outgoing_handler::handle(request, options).map_err(failed)?;
        write_body(outgoing, self.body.as_deref()).map_err(failed)?;

        pending.subscribe().block();
        let response = match pending.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(failed(code)),
            Some(Err(())) | None => return Err(failed(ErrorCode::InternalError(Some("response lost".into())))),
        };
        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
            .collect();
        let incoming = response.consume().map_err(|()| failed(ErrorCode::InternalError(None)))?;
        let body = read_body(&incoming).map_err(failed)?;
        drop(response);
        Ok(Response { status, headers, body, url: self.url.clone() })
    }
}

/// Writes the request body (if any) and finishes it.
fn write_body(outgoing: OutgoingBody, body: Option<&[u8]>) -> Result<(), ErrorCode> {
    if let Some(bytes) = body {
        let stream = outgoing.write().map_err(|()| ErrorCode::InternalError(None))?;
        for chunk in bytes.chunks(4096) {
            stream.blocking_write_and_flush(chunk).map_err(stream_error)?;
        }
    }
    OutgoingBody::finish(outgoing, None)
}

/// Reads the response body to its end.
fn read_body(incoming: &IncomingBody) -> Result<Vec<u8>, ErrorCode> {
    let stream = incoming.stream().map_err(|()| ErrorCode::InternalError(None))?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(READ_CHUNK) {
            Ok(bytes) => body.extend_from_slice(&bytes),
            Err(StreamError::Closed) => return Ok(body),
            Err(error) => return Err(stream_error(error)),
        }
    }
}

fn stream_error(error: StreamError) -> ErrorCode {
    match error {
        StreamError::LastOperationFailed(error) => {
            wasi::http_error_code(&error).unwrap_or_else(|| code_of_text(error.to_debug_string()))
        }
        StreamError::Closed => ErrorCode::HttpResponseIncomplete,
    }
}

/// The error code a body stream's failure stands for. Hosts built on
/// wasmtime-wasi-http report a body's errors as text only (`http-error-code` gives
/// none): its wording for a body cut at its size limit or its deadline is read back.
fn code_of_text(text: String) -> ErrorCode {
    if let Some(at) = text.find("body size exceeds limit") {
        let limit = text[at..].split(|c: char| !c.is_ascii_digit()).find(|part| !part.is_empty());
        return ErrorCode::HttpResponseBodySize(limit.and_then(|digits| digits.parse().ok()));
    }
    if text.contains("timeout") || text.contains("timed out") {
        return ErrorCode::HttpResponseTimeout;
    }
    ErrorCode::InternalError(Some(text))
}

fn error_of(code: ErrorCode, url: &Url) -> HttpError {
    let origin = url.origin();
    match code {
        ErrorCode::HttpRequestDenied => HttpError::Denied { origin },
        ErrorCode::ConnectionLimitReached => HttpError::TooManyRequests,
        ErrorCode::ConnectionTimeout | ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout => {
            HttpError::Timeout { origin }
        }
        ErrorCode::HttpResponseBodySize(limit) => HttpError::TooLarge { limit },
        ErrorCode::HttpRequestUriInvalid => HttpError::InvalidUrl(url.text.clone()),
        other => HttpError::Network { origin, code: format!("{other:?}") },
    }
}

/// A whole response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers, names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The URL that answered (after redirects).
    pub url: String,
}

impl Response {
    /// The first value of a header (`name` in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The response itself if its status is 2xx, else [`HttpError::Status`].
    pub fn ok(self) -> Result<Self, HttpError> {
        if (200..300).contains(&self.status) {
            return Ok(self);
        }
        let body: String = String::from_utf8_lossy(&self.body).chars().take(200).collect();
        Err(HttpError::Status { status: self.status, url: self.url, body })
    }

    fn redirect_location(&self) -> Option<&str> {
        matches!(self.status, 301 | 302 | 303 | 307 | 308).then(|| self.header("location")).flatten()
    }
}

/// An `http(s)://authority/path?query` URL, split as `wasi:http` wants it.
#[derive(Debug, Clone, PartialEq)]
struct Url {
    text: String,
    https: bool,
    authority: String,
    path: String,
}

impl Url {
    fn parse(text: &str) -> Option<Self> {
        let (scheme, rest) = text.split_once("://")?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if authority.is_empty() || authority.contains('@') {
            return None;
        }
        let path = path.split('#').next().unwrap_or_default();
        let path = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
        Some(Self { text: text.to_string(), https, authority: authority.to_string(), path })
    }

    fn origin(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        let has_port =
            self.authority.rsplit_once(':').is_some_and(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
                && !self.authority.ends_with(']');
        let port = if has_port {
            ""
        } else if self.https {
            ":443"
        } else {
            ":80"
        };
        format!("{scheme}://{}{port}", self.authority.to_ascii_lowercase())
    }
}

/// Where a redirect's `location` points, from `base`: an absolute URL, or a path on
/// the same origin.
fn resolve(base: &str, location: &str) -> Option<String> {
    if location.contains("://") {
        return Url::parse(location).map(|u| u.text);
    }
    let base = Url::parse(base)?;
    let scheme = if base.https { "https" } else { "http" };
    if let Some(rest) = location.strip_prefix("//") {
        return Url::parse(&format!("{scheme}://{rest}")).map(|u| u.text);
    }
    if location.starts_with('/') {
        return Some(format!("{scheme}://{}{location}", base.authority));
    }
    let directory = base.path.split('?').next().unwrap_or("/");
    let directory = &directory[..directory.rfind('/').map_or(0, |i| i + 1)];
    Some(format!("{scheme}://{}{directory}{location}", base.authority))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_as_wasi_http_wants() {
        let url = Url::parse("https://Glance.Example:9292/v2/images?limit=5#x").unwrap();
        assert_eq!(
            (url.https, url.authority.as_str(), url.path.as_str()),
            (true, "Glance.Example:9292", "/v2/images?limit=5")
        );
        assert_eq!(url.origin(), "https://glance.example:9292");
        assert_eq!(Url::parse("http://h").unwrap().path, "/");
        assert_eq!(Url::parse("http://h?q=1").unwrap().path, "/?q=1");
        assert_eq!(Url::parse("http://h").unwrap().origin(), "http://h:80");
        assert_eq!(Url::parse("https://[::1]/").unwrap().origin(), "https://[::1]:443");
        assert!(Url::parse("ftp://h/").is_none());
        assert!(Url::parse("http:///path").is_none());
        assert!(Url::parse("http://user@h/").is_none());
    }

    #[test]
    fn body_errors_reported_as_text_keep_their_kind() {
        let cut = code_of_text("HTTP response body size exceeds limit: 1048576 bytes".into());
        assert!(matches!(cut, ErrorCode::HttpResponseBodySize(Some(1_048_576))), "{cut:?}");
        assert!(matches!(code_of_text("HTTP response timeout".into()), ErrorCode::HttpResponseTimeout));
        assert!(matches!(code_of_text("other".into()), ErrorCode::InternalError(Some(_))));
    }

    #[test]
    fn redirects_resolve_against_the_request() {
        let base = "http://a:1/v2/images?x=1";
        assert_eq!(resolve(base, "https://b:2/z").unwrap(), "https://b:2/z");
        assert_eq!(resolve(base, "/v3").unwrap(), "http://a:1/v3");
        assert_eq!(resolve(base, "//c:3/y").unwrap(), "http://c:3/y");
        assert_eq!(resolve(base, "next?page=2").unwrap(), "http://a:1/v2/next?page=2");
    }
}
