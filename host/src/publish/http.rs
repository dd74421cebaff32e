//! `http://` and `https://`: samples POSTed as JSON (Ceilometer's sample keys), a
//! batch per request (`batch=1`, the default) or one sample per request (`batch=0`),
//! retried with exponential backoff.
//!
//! Options: `timeout` (seconds, 5), `max_retries` (2), `batch` (1), and for TLS
//! `verify_ssl` (`1`, `0`, or the path of a CA bundle), `clientcert` and `clientkey`
//! (PEM files). Other query parameters stay in the URL that is posted to.

use super::options::{boolean, Query};
use super::{Batch, Delivery, PublishError, Publisher, CHUNK};
use backon::{ExponentialBuilder, Retryable};
use std::time::Duration;

/// The HTTP publisher's settings, from its URL.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpOptions {
    /// Where to POST (the URL without Pollen's own options).
    pub target: String,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Retries after a failed request.
    pub max_retries: usize,
    /// One request per batch (else one per sample).
    pub batch: bool,
    /// Whether to verify the server's certificate.
    pub verify_ssl: bool,
    /// A CA bundle to verify it with.
    pub ca_file: Option<String>,
    /// Client certificate and key (PEM), for mutual TLS.
    pub client_identity: Option<(String, String)>,
}

impl HttpOptions {
    /// Reads an `http://` or `https://` URL, taking Pollen's options out of it.
    pub fn from_url(url: &url::Url) -> Result<Self, String> {
        let mut query = Query::new(url);
        let timeout: f64 = query.parse("timeout", 5.0)?;
        let max_retries = query.parse("max_retries", 2)?;
        let batch = query.flag_or("batch", true)?;
        // `verify_ssl` is a boolean, or the path of a CA bundle (Ceilometer's form).
        let (verify_ssl, ca_file) = match query.text("verify_ssl") {
            None => (true, None),
            Some(text) => match boolean(&text) {
                Some(verify) => (verify, None),
                None => (true, Some(text)),
            },
        };
        let client_identity = match (query.text("clientcert"), query.text("clientkey")) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => return Err("`clientcert` and `clientkey` go together".into()),
        };
        let mut target = url.clone();
        let rest = query.remaining();
        target.set_query(None);
        if !rest.is_empty() {
            target.query_pairs_mut().extend_pairs(rest);
        }
        let timeout =
            Duration::try_from_secs_f64(timeout).map_err(|_| format!("timeout `{timeout}` is not a duration"))?;
        Ok(Self { target: target.to_string(), timeout, max_retries, batch, verify_ssl, ca_file, client_identity })
    }
}

/// The same URL over `http` (`https` with `ssl`), for publishers whose own scheme
/// (`prometheus://`, `otlp://`) names what they send, not how.
pub(super) fn over_http(url: &url::Url, ssl: bool) -> Result<url::Url, String> {
    let rest = &url.as_str()[url.scheme().len()..];
    let scheme = if ssl { "https" } else { "http" };
    url::Url::parse(&format!("{scheme}{rest}")).map_err(|e| format!("cannot be sent over HTTP: {e}"))
}

/// An HTTP client with the options' timeout and TLS settings (CA bundle, client
/// certificate), for every publisher that speaks HTTP.
pub(super) fn client(options: &HttpOptions) -> Result<reqwest::Client, String> {
    let mut builder =
        reqwest::Client::builder().timeout(options.timeout).danger_accept_invalid_certs(!options.verify_ssl);
    if let Some(path) = &options.ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("cannot read CA bundle {path}: {e}"))?;
        for certificate in reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| format!("CA bundle {path}: {e}"))? {
            builder = builder.add_root_certificate(certificate);
        }
    }
    if let Some((cert, key)) = &options.client_identity {
        let mut pem = std::fs::read(cert).map_err(|e| format!("cannot read {cert}: {e}"))?;
        pem.extend(std::fs::read(key).map_err(|e| format!("cannot read {key}: {e}"))?);
        builder = builder.identity(reqwest::Identity::from_pem(&pem).map_err(|e| format!("client identity: {e}"))?);
    }
    builder.build().map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// POSTs JSON to an HTTP endpoint.
pub struct HttpPublisher {
    url: String,
    options: HttpOptions,
    client: reqwest::Client,
    /// Whether a POST failed to reach the server (or it answered 5xx, 408 or 429)
    /// since [`Publisher::take_unreachable`] last asked.
    unreachable: std::sync::atomic::AtomicBool,
}

/// Why a POST failed, and whether trying again later may help.
struct PostError {
    message: String,
    /// The server refused the body itself (a 4xx other than 408 and 429).
    refused: bool,
}

impl HttpPublisher {
    /// Builds the client (reading CA and client certificate files).
    pub fn new(url: &str, options: HttpOptions) -> Result<Self, PublishError> {
        let client = client(&options).map_err(|message| PublishError::Url { url: url.to_string(), message })?;
        Ok(Self { url: url.into(), options, client, unreachable: Default::default() })
    }

    /// POSTs one body carrying `samples` samples: all sent, or (after the retries) all
    /// dropped, logged and counted.
    pub(super) async fn deliver(&self, body: Vec<u8>, content_type: &str, samples: u64) -> Delivery {
        match self.post(body, content_type).await {
            Ok(()) => Delivery { sent: samples, dropped: 0 },
            Err(PostError { message: error, refused }) => {
                if !refused {
                    self.unreachable.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                tracing::error!(publisher = %self.url, %error, samples, "POST failed after retries; samples dropped");
                Delivery { sent: 0, dropped: samples }
            }
        }
    }

    /// POSTs `body` to the target, retried with backoff; the error after the last try.
    async fn post(&self, body: Vec<u8>, content_type: &str) -> Result<(), PostError> {
        let attempt = || async {
            let response = self
                .client
                .post(&self.options.target)
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body.clone())
                .send()
                .await
                .map_err(|e| PostError { message: e.to_string(), refused: false })?;
            match response.status() {
                status if status.is_success() => Ok(()),
                status => Err(PostError {
                    message: format!("the server answered {status}"),
                    refused: status.is_client_error()
                        && status != reqwest::StatusCode::REQUEST_TIMEOUT
                        && status != reqwest::StatusCode::TOO_MANY_REQUESTS,
                }),
            }
        };
        attempt
            .retry(ExponentialBuilder::default().with_min_delay(Duration::from_millis(100)).with_max_times(self.options.max_retries))
            .notify(|error, delay| tracing::warn!(publisher = %self.url, error = %error.message, retry_in_ms = delay.as_millis() as u64, "POST failed; retrying"))
            .await
    }
}

impl Publisher for HttpPublisher {
    async fn publish(&mut self, batch: &Batch) -> Result<Delivery, PublishError> {
        let mut delivery = Delivery::default();
        // A JSON array per request (`batch=1`), of at most CHUNK samples, or one sample each.
        let (mut resolved, mut lines) = (batch.records(), Vec::new());
        for chunk in batch.samples.chunks(CHUNK) {
            lines.clear();
            resolved.write_json_lines_of(chunk, &mut lines);
            // One JSON record per line (JSON text holds no raw newline).
            let records: Vec<&[u8]> = lines.split(|byte| *byte == b'\n').filter(|line| !line.is_empty()).collect();
            let bodies: Vec<(Vec<u8>, u64)> = if self.options.batch {
                let mut body = b"[".to_vec();
                body.extend(records.join(&b","[..]));
                body.push(b']');
                vec![(body, records.len() as u64)]
            } else {
                records.into_iter().map(|record| (record.to_vec(), 1)).collect()
            };
            for (body, samples) in bodies {
                let done = self.deliver(body, "application/json", samples).await;
                delivery.sent += done.sent;
                delivery.dropped += done.dropped;
            }
        }
        Ok(delivery)
    }

    fn take_unreachable(&mut self) -> bool {
        std::mem::take(self.unreachable.get_mut())
    }

    async fn flush(&mut self) -> Result<Delivery, PublishError> {
        Ok(Delivery::default())
    }
}
