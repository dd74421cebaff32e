//! `gnocchi://` against a real Gnocchi (`scripts/gnocchi.sh start`, in `make setup`:
//! the API on 127.0.0.1:8041, PostgreSQL as indexer, file storage): what Pollen
//! posts is read back through Gnocchi's API.

mod common;

use common::*;
use pollen_host::publish::{Batch, PublishContext, PublisherHandle};
use pollen_host::registry::Registry;
use pollen_host::sample::{Metadata, Meter, MeterType, Owner, Resource, Sample};
use serde_json::{json, Value};
use std::sync::Arc;

const GNOCCHI: &str = "127.0.0.1:8041";

/// Gnocchi's answer to a GET, as JSON (basic authentication as `admin`).
fn get(path: &str) -> (u16, Value) {
    let (status, body) =
        http_with(GNOCCHI, "GET", path, &[("Authorization", "Basic YWRtaW46")], b"").expect("Gnocchi answers");
    (status, serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into())))
}

fn gnocchi_is_up() -> bool {
    if std::net::TcpStream::connect(GNOCCHI).is_ok() {
        return true;
    }
    assert!(std::env::var("CI").is_err(), "CI: no Gnocchi on {GNOCCHI} (`scripts/gnocchi.sh start`, in `make setup`)");
    eprintln!("skipped: no Gnocchi on {GNOCCHI}; run `scripts/gnocchi.sh start`");
    false
}

/// An instance, its disk, and a meter no definition lists, at two times.
fn batch(instance: &str, t: i64, cpu_value: f64) -> Batch {
    let registry = Arc::new(Registry::new());
    let meter =
        |name: &str, kind, unit: &str| registry.intern_meter(Meter { name: name.into(), kind, unit: unit.into() });
    let cpu = meter("cpu", MeterType::Cumulative, "ns");
    let memory = meter("memory.usage", MeterType::Gauge, "MB");
    let reads = meter("disk.device.read.bytes", MeterType::Cumulative, "B");
    let unlisted = meter("hardware.cpu.util", MeterType::Gauge, "%");
    let metadata = json!({
        "display_name": "web-1", "instance_host": "compute-7", "instance_type": "m1.small",
        "flavor": {"id": "42", "name": "m1.small"}, "image_ref": "img-1",
    });
    let vm = registry.intern_resource(Resource {
        owner: Owner::of(Some("alice"), Some("p1")),
        metadata: Metadata::from_map(metadata.as_object().unwrap()),
        ..Resource::bare(instance)
    });
    let mut disk_metadata = serde_json::Map::new();
    disk_metadata.insert("instance_id".into(), instance.into());
    let disk = registry.intern_resource(Resource {
        owner: Owner::of(Some("alice"), Some("p1")),
        metadata: disk_metadata.into(),
        extra: Metadata::from_map(json!({"disk_name": "vda"}).as_object().unwrap()),
        ..Resource::bare(&format!("{instance}-vda"))
    });
    let timestamp = 1_790_000_000_000_000_000 + t * 1_000_000_000;
    let at = |meter, resource, volume| Sample { meter, resource, volume, timestamp };
    let samples =
        vec![at(cpu, vm, cpu_value), at(memory, vm, 512.0 + t as f64), at(reads, disk, 4096.0), at(unlisted, vm, 1.0)];
    Batch::new(samples, registry, Arc::from("openstack"))
}

async fn publish(url: &str, batches: Vec<Batch>) -> (u64, u64) {
    // The publisher's warnings and errors, shown with a failing test's output.
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("pollen_host=info").try_init();
    let handle = PublisherHandle::start(url, &PublishContext::default()).await.expect("publisher starts");
    for batch in batches {
        handle.send_waiting(Arc::new(batch)).await;
    }
    let delivery = handle.shutdown(SAFETY_NET).await;
    (delivery.sent, delivery.dropped)
}

/// The measures of a resource's metric at 1 s granularity: (timestamp, value).
fn measures(resource: &str, metric: &str) -> Vec<(String, f64)> {
    let (status, body) =
        get(&format!("/v1/resource/generic/{resource}/metric/{metric}/measures?refresh=true&granularity=1"));
    assert_eq!(status, 200, "{resource} {metric}: {body}");
    body.as_array().unwrap().iter().map(|m| (m[0].as_str().unwrap().to_string(), m[2].as_f64().unwrap())).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn measures_posted_by_pollen_are_read_back_through_gnocchis_api() {
    if !gnocchi_is_up() {
        return;
    }
    let instance = uuid::Uuid::new_v4().to_string();
    // `high` has a 1 s granularity: each measure is read back as it was sent.
    let url = format!("gnocchi://admin@{GNOCCHI}?archive_policy=high&filter_project=");
    let (sent, dropped) = publish(&url, vec![batch(&instance, 0, 1e9), batch(&instance, 10, 3e9)]).await;
    assert_eq!((sent, dropped), (6, 2), "the meter no definition lists is not sent, and counted");

    // The instance was created on Gnocchi's first refusal, with its attributes.
    let (status, resource) = get(&format!("/v1/resource/instance/{instance}"));
    assert_eq!(status, 200, "{resource}");
    assert_eq!(resource["display_name"], "web-1");
    assert_eq!(resource["host"], "compute-7");
    assert_eq!(resource["flavor_name"], "m1.small");
    assert_eq!(resource["flavor_id"], "42");
    assert_eq!((resource["user_id"].as_str(), resource["project_id"].as_str()), (Some("alice"), Some("p1")));
    let metrics = resource["metrics"].as_object().unwrap();
    assert!(metrics.contains_key("cpu") && metrics.contains_key("memory.usage"), "{metrics:?}");
    assert!(!metrics.contains_key("hardware.cpu.util"));

    let cpu = measures(&instance, "cpu");
    assert_eq!(cpu.iter().map(|(_, v)| *v).collect::<Vec<_>>(), vec![1e9, 3e9]);
    let expected = pollen_host::sample::iso8601(1_790_000_000_000_000_000);
    assert_eq!(cpu[0].0[..19], expected[..19], "the samples' own timestamps");
    assert_eq!(measures(&instance, "memory.usage").iter().map(|(_, v)| *v).collect::<Vec<_>>(), vec![512.0, 522.0]);

    // The disk is an `instance_disk`, its id Pollen's `<uuid>-vda`.
    let (status, disk) = get(&format!("/v1/resource/instance_disk/{instance}-vda"));
    assert_eq!(status, 200, "{disk}");
    assert_eq!(disk["original_resource_id"], format!("{instance}-vda"));
    assert_eq!((disk["name"].as_str(), disk["instance_id"].as_str()), (Some("vda"), Some(instance.as_str())));
    let disk_id = disk["id"].as_str().unwrap();
    assert_eq!(
        measures(disk_id, "disk.device.read.bytes").iter().map(|(_, v)| *v).collect::<Vec<_>>(),
        vec![4096.0; 2]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_resource_types_are_created_from_the_definitions() {
    if !gnocchi_is_up() {
        return;
    }
    let kind = format!("pollen_test_{}", uuid::Uuid::new_v4().simple());
    let workspace = Workspace::new(&[]);
    let definitions = workspace.path().join("resources.yaml");
    std::fs::write(
        &definitions,
        format!(
            "archive_policy_default: pollen-test-low\narchive_policies:\n  - name: pollen-test-low\n    aggregation_methods: [mean, last]\n    back_window: 0\n    definition:\n      - granularity: 1 second\n        timespan: 1 day\nresources:\n  - resource_type: {kind}\n    metrics:\n      'memory.*':\n    attributes:\n      label: resource_metadata.(missing|display_name)\n"
        ),
    )
    .unwrap();
    let instance = uuid::Uuid::new_v4().to_string();
    let url = format!("gnocchi://{GNOCCHI}?resources_definition_file={}&filter_project=", definitions.display());
    let (sent, _) = publish(&url, vec![batch(&instance, 0, 1.0)]).await;
    assert_eq!(sent, 1, "only memory.usage matches `memory.*`");
    let (status, resource) = get(&format!("/v1/resource/{kind}/{instance}"));
    assert_eq!(status, 200, "{resource}");
    assert_eq!(resource["label"], "web-1");
    let (_, metric) = get(&format!("/v1/resource/{kind}/{instance}/metric/memory.usage"));
    assert_eq!(metric["archive_policy"]["name"], "pollen-test-low", "the definitions' policy, created: {metric}");
}

#[tokio::test(flavor = "multi_thread")]
async fn samples_of_the_filtered_project_are_not_sent() {
    if !gnocchi_is_up() {
        return;
    }
    let instance = uuid::Uuid::new_v4().to_string();
    let (sent, dropped) =
        publish(&format!("gnocchi://{GNOCCHI}?filter_project=p1"), vec![batch(&instance, 0, 1.0)]).await;
    assert_eq!((sent, dropped), (0, 4));
    assert_eq!(get(&format!("/v1/resource/instance/{instance}")).0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_gnocchi_costs_counted_samples() {
    let url = format!("gnocchi://127.0.0.1:{}?max_retries=1&timeout=1", free_port());
    let (sent, dropped) = publish(&url, vec![batch("vm-x", 0, 1.0)]).await;
    assert_eq!((sent, dropped), (0, 4));
}

#[test]
fn gnocchi_urls_say_what_is_wrong() {
    use pollen_host::publish::PublisherConfig;
    let error = PublisherConfig::parse("gnocchi://127.0.0.1?archive_polcy=low").unwrap_err().to_string();
    assert!(error.contains("did you mean `archive_policy`"), "{error}");
    let error = PublisherConfig::parse("gnocchi://h?auth_mode=keystone").unwrap_err().to_string();
    assert!(error.contains("os_auth_url"), "{error}");
}

/// One request a stub service got: method, path, the token it carried, the body.
type Seen = (String, String, Option<String>, String);

/// A stub of Keystone (tokens, a catalog naming the stub Gnocchi, the `service`
/// project) and of Gnocchi's endpoints the publisher calls, which refuses the first
/// token as expired: no Keystone runs here, so the token flow is checked against this.
fn keystone_and_gnocchi_stub() -> (String, std::sync::mpsc::Receiver<Seen>) {
    use std::io::{BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    let base = format!("http://{address}");
    std::thread::spawn(move || {
        let tokens = std::sync::atomic::AtomicU32::new(0);
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut stream = stream;
            let Some(request) = read_request(&mut reader) else { continue };
            let token = request.header("x-auth-token").map(str::to_string);
            let (method, path) = (request.method.clone(), request.path.clone());
            let body = String::from_utf8_lossy(&request.body).into_owned();
            let (status, headers, answer) = match (method.as_str(), path.as_str()) {
                ("POST", "/v3/auth/tokens") => {
                    let n = tokens.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    let catalog = json!({"token": {"catalog": [
                        {"type": "metric", "endpoints": [
                            {"interface": "internal", "url": "http://internal.invalid"},
                            {"interface": "public", "url": format!("{base}/gnocchi")}]},
                        {"type": "identity", "endpoints": [{"interface": "public", "url": base.clone()}]}]}});
                    ("201 Created", format!("X-Subject-Token: token-{n}\r\n"), catalog.to_string())
                }
                ("GET", p) if p.starts_with("/v3/projects?name=service") => {
                    ("200 OK", String::new(), json!({"projects": [{"id": "service-project-id"}]}).to_string())
                }
                ("POST", "/gnocchi/v1/archive_policy") => ("409 Conflict", String::new(), "{}".into()),
                (_, p) if p.starts_with("/gnocchi/") && token.as_deref() == Some("token-1") && p.contains("batch") => {
                    ("401 Unauthorized", String::new(), "{}".into())
                }
                ("POST", p) if p.starts_with("/gnocchi/v1/batch/") => ("202 Accepted", String::new(), "{}".into()),
                ("PATCH", _) => ("200 OK", String::new(), "{}".into()),
                _ => ("404 Not Found", String::new(), "{}".into()),
            };
            let _ = tx.send((method, path, token, body));
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (address, rx)
}

#[tokio::test(flavor = "multi_thread")]
async fn keystone_tokens_find_gnocchi_in_the_catalog_and_are_renewed_when_refused() {
    let (address, seen) = keystone_and_gnocchi_stub();
    // Ceilometer's plain `gnocchi://`: where Gnocchi is comes from the catalog.
    let url = format!(
        "gnocchi://?os_auth_url=http://{address}/v3&os_username=ceilometer&os_password=secret&os_project_name=service&filter_project=service"
    );
    let mut own = batch("vm-1", 0, 1.0);
    // A sample of the `service` project itself (Gnocchi's own usage) is not sent.
    let service = own.registry.intern_resource(Resource {
        owner: Owner::of(None, Some("service-project-id")),
        ..Resource::bare("gnocchi-swift")
    });
    own.samples.push(Sample { resource: service, ..own.samples[1] });
    let (sent, dropped) = publish(&url, vec![own]).await;
    assert_eq!((sent, dropped), (3, 2), "the unlisted meter and the service project's sample are not sent");

    let requests: Vec<Seen> = seen.try_iter().collect();
    let logins: Vec<&Seen> = requests.iter().filter(|r| r.1 == "/v3/auth/tokens").collect();
    assert_eq!(logins.len(), 2, "a refused token is renewed once: {requests:?}");
    let login: Value = serde_json::from_str(&logins[0].3).unwrap();
    assert_eq!(login["auth"]["identity"]["password"]["user"]["name"], "ceilometer");
    assert_eq!(login["auth"]["scope"]["project"]["name"], "service");
    let batches: Vec<&Seen> = requests.iter().filter(|r| r.1.starts_with("/gnocchi/v1/batch/")).collect();
    assert_eq!(batches.iter().map(|r| r.2.as_deref()).collect::<Vec<_>>(), vec![Some("token-1"), Some("token-2")]);
    let measures: Value = serde_json::from_str(&batches[1].3).unwrap();
    assert!(measures.get("vm-1").is_some() && measures.get("gnocchi-swift").is_none(), "{measures}");
    assert_eq!(measures["vm-1"]["cpu"]["measures"][0]["value"], 1.0);
    assert_eq!(measures["vm-1"]["cpu"]["archive_policy_name"], "ceilometer-low-rate");
    assert_eq!(measures["vm-1"]["cpu"]["unit"], "ns");
}
