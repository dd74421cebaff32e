//! The collector (issue 19, its first inputs): `pollen run` publishing over `udp://`
//! and `tcp://` to `pollen collect`, every field of every sample arriving intact;
//! forged, tampered and malformed messages counted and skipped, the inputs going on.

mod common;

use common::*;
use pollen_host::publish::metering::msgpack_messages;
use pollen_host::publish::Batch;
use pollen_host::registry::Registry;
use pollen_host::sample::{Meter, MeterType, Resource, Sample};
use serde_json::Value;
use std::sync::Arc;

const SECRET: &str = "pollen-collector-secret";

/// Starts `pollen collect` in `dir` with a UDP and a TCP input on free ports, each
/// into a file of its own; returns it, its ports and its files.
fn collector(dir: &std::path::Path) -> (Running, u16, u16, std::path::PathBuf, std::path::PathBuf) {
    let (udp, tcp) = (free_udp_port(), free_port());
    let (from_udp, from_tcp) = (dir.join("from-udp.jsonl"), dir.join("from-tcp.jsonl"));
    let text = format!(
        "collector:\n  telemetry_secrets: [an-old-one, {SECRET}]\n  inputs:\n    - {{url: \"udp://127.0.0.1:{udp}\", sinks: [udp]}}\n    - {{url: \"tcp://127.0.0.1:{tcp}\", sinks: [tcp]}}\nsinks:\n  - name: udp\n    publishers: ['file://{}']\n  - name: tcp\n    publishers: ['file://{}']\n",
        from_udp.display(),
        from_tcp.display()
    );
    std::fs::write(dir.join("collector.yaml"), text).unwrap();
    let mut command = pollen_command();
    command.args(["collect", "--config", "collector.yaml", "--log", "info"]).current_dir(dir);
    let mut running = Running::spawn(command, from_udp.clone());
    running.wait_for_log("collector input listening", 2);
    (running, udp, tcp, from_udp, from_tcp)
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn lines(path: &std::path::Path) -> Vec<Value> {
    json_lines(&std::fs::read_to_string(path).unwrap_or_default())
}

/// What must arrive unchanged: everything but the message id.
fn fields(sample: &Value) -> Value {
    let mut sample = sample.clone();
    let object = sample.as_object_mut().unwrap();
    object.remove("id");
    sample
}

#[test]
fn an_agent_s_samples_arrive_whole_over_udp_and_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let (collector, udp, tcp, from_udp, from_tcp) = collector(dir.path());
    let sent = agent_sends_two_cycles(&format!("'udp://127.0.0.1:{udp}', 'tcp://127.0.0.1:{tcp}'"), SECRET);
    wait_until(
        "every sample at the collector, over both",
        || lines(&from_udp).len() >= sent.len() && lines(&from_tcp).len() >= sent.len(),
        || format!("udp {} tcp {} of {}", lines(&from_udp).len(), lines(&from_tcp).len(), sent.len()),
    );
    let stderr = collector.stop();
    let mut expected: Vec<Value> = sent.iter().map(fields).collect();
    expected.sort_by_key(|v| v.to_string());
    for received in [lines(&from_udp), lines(&from_tcp)] {
        let mut received: Vec<Value> = received.iter().map(fields).collect();
        received.sort_by_key(|v| v.to_string());
        assert_eq!(received.len(), expected.len());
        for (got, want) in received.iter().zip(&expected) {
            assert_eq!(got, want, "every field intact");
        }
    }
    assert!(stderr.contains("rejected=0") && stderr.contains("malformed=0"), "{stderr}");
}

/// One sample, as a msgpack metering message signed with `secret`.
fn message(secret: &str, volume: f64) -> Vec<u8> {
    let registry = Arc::new(Registry::new());
    let meter =
        registry.intern_meter(Meter { name: "test.collected".into(), kind: MeterType::Gauge, unit: "1".into() });
    let resource = registry.intern_resource(Resource::bare("resource-1"));
    let samples = vec![Sample { meter, resource, volume, timestamp: 1_790_000_000_000_000_000 }];
    msgpack_messages(&Batch::new(samples, registry, Arc::from("openstack")), secret).remove(0)
}

#[test]
fn forged_tampered_and_malformed_messages_are_skipped_and_the_inputs_go_on() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let (collector, udp, tcp, from_udp, from_tcp) = collector(dir.path());
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut tampered = rmp_serde::from_slice::<Value>(&message(SECRET, 1.0)).unwrap();
    tampered["counter_volume"] = serde_json::json!(1000.0);
    // Signed again once its resource id is gone: well signed, but no sample.
    let mut missing = rmp_serde::from_slice::<Value>(&message(SECRET, 1.0)).unwrap();
    let fields = missing.as_object_mut().unwrap();
    fields.remove("resource_id");
    let resigned = pollen_host::publish::signature::compute(fields, SECRET);
    fields.insert("message_signature".into(), Value::String(resigned));
    let bad: Vec<Vec<u8>> = vec![
        b"not msgpack at all".to_vec(),
        rmp_serde::to_vec(&[1, 2, 3]).unwrap(),
        message("the wrong secret", 2.0),
        message("", 3.0),
        rmp_serde::to_vec_named(&tampered).unwrap(),
        rmp_serde::to_vec_named(&missing).unwrap(),
    ];
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    for datagram in &bad {
        socket.send_to(datagram, ("127.0.0.1", udp)).unwrap();
        stream.write_all(&(datagram.len() as u64).to_le_bytes()).unwrap();
        stream.write_all(datagram).unwrap();
    }
    // Then good ones: the inputs went on.
    for volume in [7.0, 8.0] {
        let good = message(SECRET, volume);
        socket.send_to(&good, ("127.0.0.1", udp)).unwrap();
        stream.write_all(&(good.len() as u64).to_le_bytes()).unwrap();
        stream.write_all(&good).unwrap();
    }
    // A frame over the bound closes that connection only; a new one is taken.
    stream.write_all(&(u64::MAX).to_le_bytes()).unwrap();
    let mut again = std::net::TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    let good = message(SECRET, 9.0);
    again.write_all(&(good.len() as u64).to_le_bytes()).unwrap();
    again.write_all(&good).unwrap();
    wait_until(
        "the good messages at the collector",
        || lines(&from_udp).len() >= 2 && lines(&from_tcp).len() >= 3,
        || format!("udp {:?} tcp {:?}", lines(&from_udp), lines(&from_tcp)),
    );
    let mut collector = collector;
    collector.wait_for_log("a frame over the bound", 1);
    let stderr = collector.stop();
    // Sorted: two connections are read side by side.
    let volumes = |path: &std::path::Path| {
        let mut volumes: Vec<f64> = lines(path).iter().map(|s| s["volume"].as_f64().unwrap()).collect();
        volumes.sort_by(f64::total_cmp);
        volumes
    };
    assert_eq!(volumes(&from_udp), [7.0, 8.0]);
    assert_eq!(volumes(&from_tcp), [7.0, 8.0, 9.0]);
    // 2 × (wrong secret, unsigned, tampered) rejected; 2 × (garbage, array, missing field)
    // and the oversized frame malformed.
    assert!(stderr.contains("rejected=6"), "{stderr}");
    assert!(stderr.contains("malformed=7"), "{stderr}");
    assert!(stderr.contains("message rejected (signature)") && stderr.contains("message malformed"), "{stderr}");
}

#[test]
fn a_bad_collector_file_is_a_config_error_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("collector.yaml"),
        "collector:\n  inputs:\n    - {url: \"amqp://127.0.0.1:5672/?prefech=3\", sinks: [stroe]}\nsinks:\n  - name: store\n    publishers: ['file:///dev/null']\n",
    )
    .unwrap();
    let output = pollen_command().args(["collect", "--check"]).current_dir(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains(
            "collector.yaml:3:13: collector.inputs[0].url: unknown option `prefech` (did you mean `prefetch`?)"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("collector.inputs[0].sinks: no sink is named `stroe` (did you mean `store`?)"), "{stderr}");
}
