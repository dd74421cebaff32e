//! `notifier://` against the real RabbitMQ on 127.0.0.1:5672: what lands on the wire is
//! what oslo.messaging and Ceilometer's notification agent expect, signatures check
//! out when recomputed by Python itself, and the `queue` policy survives an outage.

mod common;

use common::{batch, BrokerProxy as Proxy, SAFETY_NET};
use lapin::options::{BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use pollen_host::publish::{PublishContext, PublisherHandle};
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

const BROKER: &str = "127.0.0.1:5672";
const SECRET: &str = "pollen-test-secret";

/// The broker must be there: this test never passes by skipping.
async fn broker() -> Channel {
    let connection = Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f", ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| panic!("RabbitMQ must listen on {BROKER} (run `make setup`): {e}"));
    connection.create_channel().await.expect("channel")
}

fn topic() -> String {
    format!("pollen-test-{}", uuid::Uuid::new_v4().simple())
}

/// Declares the queue a test reads, as the publisher will, so that reading it never
/// races the publisher's own declaration.
async fn prepare(channel: &Channel, queues: &[String]) {
    for queue in queues {
        channel
            .queue_declare(queue.as_str().into(), QueueDeclareOptions::default(), FieldTable::default())
            .await
            .expect("queue.declare");
    }
}

/// The first `want` notifications of a queue (fewer if they do not come within the
/// tests' safety net), decoded as oslo.messaging would.
async fn drain(channel: &Channel, queue: &str, want: usize) -> Vec<Value> {
    let deadline = Instant::now() + SAFETY_NET;
    let mut found = Vec::new();
    while found.len() < want && Instant::now() < deadline {
        match channel.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await.expect("basic.get") {
            Some(message) => {
                let envelope: Value = serde_json::from_slice(&message.delivery.data).expect("JSON body");
                assert_eq!(envelope["oslo.version"], "2.0");
                let inner: Value = serde_json::from_str(envelope["oslo.message"].as_str().expect("packed message"))
                    .expect("oslo.message is JSON text");
                let properties = &message.delivery.properties;
                assert_eq!(properties.content_type().as_ref().map(|c| c.as_str()), Some("application/json"));
                found.push(inner);
            }
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    found
}

async fn delete(channel: &Channel, queues: &[String]) {
    for queue in queues {
        let _ = channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await;
    }
}

/// Ceilometer's own check, run by Ceilometer 27 itself (`verify_signature` of
/// `ceilometer/publisher/utils.py`, from the venv `scripts/ceilometer.sh` installs):
/// the signature of each message, recomputed with the secret, equals what it carries.
fn python_verifies(messages: &[Value], secret: &str) -> Vec<bool> {
    const VERIFY: &str = r#"
import json, sys
from ceilometer.publisher.utils import verify_signature
messages = json.load(sys.stdin)
print(json.dumps([verify_signature(m, sys.argv[1]) for m in messages]))
"#;
    let python = common::ceilometer_notification_agent().with_file_name("python");
    let mut python = Command::new(python)
        .args(["-c", VERIFY, secret])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("Ceilometer's python runs");
    python.stdin.take().unwrap().write_all(serde_json::to_string(messages).unwrap().as_bytes()).unwrap();
    let output = python.wait_with_output().unwrap();
    assert!(output.status.success());
    serde_json::from_slice(&output.stdout).expect("a list of booleans")
}

#[tokio::test(flavor = "multi_thread")]
async fn notifications_are_what_ceilometer_consumes() {
    let channel = broker().await;
    let topic = topic();
    let queue = format!("{topic}.sample");
    prepare(&channel, std::slice::from_ref(&queue)).await;
    let context = PublishContext { telemetry_secret: SECRET.into(), ..Default::default() };
    let handle = PublisherHandle::start(&format!("notifier://?topic={topic}&batch_size=3"), &context).await.unwrap();
    handle.send(Arc::new(batch(7, 100.0)));
    let delivery = handle.shutdown(SAFETY_NET).await;
    assert_eq!((delivery.sent, delivery.dropped), (7, 0));

    let notifications = drain(&channel, &queue, 3).await;
    delete(&channel, &[queue]).await;
    assert_eq!(notifications.len(), 3, "7 samples in batches of 3");
    let mut messages: Vec<Value> = Vec::new();
    for notification in &notifications {
        assert_eq!(notification["event_type"], "telemetry.polling");
        assert_eq!(notification["publisher_id"], "ceilometer.polling");
        assert_eq!(notification["priority"], "SAMPLE");
        assert!(notification["message_id"].as_str().is_some_and(|id| uuid::Uuid::parse_str(id).is_ok()));
        assert!(notification["_unique_id"].as_str().is_some_and(|id| id.len() == 32));
        let timestamp = notification["timestamp"].as_str().unwrap();
        assert!(chrono::NaiveDateTime::parse_from_str(timestamp, "%Y-%m-%d %H:%M:%S%.6f").is_ok(), "{timestamp}");
        messages.extend(notification["payload"]["samples"].as_array().unwrap().iter().cloned());
    }
    assert_eq!(messages.len(), 7);

    let keys = [
        "counter_name",
        "counter_type",
        "counter_unit",
        "counter_volume",
        "message_id",
        "message_signature",
        "monotonic_time",
        "project_id",
        "project_name",
        "resource_id",
        "resource_metadata",
        "source",
        "timestamp",
        "user_id",
        "user_name",
    ];
    for (i, message) in messages.iter().enumerate() {
        let mut found: Vec<&str> = message.as_object().unwrap().keys().map(String::as_str).collect();
        found.sort();
        assert_eq!(found, keys);
        assert_eq!(message["counter_volume"], 100.0 + i as f64);
        assert_eq!(message["counter_name"], if i % 2 == 0 { "cpu" } else { "memory.usage" });
        assert_eq!(message["counter_type"], if i % 2 == 0 { "cumulative" } else { "gauge" });
        assert_eq!(message["resource_id"], if i % 3 == 0 { "vm-a" } else { "vm-b" });
        assert_eq!(message["user_id"], if i % 3 == 0 { json!("user-1") } else { Value::Null });
        assert_eq!(message["project_id"], "project-1");
        assert_eq!(message["source"], "openstack");
        assert_eq!(message["resource_metadata"]["flavor"]["ram"], 2048);
        assert!(message["timestamp"].as_str().unwrap().starts_with("2026-"));
    }
    assert_eq!(python_verifies(&messages, SECRET), vec![true; 7], "Python recomputes every signature");
    assert_eq!(python_verifies(&messages, "another secret"), vec![false; 7], "a wrong secret fails them");
}

#[tokio::test(flavor = "multi_thread")]
async fn per_meter_topics_carry_only_their_meter() {
    let channel = broker().await;
    let topic = topic();
    let queues = [format!("{topic}.sample"), format!("{topic}.cpu.sample"), format!("{topic}.memory.usage.sample")];
    prepare(&channel, &queues).await;
    let handle =
        PublisherHandle::start(&format!("notifier://?topic={topic}&per_meter_topic=1"), &PublishContext::default())
            .await
            .unwrap();
    handle.send(Arc::new(batch(6, 0.0)));
    assert_eq!(handle.shutdown(SAFETY_NET).await.sent, 6 * 2, "each sample to the topic and its meter's");

    let all = drain(&channel, &queues[0], 1).await;
    let cpu = drain(&channel, &queues[1], 1).await;
    let memory = drain(&channel, &queues[2], 1).await;
    delete(&channel, &queues).await;
    let names = |n: &[Value]| -> Vec<String> {
        n.iter()
            .flat_map(|n| n["payload"]["samples"].as_array().unwrap().clone())
            .map(|s| s["counter_name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&all).len(), 6);
    assert_eq!(names(&cpu), vec!["cpu"; 3]);
    assert_eq!(names(&memory), vec!["memory.usage"; 3]);
    let unsigned = &all[0]["payload"]["samples"][0]["message_signature"];
    assert_eq!(unsigned, "", "no secret, no signature");
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + SAFETY_NET;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The broker becomes unreachable (through a proxy the test cuts), eight batches
/// arrive, the `queue` policy keeps the newest five and drops exactly the three
/// oldest; the broker comes back, the publisher reconnects and delivers the five.
#[tokio::test(flavor = "multi_thread")]
async fn the_queue_policy_loses_nothing_within_its_bound_across_an_outage() {
    let channel = broker().await;
    let proxy = Proxy::start().await;
    let topic = topic();
    let queue = format!("{topic}.sample");
    prepare(&channel, std::slice::from_ref(&queue)).await;
    let url = format!(
        "notifier://guest:guest@127.0.0.1:{}/?topic={topic}&policy=queue&max_queue_length=5&batch_size=10",
        proxy.port
    );
    let handle =
        PublisherHandle::start(&url, &PublishContext { telemetry_secret: SECRET.into(), ..Default::default() })
            .await
            .unwrap();

    handle.send(Arc::new(batch(10, 0.0)));
    assert_eq!(drain(&channel, &queue, 1).await.len(), 1, "delivered before the outage");
    // Its confirm must be in too: a batch still in flight at the cut counts as unsent
    // (delivery is at least once) and would take a place in the queue.
    wait_until("the publisher has the broker's confirm", || handle.stats().published.load(Ordering::Relaxed) >= 10)
        .await;

    proxy.cut();
    // The first batch after the cut goes into a connection that looks alive; once the
    // publisher has found the broker gone (it tries to reconnect), nothing is in flight
    // and the queue's bound decides alone.
    handle.send(Arc::new(batch(10, 1000.0)));
    wait_until("the publisher tries to reconnect", || proxy.refused.load(Ordering::SeqCst) >= 1).await;
    for b in 2..=8 {
        handle.send(Arc::new(batch(10, 1000.0 * b as f64)));
    }
    wait_until("the three oldest batches are dropped", || handle.stats().dropped.load(Ordering::Relaxed) >= 30).await;
    assert_eq!(handle.stats().dropped.load(Ordering::Relaxed), 30, "exactly the overflow");
    assert_eq!(handle.stats().published.load(Ordering::Relaxed), 10);

    proxy.restore();
    let delivered = drain(&channel, &queue, 5).await;
    delete(&channel, &[queue]).await;
    let firsts: Vec<f64> =
        delivered.iter().map(|n| n["payload"]["samples"][0]["counter_volume"].as_f64().unwrap()).collect();
    assert_eq!(firsts, vec![4000.0, 5000.0, 6000.0, 7000.0, 8000.0], "the newest five, in order");
    let samples: Vec<Value> =
        delivered.iter().flat_map(|n| n["payload"]["samples"].as_array().unwrap().clone()).collect();
    assert_eq!(samples.len(), 50);
    assert!(python_verifies(&samples, SECRET).iter().all(|ok| *ok));

    let delivery = handle.shutdown(SAFETY_NET).await;
    assert_eq!((delivery.sent, delivery.dropped), (60, 30));
}

/// `ssl=1`: the notifier speaks AMQP over TLS, verifying the broker's certificate with
/// `ca_certs`. The test puts a TLS endpoint (its own certificate authority) in front
/// of the broker.
#[tokio::test(flavor = "multi_thread")]
async fn the_notifier_speaks_tls_and_verifies_the_broker() {
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let channel = broker().await;
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, certified.cert.pem()).unwrap();
    let config = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(certified.cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der())),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handshakes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = handshakes.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (acceptor, counted) = (acceptor.clone(), counted.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(client).await else { return };
                counted.fetch_add(1, Ordering::SeqCst);
                if let Ok(mut broker) = TcpStream::connect(BROKER).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut broker).await;
                }
            });
        }
    });

    let topic = topic();
    let queue = format!("{topic}.sample");
    prepare(&channel, std::slice::from_ref(&queue)).await;
    let url = format!("notifier://guest:guest@localhost:{port}/?ssl=1&ca_certs={}&topic={topic}", ca.display());
    let handle = PublisherHandle::start(&url, &PublishContext::default()).await.unwrap();
    handle.send(Arc::new(batch(3, 0.0)));
    assert_eq!(handle.shutdown(SAFETY_NET).await.sent, 3);
    assert_eq!(drain(&channel, &queue, 1).await.len(), 1);
    assert!(handshakes.load(Ordering::SeqCst) >= 1, "the notifier went through TLS");

    // Without the right CA the broker is not trusted, and nothing is sent.
    let untrusted = format!("notifier://guest:guest@localhost:{port}/?ssl=1&topic={topic}&policy=drop");
    let handle = PublisherHandle::start(&untrusted, &PublishContext::default()).await.unwrap();
    handle.send(Arc::new(batch(3, 0.0)));
    assert_eq!(handle.shutdown(SAFETY_NET).await, pollen_host::publish::Delivery { sent: 0, dropped: 3 });
    delete(&channel, &[queue]).await;
}

/// A large host's cycle is far more samples than the local queue's bound (1024
/// notifications of 50): with the broker up, none of it is dropped.
#[tokio::test(flavor = "multi_thread")]
async fn a_cycle_larger_than_the_queue_bound_is_sent_whole() {
    let channel = broker().await;
    let topic = topic();
    let queue = format!("{topic}.sample");
    prepare(&channel, std::slice::from_ref(&queue)).await;
    let handle =
        PublisherHandle::start(&format!("notifier://?topic={topic}"), &PublishContext::default()).await.unwrap();
    let samples = 120_000;
    handle.send(Arc::new(batch(samples, 1.0)));
    let delivery = handle.shutdown(SAFETY_NET).await;
    assert_eq!((delivery.sent, delivery.dropped), (samples as u64, 0));
    let notifications = drain(&channel, &queue, samples / 50).await;
    delete(&channel, &[queue]).await;
    let received: usize = notifications.iter().map(|n| n["payload"]["samples"].as_array().map_or(0, Vec::len)).sum();
    assert_eq!(received, samples);
}
