//! Prometheus, both ways: the agent's own `/metrics` endpoint (Ceilometer's polling
//! exporter: `agent.prometheus_listen`, `--prometheus-listen`), and `prometheus://`
//! pushing each batch to a Pushgateway (Ceilometer's `prometheus` publisher). Both
//! write Prometheus' text format (0.0.4) with the `prometheus` crate's encoder.
//!
//! The endpoint serves the latest value of every series the sinks published: metric
//! `ceilometer_<meter, . as _>` (a counter for cumulative meters, a gauge otherwise),
//! labels `resource`, `resource_name` (the instance's display name), `flavor`,
//! `project`, `user`, `unit` and `type`. A series not published again within two of
//! its polling intervals (plus 5 s) is gone from the next scrape: the resource has
//! disappeared (an instance deleted, a disk detached).

use super::http::{HttpOptions, HttpPublisher};
use super::{Batch, Delivery, PublishError, Publisher};
use crate::registry::{MeterHandle, Registry, ResourceHandle};
use crate::sample::{Meter, MeterType, Sample};
use bytes::Bytes;
use http_body_util::Full;
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Extra time a series is kept beyond two of its intervals.
const GRACE: Duration = Duration::from_secs(5);

/// The latest value of one series, and until when it is shown without news.
struct Series {
    value: f64,
    expires: Instant,
}

/// The series the agent's `/metrics` endpoint serves.
pub struct Exporter {
    registry: Arc<Registry>,
    series: Mutex<HashMap<(MeterHandle, ResourceHandle), Series>>,
}

impl Exporter {
    /// An empty exporter resolving handles in `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry, series: Mutex::default() }
    }

    /// Takes the latest values of `samples`, polled every `interval`.
    pub fn record(&self, samples: &[Sample], interval: Duration) {
        let expires = Instant::now() + interval * 2 + GRACE;
        let mut series = self.series.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for sample in samples {
            series.insert((sample.meter, sample.resource), Series { value: sample.volume, expires });
        }
    }

    /// The text of a scrape; series past their time are dropped first.
    pub fn render(&self) -> String {
        let now = Instant::now();
        let mut families: BTreeMap<String, MetricFamily> = BTreeMap::new();
        let mut series = self.series.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        series.retain(|_, s| s.expires > now);
        // A resource's labels read from its metadata once per scrape, not per series.
        let mut named: HashMap<ResourceHandle, (String, String)> = HashMap::new();
        for (&(meter, handle), value) in series.iter() {
            let (Some(meter), Some(resource)) = (self.registry.meter(meter), self.registry.resource(handle)) else {
                continue;
            };
            let (display_name, flavor) = named
                .entry(handle)
                .or_insert_with(|| {
                    (
                        resource.metadata_text("display_name").unwrap_or_default(),
                        resource.flavor_name().unwrap_or_default(),
                    )
                })
                .clone();
            let name = format!("ceilometer_{}", metric_name(&meter.name));
            let family = families.entry(name.clone()).or_insert_with(|| family(&name, &meter));
            let labels = [
                ("resource", resource.id.to_string()),
                ("resource_name", display_name),
                ("flavor", flavor),
                ("project", resource.project_id().unwrap_or_default().to_string()),
                ("user", resource.user_id().unwrap_or_default().to_string()),
                ("unit", meter.unit.clone()),
                ("type", meter.kind.as_str().to_string()),
            ];
            family.mut_metric().push(metric(&meter, &labels, value.value));
        }
        drop(series);
        encode(&families.into_values().collect::<Vec<_>>())
    }

    /// How many series are shown.
    pub fn len(&self) -> usize {
        self.series.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A meter name as a Prometheus metric name: what is not a letter, digit or `_`
/// becomes `_`.
fn metric_name(meter: &str) -> String {
    meter.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

/// A meter's family, its series to be added.
fn family(name: &str, meter: &Meter) -> MetricFamily {
    let help = format!("Ceilometer meter {} ({}, {})", meter.name, meter.kind.as_str(), meter.unit);
    family_of(name, &help, meter.kind == MeterType::Cumulative, [])
}

fn metric(meter: &Meter, labels: &[(&str, String)], value: f64) -> Metric {
    series(labels, value, meter.kind == MeterType::Cumulative)
}

/// A family of counters (or gauges), one per label set: Pollen's own figures kept
/// elsewhere (atomics) and read when `/metrics` is asked for.
pub(crate) fn family_of(
    name: &str,
    help: &str,
    counter: bool,
    values: impl IntoIterator<Item = (Vec<(&'static str, String)>, f64)>,
) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(name.to_string());
    family.set_help(help.to_string());
    family.set_field_type(if counter { MetricType::COUNTER } else { MetricType::GAUGE });
    family.set_metric(values.into_iter().map(|(labels, value)| series(&labels, value, counter)).collect());
    family
}

/// One series: its labels, in their order, and its value as a counter or a gauge.
pub(crate) fn series(labels: &[(&str, String)], value: f64, counter: bool) -> Metric {
    let mut metric = Metric::default();
    let pairs = labels.iter().map(|(name, value)| {
        let mut pair = LabelPair::default();
        pair.set_name(name.to_string());
        pair.set_value(value.clone());
        pair
    });
    metric.set_label(pairs.collect());
    if counter {
        let mut counter = Counter::default();
        counter.set_value(value);
        metric.set_counter(counter);
    } else {
        let mut gauge = Gauge::default();
        gauge.set_value(value);
        metric.set_gauge(gauge);
    }
    metric
}

/// Metric families in Prometheus's text format.
pub(crate) fn encode(families: &[MetricFamily]) -> String {
    let mut text = String::new();
    if let Err(error) = prometheus::TextEncoder::new().encode_utf8(families, &mut text) {
        tracing::error!(%error, "cannot write the Prometheus text format");
    }
    text
}

/// What an HTTP endpoint of Pollen's serves: `/metrics`, and why `/readyz` says it
/// is not ready (`/healthz` is always ok: it answers).
pub trait Endpoint: Send + Sync + 'static {
    /// The text of `/metrics` (Prometheus's text format).
    fn metrics(&self) -> String;
    /// Why it is not ready; none when it is.
    fn readiness(&self) -> Vec<String>;
}

/// The agent's endpoint: its samples as series, and its health.
pub struct AgentEndpoint {
    /// The samples.
    pub exporter: Arc<Exporter>,
    /// The agent's health.
    pub health: Arc<crate::health::Health>,
}

impl Endpoint for AgentEndpoint {
    fn metrics(&self) -> String {
        let mut text = self.exporter.render();
        text.push_str(&crate::self_metrics::get().render());
        text
    }

    fn readiness(&self) -> Vec<String> {
        self.health.readiness()
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on every address until the runtime
/// stops. Binding happens before this returns, so an address in use is an error at
/// start. Returns the listening tasks (abort them to close the sockets).
pub async fn serve(
    endpoint: Arc<dyn Endpoint>,
    addresses: &[SocketAddr],
) -> std::io::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::new();
    for address in addresses {
        let listener = tokio::net::TcpListener::bind(address).await.map_err(|error| {
            std::io::Error::new(error.kind(), format!("cannot listen on {address} for Prometheus: {error}"))
        })?;
        tracing::info!(%address, "Prometheus endpoint: http://{address}/metrics");
        tasks.push(tokio::spawn(accept(listener, endpoint.clone())));
    }
    Ok(tasks)
}

async fn accept(listener: tokio::net::TcpListener, endpoint: Arc<dyn Endpoint>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "Prometheus endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let endpoint = endpoint.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let endpoint = endpoint.clone();
                async move { Ok::<_, std::convert::Infallible>(respond(&request, &*endpoint)) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(error) = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await {
                tracing::debug!(%error, "Prometheus endpoint: connection ended");
            }
        });
    }
}

fn respond<B>(request: &hyper::Request<B>, endpoint: &dyn Endpoint) -> hyper::Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&hyper::Method::GET, "/metrics") => {
            (hyper::StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", endpoint.metrics())
        }
        // Alive: it answers.
        (&hyper::Method::GET, "/healthz") => (hyper::StatusCode::OK, "text/plain", "ok\n".to_string()),
        (&hyper::Method::GET, "/readyz") => match endpoint.readiness() {
            reasons if reasons.is_empty() => (hyper::StatusCode::OK, "text/plain", "ready\n".to_string()),
            reasons => (hyper::StatusCode::SERVICE_UNAVAILABLE, "text/plain", reasons.join("\n") + "\n"),
        },
        (&hyper::Method::GET, _) => {
            (hyper::StatusCode::NOT_FOUND, "text/plain", "see /metrics, /healthz, /readyz\n".to_string())
        }
        _ => (hyper::StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET /metrics\n".to_string()),
    };
    let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    response
}

/// `prometheus://host:port/metrics/job/NAME`: each batch POSTed to a Pushgateway in
/// the text format, as Ceilometer's publisher does (metric names are the meters' with
/// `.` as `_`; labels `resource_id`, `user_id`, `project_id`, `unit`). The HTTP
/// publisher's options apply (`timeout`, `max_retries`, `verify_ssl`, ...; `ssl=1` for
/// HTTPS).
pub struct PushPublisher {
    http: HttpPublisher,
}

impl PushPublisher {
    /// The publisher for a `prometheus://` URL.
    pub fn new(url: &str, options: HttpOptions) -> Result<Self, PublishError> {
        Ok(Self { http: HttpPublisher::new(url, options)? })
    }

    /// The options of a `prometheus://` URL: those of the HTTP publisher, to the same
    /// host and path over `http` (`https` with `ssl=1`).
    pub fn options(url: &url::Url) -> Result<HttpOptions, String> {
        let ssl = url.query_pairs().any(|(k, v)| k == "ssl" && super::options::boolean(&v) == Some(true));
        let mut http = super::http::over_http(url, ssl)?;
        let pairs: Vec<(String, String)> =
            url.query_pairs().filter(|(k, _)| k != "ssl").map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        http.set_query(None);
        if !pairs.is_empty() {
            http.query_pairs_mut().extend_pairs(pairs);
        }
        if !http.path().contains("/metrics/job/") {
            return Err("the path must name the job: `prometheus://host:9091/metrics/job/NAME`".into());
        }
        HttpOptions::from_url(&http)
    }

    /// The text of one batch: one line per series, its latest value in the batch
    /// (the Pushgateway refuses a series twice).
    fn text(batch: &Batch) -> String {
        type Labels = Vec<(&'static str, String)>;
        let mut latest: BTreeMap<String, (Meter, BTreeMap<Labels, f64>)> = BTreeMap::new();
        batch.for_each_record(|record| {
            let labels = vec![
                ("resource_id", record.resource().id.to_string()),
                ("user_id", record.resource().user_id().unwrap_or_default().to_string()),
                ("project_id", record.resource().project_id().unwrap_or_default().to_string()),
                ("unit", record.meter.unit.clone()),
            ];
            let name = metric_name(&record.meter.name);
            let (_, series) = latest.entry(name).or_insert_with(|| (record.meter.clone(), BTreeMap::new()));
            series.insert(labels, record.volume);
        });
        let families: Vec<MetricFamily> = latest
            .into_iter()
            .map(|(name, (meter, series))| {
                let mut family = family(&name, &meter);
                family.set_metric(series.into_iter().map(|(labels, value)| metric(&meter, &labels, value)).collect());
                family
            })
            .collect();
        encode(&families)
    }
}

impl Publisher for PushPublisher {
    async fn publish(&mut self, batch: &Batch) -> Result<Delivery, PublishError> {
        let count = batch.samples.len() as u64;
        let body = Self::text(batch).into_bytes();
        Ok(self.http.deliver(body, "text/plain; version=0.0.4", count).await)
    }

    fn take_unreachable(&mut self) -> bool {
        self.http.take_unreachable()
    }

    async fn flush(&mut self) -> Result<Delivery, PublishError> {
        Ok(Delivery::default())
    }
}
