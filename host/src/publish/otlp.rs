//! `otlp://host:4318`: OpenTelemetry metrics over OTLP/HTTP (`POST /v1/metrics`),
//! protobuf (the default) or JSON (`encoding=json`), built with the official protobuf
//! definitions (the `opentelemetry-proto` crate).
//!
//! Each resource (an instance, a disk, a vNIC) is an OTLP resource, with attributes
//! `service.name` (`pollen`), `cloud.resource_id`, `openstack.project.id`,
//! `openstack.user.id`, `openstack.instance.name`, `openstack.flavor.name` and
//! `host.name` (the hypervisor) where known. Cumulative meters are monotonic sums with
//! cumulative temporality and the time the series started (re-started when a counter
//! goes down: a reset); delta meters are sums with delta temporality, starting at the
//! series' previous reading; gauges are gauges. Timestamps are nanoseconds since the
//! epoch. The HTTP publisher's options apply (`timeout`, `max_retries`, `verify_ssl`,
//! ...; `ssl=1` for HTTPS); a path other than `/` replaces `/v1/metrics`.

use super::http::{HttpOptions, HttpPublisher};
use super::{Batch, Delivery, PublishError, Publisher, CHUNK};
use crate::registry::{MeterHandle, ResourceHandle};
use crate::sample::{Meter, MeterType, Resource, Sample};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;
use prost::Message;
use std::collections::{BTreeMap, HashMap};

/// How requests are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json` (OTLP/JSON).
    Json,
}

/// The OTLP publisher's settings, from its URL.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpOptions {
    /// Where and how to POST.
    pub http: HttpOptions,
    /// Protobuf or JSON.
    pub encoding: Encoding,
}

impl OtlpOptions {
    /// Reads an `otlp://` URL.
    pub fn from_url(url: &url::Url) -> Result<Self, String> {
        let mut encoding = Encoding::Protobuf;
        let mut ssl = false;
        let mut rest = Vec::new();
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "encoding" => {
                    encoding = match value.as_ref() {
                        "protobuf" | "proto" => Encoding::Protobuf,
                        "json" => Encoding::Json,
                        other => return Err(format!("`encoding={other}`: `protobuf` or `json`")),
                    }
                }
                "ssl" => ssl = super::options::boolean(&value).ok_or("`ssl`: 0 or 1")?,
                _ => rest.push((key.into_owned(), value.into_owned())),
            }
        }
        let mut http = super::http::over_http(url, ssl)?;
        if http.port().is_none() {
            http.set_port(Some(4318)).map_err(|()| "no host".to_string())?;
        }
        if http.path().is_empty() || http.path() == "/" {
            http.set_path("/v1/metrics");
        }
        http.set_query(None);
        if !rest.is_empty() {
            http.query_pairs_mut().extend_pairs(rest);
        }
        Ok(Self { http: HttpOptions::from_url(&http)?, encoding })
    }
}

/// What the publisher remembers of a series: when it started, and its latest
/// reading.
struct SeriesState {
    start_ns: i64,
    last_value: f64,
    last_ns: i64,
}

/// Sends OTLP metrics.
pub struct OtlpPublisher {
    http: HttpPublisher,
    encoding: Encoding,
    series: HashMap<(MeterHandle, ResourceHandle), SeriesState>,
}

impl OtlpPublisher {
    /// The publisher for an `otlp://` URL.
    pub fn new(url: &str, options: OtlpOptions) -> Result<Self, PublishError> {
        Ok(Self { http: HttpPublisher::new(url, options.http)?, encoding: options.encoding, series: HashMap::new() })
    }

    /// The request for some of a batch's samples.
    pub fn request(&mut self, batch: &Batch, samples: &[Sample]) -> ExportMetricsServiceRequest {
        // Per resource, per meter, the data points, in the batch's order.
        let mut resources: BTreeMap<ResourceHandle, (std::sync::Arc<Resource>, BTreeMap<MeterHandle, Metric>)> =
            BTreeMap::new();
        for sample in samples {
            let (Some(meter), Some(resource)) =
                (batch.registry.meter(sample.meter), batch.registry.resource(sample.resource))
            else {
                continue;
            };
            let start = self.start_time(sample.meter, sample.resource, meter.kind, sample.volume, sample.timestamp);
            let point = NumberDataPoint {
                start_time_unix_nano: if meter.kind == MeterType::Gauge { 0 } else { nanos(start) },
                time_unix_nano: nanos(sample.timestamp),
                value: Some(number_data_point::Value::AsDouble(sample.volume)),
                ..Default::default()
            };
            let (_, metrics) = resources.entry(sample.resource).or_insert_with(|| (resource, BTreeMap::new()));
            let metric = metrics.entry(sample.meter).or_insert_with(|| empty_metric(&meter));
            match &mut metric.data {
                Some(metric::Data::Sum(sum)) => sum.data_points.push(point),
                Some(metric::Data::Gauge(gauge)) => gauge.data_points.push(point),
                _ => {}
            }
        }
        let scope = InstrumentationScope {
            name: "pollen".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        };
        ExportMetricsServiceRequest {
            resource_metrics: resources
                .into_values()
                .map(|(resource, metrics)| ResourceMetrics {
                    resource: Some(OtlpResource { attributes: resource_attributes(&resource), ..Default::default() }),
                    scope_metrics: vec![ScopeMetrics {
                        scope: Some(scope.clone()),
                        metrics: metrics.into_values().collect(),
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .collect(),
        }
    }

    /// The start of a sum's data point: for a cumulative series, when it was first
    /// seen or last reset; for a delta one, its previous reading.
    fn start_time(
        &mut self,
        meter: MeterHandle,
        resource: ResourceHandle,
        kind: MeterType,
        value: f64,
        now: i64,
    ) -> i64 {
        let state = self.series.entry((meter, resource)).or_insert(SeriesState {
            start_ns: now,
            last_value: value,
            last_ns: now,
        });
        let start = match kind {
            MeterType::Cumulative if value < state.last_value => state.last_ns,
            MeterType::Cumulative => state.start_ns,
            MeterType::Delta => state.last_ns.min(now),
            MeterType::Gauge => now,
        };
        state.start_ns = if kind == MeterType::Cumulative { start } else { state.start_ns };
        state.last_value = value;
        state.last_ns = now;
        start
    }
}

fn nanos(timestamp: i64) -> u64 {
    u64::try_from(timestamp).unwrap_or(0)
}

fn empty_metric(meter: &Meter) -> Metric {
    let data = match meter.kind {
        MeterType::Gauge => metric::Data::Gauge(Gauge { data_points: Vec::new() }),
        MeterType::Cumulative => metric::Data::Sum(Sum {
            data_points: Vec::new(),
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        }),
        MeterType::Delta => metric::Data::Sum(Sum {
            data_points: Vec::new(),
            aggregation_temporality: AggregationTemporality::Delta as i32,
            is_monotonic: false,
        }),
    };
    Metric {
        name: meter.name.clone(),
        description: format!("Ceilometer meter {} ({})", meter.name, meter.kind.as_str()),
        unit: meter.unit.clone(),
        data: Some(data),
        ..Default::default()
    }
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }) }
}

fn resource_attributes(resource: &Resource) -> Vec<KeyValue> {
    let metadata = |key: &str| resource.metadata_text(key);
    let mut attributes = vec![text("service.name", "pollen"), text("cloud.resource_id", &resource.id)];
    let optional = [
        ("openstack.project.id", resource.project_id().map(str::to_string)),
        ("openstack.user.id", resource.user_id().map(str::to_string)),
        ("openstack.instance.name", metadata("display_name")),
        ("openstack.flavor.name", resource.flavor_name()),
        ("host.name", metadata("instance_host").or_else(|| metadata("host"))),
    ];
    attributes.extend(optional.into_iter().filter_map(|(key, value)| value.map(|v| text(key, &v))));
    attributes
}

impl Publisher for OtlpPublisher {
    async fn publish(&mut self, batch: &Batch) -> Result<Delivery, PublishError> {
        let mut delivery = Delivery::default();
        // One request per CHUNK samples: collectors bound the size of a request.
        for chunk in batch.samples.chunks(CHUNK) {
            let request = self.request(batch, chunk);
            let (body, content_type) = match self.encoding {
                Encoding::Protobuf => (request.encode_to_vec(), "application/x-protobuf"),
                Encoding::Json => (serde_json::to_vec(&request).expect("OTLP requests serialize"), "application/json"),
            };
            let done = self.http.deliver(body, content_type, chunk.len() as u64).await;
            delivery.sent += done.sent;
            delivery.dropped += done.dropped;
        }
        Ok(delivery)
    }

    fn take_unreachable(&mut self) -> bool {
        self.http.take_unreachable()
    }

    async fn flush(&mut self) -> Result<Delivery, PublishError> {
        Ok(Delivery::default())
    }
}
