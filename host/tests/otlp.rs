//! `otlp://`: what a receiver gets, decoded with the official protobuf definitions
//! (`opentelemetry-proto`), in protobuf and in JSON.

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point, AggregationTemporality, ResourceMetrics};
use pollen_host::publish::{Batch, PublishContext, PublisherHandle};
use pollen_host::registry::Registry;
use pollen_host::sample::{Meter, MeterType, Owner, Resource, Sample};
use prost::Message;
use std::io::{BufReader, Write};
use std::sync::{mpsc, Arc};

/// One request an OTLP/HTTP receiver got.
struct Received {
    path: String,
    content_type: String,
    body: Vec<u8>,
}

/// An OTLP/HTTP receiver on a free port: answers 200 to every POST and hands over
/// what it got.
fn receiver() -> (String, mpsc::Receiver<Received>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                while let Some(request) = read_request(&mut reader) {
                    let content_type = request.header("content-type").unwrap_or("").to_string();
                    let _ = tx.send(Received { path: request.path, content_type, body: request.body });
                    stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").unwrap();
                }
            });
        }
    });
    (address, rx)
}

const SECOND: i64 = 1_000_000_000;
const T0: i64 = 1_790_000_000 * SECOND;

/// Two cycles of an instance and its disk: a counter that is reset between them, a
/// gauge and a delta meter.
fn batches() -> (Batch, Batch) {
    let registry = Arc::new(Registry::new());
    let cpu = registry.intern_meter(Meter { name: "cpu".into(), kind: MeterType::Cumulative, unit: "ns".into() });
    let memory =
        registry.intern_meter(Meter { name: "memory.usage".into(), kind: MeterType::Gauge, unit: "MB".into() });
    let delta = registry.intern_meter(Meter {
        name: "network.incoming.bytes.delta".into(),
        kind: MeterType::Delta,
        unit: "B".into(),
    });
    let reads = registry.intern_meter(Meter {
        name: "disk.device.read.bytes".into(),
        kind: MeterType::Cumulative,
        unit: "B".into(),
    });
    let mut metadata = serde_json::Map::new();
    metadata.insert("display_name".into(), "web-1".into());
    metadata.insert("instance_type".into(), "m1.small".into());
    metadata.insert("instance_host".into(), "compute-7".into());
    let vm = registry.intern_resource(Resource {
        owner: Owner::of(Some("alice"), Some("p1")),
        metadata: metadata.into(),
        ..Resource::bare("vm-1")
    });
    let disk = registry.intern_resource(Resource::bare("vm-1-vda"));
    let at = |meter, resource, volume, seconds| Sample { meter, resource, volume, timestamp: T0 + seconds * SECOND };
    let first = vec![at(cpu, vm, 5e9, 0), at(memory, vm, 512.0, 0), at(delta, vm, 0.0, 0), at(reads, disk, 4096.0, 0)];
    let second =
        vec![at(cpu, vm, 1e9, 60), at(memory, vm, 600.0, 60), at(delta, vm, 300.0, 60), at(reads, disk, 8192.0, 60)];
    let batch = |samples| Batch::new(samples, registry.clone(), Arc::from("openstack"));
    (batch(first), batch(second))
}

async fn export(url: &str) {
    let (first, second) = batches();
    let handle = PublisherHandle::start(url, &PublishContext::default()).await.expect("publisher starts");
    handle.send_waiting(Arc::new(first)).await;
    handle.send_waiting(Arc::new(second)).await;
    let delivery = handle.shutdown(SAFETY_NET).await;
    assert_eq!((delivery.sent, delivery.dropped), (8, 0));
}

fn attribute(resource: &ResourceMetrics, key: &str) -> Option<String> {
    resource.resource.as_ref()?.attributes.iter().find(|a| a.key == key).and_then(|a| match &a.value.as_ref()?.value {
        Some(any_value::Value::StringValue(text)) => Some(text.clone()),
        _ => None,
    })
}

/// Checks the second request (the counter was reset in between).
fn check(first: &ExportMetricsServiceRequest, second: &ExportMetricsServiceRequest) {
    assert_eq!(second.resource_metrics.len(), 2, "the instance and its disk are two resources");
    let vm =
        second.resource_metrics.iter().find(|r| attribute(r, "cloud.resource_id").as_deref() == Some("vm-1")).unwrap();
    assert_eq!(attribute(vm, "service.name").as_deref(), Some("pollen"));
    assert_eq!(attribute(vm, "openstack.project.id").as_deref(), Some("p1"));
    assert_eq!(attribute(vm, "openstack.user.id").as_deref(), Some("alice"));
    assert_eq!(attribute(vm, "openstack.instance.name").as_deref(), Some("web-1"));
    assert_eq!(attribute(vm, "openstack.flavor.name").as_deref(), Some("m1.small"));
    assert_eq!(attribute(vm, "host.name").as_deref(), Some("compute-7"));
    let scope = &vm.scope_metrics[0];
    assert_eq!(scope.scope.as_ref().unwrap().name, "pollen");
    let metric = |name: &str| scope.metrics.iter().find(|m| m.name == name).unwrap_or_else(|| panic!("{name}"));
    let value = |point: &opentelemetry_proto::tonic::metrics::v1::NumberDataPoint| match point.value {
        Some(number_data_point::Value::AsDouble(v)) => v,
        _ => panic!("a double"),
    };
    let t60 = (T0 + 60 * SECOND) as u64;

    let cpu = metric("cpu");
    assert_eq!(cpu.unit, "ns");
    let Some(metric::Data::Sum(sum)) = &cpu.data else { panic!("cumulative meters are sums") };
    assert!(sum.is_monotonic);
    assert_eq!(sum.aggregation_temporality, AggregationTemporality::Cumulative as i32);
    let point = &sum.data_points[0];
    assert_eq!((value(point), point.time_unix_nano), (1e9, t60), "nanosecond timestamps");
    assert_eq!(point.start_time_unix_nano, T0 as u64, "a reset restarts the series after the reading before it");

    let Some(metric::Data::Gauge(gauge)) = &metric("memory.usage").data else { panic!("gauges are gauges") };
    assert_eq!((value(&gauge.data_points[0]), gauge.data_points[0].time_unix_nano), (600.0, t60));

    let Some(metric::Data::Sum(delta)) = &metric("network.incoming.bytes.delta").data else { panic!("a sum") };
    assert_eq!(delta.aggregation_temporality, AggregationTemporality::Delta as i32);
    assert!(!delta.is_monotonic);
    assert_eq!((delta.data_points[0].start_time_unix_nano, value(&delta.data_points[0])), (T0 as u64, 300.0));

    let disk = second
        .resource_metrics
        .iter()
        .find(|r| attribute(r, "cloud.resource_id").as_deref() == Some("vm-1-vda"))
        .unwrap();
    let Some(metric::Data::Sum(reads)) = &disk.scope_metrics[0].metrics[0].data else { panic!("a sum") };
    assert_eq!(reads.data_points[0].start_time_unix_nano, T0 as u64, "a series starts when first seen");

    // The first request: each series starts at its first reading.
    let first_cpu =
        first.resource_metrics.iter().flat_map(|r| &r.scope_metrics[0].metrics).find(|m| m.name == "cpu").unwrap();
    let Some(metric::Data::Sum(sum)) = &first_cpu.data else { panic!() };
    assert_eq!((sum.data_points[0].start_time_unix_nano, sum.data_points[0].time_unix_nano), (T0 as u64, T0 as u64));
}

#[tokio::test(flavor = "multi_thread")]
async fn protobuf_requests_follow_the_opentelemetry_metrics_model() {
    let (address, received) = receiver();
    export(&format!("otlp://{address}")).await;
    let requests: Vec<Received> = received.try_iter().collect();
    assert_eq!(requests.len(), 2, "one request per batch");
    assert!(requests.iter().all(|r| r.path == "/v1/metrics" && r.content_type == "application/x-protobuf"));
    let decoded: Vec<ExportMetricsServiceRequest> =
        requests.iter().map(|r| ExportMetricsServiceRequest::decode(r.body.as_slice()).expect("protobuf")).collect();
    check(&decoded[0], &decoded[1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn json_requests_carry_the_same() {
    let (address, received) = receiver();
    export(&format!("otlp://{address}/custom/path?encoding=json")).await;
    let requests: Vec<Received> = received.try_iter().collect();
    assert!(requests.iter().all(|r| r.path == "/custom/path" && r.content_type == "application/json"));
    let text = String::from_utf8(requests[1].body.clone()).unwrap();
    assert!(text.contains("\"timeUnixNano\":\"") && text.contains("\"resourceMetrics\""), "OTLP/JSON: {text}");
    let decoded: Vec<ExportMetricsServiceRequest> =
        requests.iter().map(|r| serde_json::from_slice(&r.body).expect("OTLP JSON")).collect();
    check(&decoded[0], &decoded[1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_receiver_costs_counted_samples() {
    let url = format!("otlp://127.0.0.1:{}?timeout=1&max_retries=1", free_port());
    let handle = PublisherHandle::start(&url, &PublishContext::default()).await.unwrap();
    let (first, _) = batches();
    handle.send_waiting(Arc::new(first)).await;
    let delivery = handle.shutdown(SAFETY_NET).await;
    assert_eq!((delivery.sent, delivery.dropped), (0, 4), "dropped, and counted");
}

#[test]
fn bad_otlp_urls_say_what_is_wrong() {
    for (url, wanted) in
        [("otlp://collector?encoding=xml", "`protobuf` or `json`"), ("otlp://collector?ssl=maybe", "`ssl`")]
    {
        let error = pollen_host::publish::PublisherConfig::parse(url).unwrap_err().to_string();
        assert!(error.contains(wanted), "{url}: {error}");
    }
}
