//! UDP, TCP, HTTP and file publishing, received and decoded on loopback.

mod common;

use common::{batch, SAFETY_NET};
use pollen_host::publish::{PublishContext, PublisherHandle};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

const SECRET: &str = "wire-secret";

fn context() -> PublishContext {
    PublishContext { telemetry_secret: SECRET.into(), ..Default::default() }
}

async fn udp_round_trip(bind: &str, url_host: &str) {
    let receiver = UdpSocket::bind(bind).await.unwrap();
    let port = receiver.local_addr().unwrap().port();
    let handle = PublisherHandle::start(&format!("udp://{url_host}:{port}"), &context()).await.unwrap();
    handle.send(Arc::new(batch(5, 10.0)));
    let mut received = Vec::new();
    let mut buffer = vec![0u8; 65536];
    for _ in 0..5 {
        let (length, _) = tokio::time::timeout(SAFETY_NET, receiver.recv_from(&mut buffer)).await.unwrap().unwrap();
        received.push(rmp_serde::from_slice::<Value>(&buffer[..length]).expect("one msgpack message per datagram"));
    }
    assert_eq!(handle.shutdown(SAFETY_NET).await.sent, 5);
    let volumes: Vec<f64> = received.iter().map(|m| m["counter_volume"].as_f64().unwrap()).collect();
    assert_eq!(volumes, vec![10.0, 11.0, 12.0, 13.0, 14.0]);
    assert_eq!(received[0]["counter_name"], "cpu");
    assert_eq!(received[0]["resource_metadata"]["flavor"]["name"], "m1.small");
    assert_eq!(received[0]["message_signature"].as_str().map(str::len), Some(64), "signed");
}

#[tokio::test]
async fn udp_sends_one_msgpack_datagram_per_sample_over_ipv4() {
    udp_round_trip("127.0.0.1:0", "127.0.0.1").await;
}

#[tokio::test]
async fn udp_sends_one_msgpack_datagram_per_sample_over_ipv6() {
    udp_round_trip("[::1]:0", "[::1]").await;
}

/// Reads length-prefixed msgpack frames until `count` arrived, the peer closes, or
/// none comes for 10 s.
async fn read_frames(stream: &mut tokio::net::TcpStream, count: usize) -> Vec<Value> {
    let mut frames = Vec::new();
    while frames.len() < count {
        let mut length = [0u8; 8];
        match tokio::time::timeout(SAFETY_NET, stream.read_exact(&mut length)).await {
            Ok(Ok(_)) => {}
            _ => break,
        }
        let mut frame = vec![0u8; u64::from_le_bytes(length) as usize];
        stream.read_exact(&mut frame).await.unwrap();
        frames.push(rmp_serde::from_slice(&frame).unwrap());
    }
    frames
}

#[tokio::test]
async fn tcp_sends_length_prefixed_msgpack_and_reconnects() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let handle = PublisherHandle::start(&format!("tcp://{address}"), &context()).await.unwrap();

    handle.send(Arc::new(batch(3, 0.0)));
    let (mut first, _) = listener.accept().await.unwrap();
    let frames = read_frames(&mut first, 3).await;
    assert_eq!(frames.iter().map(|f| f["counter_volume"].as_f64().unwrap()).collect::<Vec<_>>(), vec![0.0, 1.0, 2.0]);

    // The collector goes away; what follows is held and delivered on a new connection.
    drop(first);
    drop(listener);
    handle.send(Arc::new(batch(2, 100.0)));
    handle.send(Arc::new(batch(2, 200.0)));
    // (Whether the publisher tries before the collector is back or after, nothing may
    // be lost: this pause only makes the first case the likely one.)
    tokio::time::sleep(Duration::from_millis(300)).await;
    let listener = TcpListener::bind(address).await.unwrap();
    let (mut second, _) = tokio::time::timeout(SAFETY_NET, listener.accept()).await.expect("reconnects").unwrap();
    let frames = read_frames(&mut second, 4).await;
    let volumes: Vec<f64> = frames.iter().map(|f| f["counter_volume"].as_f64().unwrap()).collect();
    assert_eq!(volumes, vec![100.0, 101.0, 200.0, 201.0], "nothing written into the closed connection");
    let delivery = handle.shutdown(SAFETY_NET).await;
    assert_eq!((delivery.sent, delivery.dropped), (7, 0));
}

/// A one-request-at-a-time HTTP server: answers each request with the next status
/// of `statuses` (200 when they run out) and hands the bodies it got to the test.
async fn http_server(statuses: Vec<u16>) -> (String, tokio::sync::mpsc::UnboundedReceiver<(String, Value)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (bodies, received) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut statuses = statuses.into_iter();
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut chunk = [0u8; 8192];
            let (head, body) = loop {
                let read = stream.read(&mut chunk).await.unwrap();
                request.extend_from_slice(&chunk[..read]);
                if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&request[..end]).to_string();
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    while request.len() < end + 4 + length {
                        let read = stream.read(&mut chunk).await.unwrap();
                        request.extend_from_slice(&chunk[..read]);
                    }
                    break (head, request[end + 4..end + 4 + length].to_vec());
                }
            };
            let status = statuses.next().unwrap_or(200);
            let response = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            stream.write_all(response.as_bytes()).await.unwrap();
            let _ = bodies.send((head, serde_json::from_slice(&body).unwrap_or(Value::Null)));
        }
    });
    (format!("http://{address}/samples"), received)
}

#[tokio::test]
async fn http_posts_a_json_batch_and_retries_a_failed_request() {
    let (url, mut received) = http_server(vec![500]).await;
    let handle = PublisherHandle::start(&format!("{url}?max_retries=3&timeout=5&tenant=t1"), &context()).await.unwrap();
    handle.send(Arc::new(batch(4, 1.0)));
    let delivery = handle.shutdown(SAFETY_NET).await;
    assert_eq!((delivery.sent, delivery.dropped), (4, 0));
    let (failed_head, _) = received.recv().await.unwrap();
    let (head, body) = received.recv().await.unwrap();
    assert!(
        failed_head.starts_with("POST /samples?tenant=t1 "),
        "Pollen's options are not sent, others are: {failed_head}"
    );
    assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
    let samples = body.as_array().expect("one JSON array per batch");
    assert_eq!(samples.len(), 4);
    assert_eq!(samples[0]["name"], "cpu");
    assert_eq!(samples[0]["volume"], 1.0);
    assert!(samples[0].get("resource_metadata").is_some());
}

#[tokio::test]
async fn http_without_batching_posts_each_sample_and_counts_what_fails() {
    let (url, mut received) = http_server(vec![200, 503, 503]).await;
    let handle = PublisherHandle::start(&format!("{url}?batch=0&max_retries=1"), &context()).await.unwrap();
    handle.send(Arc::new(batch(3, 7.0)));
    let delivery = handle.shutdown(SAFETY_NET).await;
    assert_eq!((delivery.sent, delivery.dropped), (2, 1), "the sample whose two attempts failed is counted as dropped");
    let mut bodies = Vec::new();
    while let Ok((_, body)) = received.try_recv() {
        bodies.push(body);
    }
    assert!(bodies.iter().all(|b| b.is_object()), "one sample per request");
}

/// Six batches of three samples (volumes 0–2, 10–12, … 50–52) through a `file://`
/// publisher of at most 2000 bytes a file keeping `backups` backups: the folder of
/// `samples.jsonl` and its backups.
async fn rotated_files(backups: u32) -> tempfile::TempDir {
    rotated_files_of(2000, backups).await
}

/// [`rotated_files`] with files of at most `max_bytes`.
async fn rotated_files_of(max_bytes: u64, backups: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("samples.jsonl");
    let url = format!("file://{}?max_bytes={max_bytes}&backup_count={backups}", path.display());
    let handle = PublisherHandle::start(&url, &context()).await.unwrap();
    for round in 0..6 {
        handle.send(Arc::new(batch(3, round as f64 * 10.0)));
    }
    assert_eq!(handle.shutdown(SAFETY_NET).await.sent, 18);
    dir
}

#[tokio::test]
async fn the_file_publisher_rotates_as_python_does() {
    let dir = rotated_files(2).await;
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    let (current, first, second) = (read("samples.jsonl"), read("samples.jsonl.1"), read("samples.jsonl.2"));
    assert!(!dir.path().join("samples.jsonl.3").exists(), "only backup_count backups are kept");
    for text in [&current, &first, &second] {
        assert!(!text.is_empty() && text.len() <= 2000, "each file within max_bytes: {}", text.len());
        for line in text.lines() {
            serde_json::from_str::<Value>(line).expect("whole JSON lines, never cut");
        }
    }
    let newest: Vec<Value> = current.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(newest.last().unwrap()["volume"], 52.0, "the newest sample is in the current file");
}

/// Batches that straddle the bound are cut between lines: with room for every backup,
/// each sample is written once, in order.
#[tokio::test]
async fn the_file_publisher_rotating_loses_and_repeats_no_line() {
    let dir = rotated_files(50).await;
    let files = texts_of(dir.path());
    assert!(files.len() > 2, "it rotated: {:?}", files.keys());
    for (name, text) in &files {
        assert!(text.len() <= 2000 && text.ends_with('\n'), "{name} holds whole lines within max_bytes");
    }
    let volumes: Vec<f64> = lines_oldest_first(&files)
        .into_iter()
        .map(|line| serde_json::from_str::<Value>(line).unwrap()["volume"].as_f64().unwrap())
        .collect();
    let sent: Vec<f64> = (0..6).flat_map(|round| (0..3).map(move |i| f64::from(round * 10 + i))).collect();
    assert_eq!(volumes, sent);
}

/// Every file of `dir` by name, with its text.
fn texts_of(dir: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .map(|path| (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&path).unwrap()))
        .collect()
}

/// The lines of a rotated file and its backups ([`texts_of`]), oldest first: the
/// highest backup number first, the current file (no number) last.
fn lines_oldest_first(files: &std::collections::BTreeMap<String, String>) -> Vec<&str> {
    let number = |name: &str| name.rsplit_once('.').and_then(|(_, n)| n.parse::<u32>().ok()).unwrap_or(0);
    let mut ordered: Vec<(&String, &String)> = files.iter().collect();
    ordered.sort_by_key(|(name, _)| std::cmp::Reverse(number(name)));
    ordered.into_iter().flat_map(|(_, text)| text.lines()).collect()
}

/// Rotation as Ceilometer 27's `file://` publisher does it: `ceilometer/publisher/file.py`
/// logs each sample through `logging.handlers.RotatingFileHandler(path, encoding='utf8',
/// maxBytes=max_bytes, backupCount=backup_count)` (the default format: the message
/// alone). The same lines, given to that handler by the Python of Ceilometer's venv,
/// make the same files; the bound falls exactly on a line's end, where Python already
/// rotates (it rotates when a line would bring the file to `max_bytes` or past it).
#[tokio::test]
async fn the_file_publisher_rotates_into_the_files_ceilometer_makes() {
    let whole = rotated_files_of(u64::MAX / 2, 50).await;
    let text = std::fs::read_to_string(whole.path().join("samples.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let max_bytes: usize = lines[..3].iter().map(|line| line.len() + 1).sum();
    let pollen = texts_of(rotated_files_of(max_bytes as u64, 50).await.path());
    const ROTATE: &str = r#"
import json, logging, logging.handlers, sys
rfh = logging.handlers.RotatingFileHandler(sys.argv[1], encoding='utf8', maxBytes=int(sys.argv[2]), backupCount=50)
logger = logging.Logger('publisher.file')
logger.propagate = False
logger.setLevel(logging.INFO)
rfh.setLevel(logging.INFO)
logger.addHandler(rfh)
for line in json.load(sys.stdin):
    logger.info(line)
"#;
    let python_dir = tempfile::tempdir().unwrap();
    let python = common::ceilometer_notification_agent().with_file_name("python");
    let mut python = std::process::Command::new(python)
        .args(["-c", ROTATE, &python_dir.path().join("samples.jsonl").to_string_lossy(), &max_bytes.to_string()])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("Ceilometer's python runs");
    let in_order = lines_oldest_first(&pollen);
    assert_eq!(in_order.len(), 18, "every sample, once");
    std::io::Write::write_all(&mut python.stdin.take().unwrap(), serde_json::to_string(&in_order).unwrap().as_bytes())
        .unwrap();
    assert!(python.wait().unwrap().success());
    assert_eq!(pollen, texts_of(python_dir.path()), "the same files, each with the same lines");
}

/// An address that accepts connections and never answers on them.
async fn stuck_destination() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream); // accepted, never answered
        }
    });
    address
}

/// A destination that never answers fills only its own queue: its overflow is
/// counted, and a healthy publisher beside it gets everything.
#[tokio::test]
async fn a_stuck_publisher_never_holds_up_another() {
    let address = stuck_destination().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("samples.jsonl");
    let stuck =
        PublisherHandle::start(&format!("http://{address}/?timeout=60&max_retries=0"), &context()).await.unwrap();
    let healthy = PublisherHandle::start(&format!("file://{}", path.display()), &context()).await.unwrap();
    for _ in 0..100 {
        let batch = Arc::new(batch(3, 0.0));
        stuck.send(batch.clone());
        // The healthy publisher keeps up (the test waits for room), whatever the stuck one does.
        tokio::time::timeout(SAFETY_NET, healthy.send_waiting(batch)).await.expect("never held up");
    }
    let refused = stuck.stats().dropped.load(std::sync::atomic::Ordering::Relaxed);
    assert!(refused >= 3 * 30, "the stuck publisher's full queue refuses batches, counted: {refused}");
    assert_eq!(healthy.shutdown(SAFETY_NET).await, pollen_host::publish::Delivery { sent: 300, dropped: 0 });
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 300);
    let stuck = stuck.shutdown(Duration::from_millis(500)).await;
    assert_eq!((stuck.sent, stuck.dropped), (0, 300), "every sample of the stuck publisher is accounted as lost");
}

/// A publisher's queue is bounded in samples as well as batches: a stuck destination
/// fed batches of 400,000 samples holds about a million of them, not 64 batches' worth
/// (a transformer chain amplifying a million-fold reached 383 MiB so).
#[tokio::test]
async fn a_publisher_queue_is_bounded_in_samples_too() {
    use pollen_host::publish::QUEUE_SAMPLES;
    let address = stuck_destination().await;
    let stuck =
        PublisherHandle::start(&format!("http://{address}/?timeout=60&max_retries=0"), &context()).await.unwrap();
    let big = Arc::new(batch(400_000, 0.0));
    for _ in 0..10 {
        stuck.send(big.clone());
    }
    let accepted = stuck.stats().accepted.load(std::sync::atomic::Ordering::Relaxed);
    let refused = stuck.stats().refused.load(std::sync::atomic::Ordering::Relaxed);
    // At most one batch in the publisher's hands and a million samples queued.
    assert!(accepted <= QUEUE_SAMPLES + 400_000, "{accepted} samples taken in");
    assert_eq!(accepted + refused, 4_000_000);
    let lost = stuck.shutdown(Duration::from_millis(500)).await;
    assert_eq!(lost.dropped, 4_000_000, "every sample is accounted as lost");
}
