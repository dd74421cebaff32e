//! `policy=disk` end to end: `pollen run` publishing to the real RabbitMQ through a proxy
//! the test cuts; what the agent polled (its `file://` publisher is the record) reaches
//! the broker, in order, across a minute's outage and a SIGKILL; a full queue drops its
//! oldest; a segment torn mid-record loses that record alone, counted.

mod common;

use common::*;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

const COMPUTE: &[&str] = &["local_instances", "cpu", "memory", "instance", "disk", "network"];

/// How long the broker is away in the outage test (the minute).
const OUTAGE: Duration = Duration::from_secs(60);

fn workspace() -> Workspace {
    Workspace::new(&COMPUTE.iter().map(|name| builtin(name)).collect::<Vec<_>>())
}

/// A pipeline polling every meter every second into `polled.jsonl` and into the
/// broker (through `port`) with `policy=disk`.
fn write_pipeline(workspace: &Workspace, agent_extra: &str, port: u16, topic: &str, options: &str) {
    workspace.write_pipeline(
        &format!("  state_dir: state\n{agent_extra}"),
        &format!(
            "sources:\n  - name: all\n    interval: 1\n    meters: ['*']\n    sinks: [out]\n\
             sinks:\n  - name: out\n    publishers:\n      - file://{}\n      \
             - notifier://guest:guest@127.0.0.1:{port}/?topic={topic}&batch_size=20&policy=disk{options}\n",
            workspace.path().join("polled.jsonl").display()
        ),
    );
}

/// A sample as both wire formats carry it: meter, resource, time, volume.
type Key = (String, String, String, String);

fn polled_key(sample: &Value) -> Key {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (text(&sample["name"]), text(&sample["resource_id"]), text(&sample["timestamp"]), sample["volume"].to_string())
}

/// The samples of the notifications taken from `queue`, in the order they came.
fn delivered(queue: &str) -> Vec<Key> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    take_all(queue)
        .iter()
        .flat_map(|(body, _)| {
            let envelope: Value = serde_json::from_slice(body).expect("a notification is JSON");
            let message: Value = serde_json::from_str(envelope["oslo.message"].as_str().expect("an oslo envelope"))
                .expect("its message");
            message["payload"]["samples"].as_array().expect("samples").clone()
        })
        .map(|s| {
            (text(&s["counter_name"]), text(&s["resource_id"]), text(&s["timestamp"]), s["counter_volume"].to_string())
        })
        .collect()
}

fn polled(workspace: &Workspace) -> Vec<Value> {
    std::fs::read_to_string(workspace.path().join("polled.jsonl")).map(|t| json_lines(&t)).unwrap_or_default()
}

fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for queue in std::fs::read_dir(dir.join("queue")).expect("the queue folder") {
        for file in std::fs::read_dir(queue.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|e| e == "seg") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The broker away for a minute while the agent polls every second, the agent
/// SIGKILLed halfway and started again: every sample it had queued is delivered once
/// the broker is back, in order, and nothing it did not poll.
#[test]
fn a_minute_without_the_broker_and_a_sigkill_lose_nothing() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let proxy = runtime.block_on(BrokerProxy::start());
    let workspace = workspace();
    let topic = unique_queue("disk");
    let queue = format!("{topic}.sample");
    fill_queue(&queue, &[]);
    write_pipeline(&workspace, "", proxy.port, &topic, "");

    let mut first = Running::start(&workspace, &[], workspace.path().join("polled.jsonl"));
    wait_until("the broker has samples", || ready_in(&queue) > 0, || first.log());
    proxy.cut();
    let cut_at = Instant::now();
    first.wait_for_log("samples wait in the disk queue", 1);
    // Half the outage, polling all along; then a crash.
    let cycles = first.logged("cycle done");
    first.wait(&format!("{OUTAGE:?}/2 of outage"), |agent| {
        cut_at.elapsed() >= OUTAGE / 2 && agent.logged("cycle done") >= cycles + 3
    });
    first.kill();
    // What the file holds of the last cycle may not have reached the queue before the
    // kill (both publishers take each batch at the same time): all before it did.
    let before_kill = polled(&workspace);
    let last = before_kill.iter().filter_map(|s| s["timestamp"].as_str()).max().unwrap().to_string();
    let last_cycle = chrono_seconds(&last) - 0.5;
    let queued_before_kill: Vec<Key> = before_kill
        .iter()
        .filter(|s| chrono_seconds(s["timestamp"].as_str().unwrap()) < last_cycle)
        .map(polled_key)
        .collect();
    assert!(queued_before_kill.len() > 100, "the first run polled: {}", queued_before_kill.len());

    let mut second = Running::start(&workspace, &[], workspace.path().join("polled.jsonl"));
    second.wait_for_log("disk queue opened with samples from an earlier run", 1);
    second.wait("the rest of the outage", |_| cut_at.elapsed() >= OUTAGE);
    proxy.restore();
    second.wait_for_log("peer reachable again", 1);
    second.wait_for_log("everything queued was sent", 1);
    let cycles = second.logged("cycle done");
    second.wait_for_log("cycle done", cycles + 2);
    let log = second.stop();
    assert!(!log.contains("they are lost") && !log.contains("stay in the disk queue"), "{log}");

    let sent = delivered(&queue);
    delete_queues(&[&queue]);
    let sent_set: HashSet<&Key> = sent.iter().collect();
    let all_polled: HashSet<Key> = polled(&workspace).iter().map(polled_key).collect();
    let second_run: Vec<Key> = polled(&workspace).iter().skip(before_kill.len()).map(polled_key).collect();
    let missing: Vec<&Key> = queued_before_kill.iter().chain(&second_run).filter(|k| !sent_set.contains(k)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} samples lost, e.g. {:?}",
        missing.len(),
        all_polled.len(),
        &missing[..3.min(missing.len())]
    );
    let invented: Vec<&Key> = sent.iter().filter(|k| !all_polled.contains(*k)).collect();
    assert!(invented.is_empty(), "delivered but never polled: {:?}", &invented[..3.min(invented.len())]);
    // In order: each series' samples arrive oldest first (a record sent again after a
    // failure repeats samples already seen; their first arrival counts).
    let (mut seen, mut latest) = (HashSet::new(), HashMap::new());
    for key in &sent {
        if !seen.insert(key) {
            continue;
        }
        let series = (&key.0, &key.1);
        if let Some(previous) = latest.insert(series, &key.2) {
            assert!(previous < &key.2, "{series:?}: {} after {previous}", key.2);
        }
    }
}

/// Seconds since the epoch of an ISO 8601 time as the samples carry it.
fn chrono_seconds(text: &str) -> f64 {
    let time = text.trim_end_matches("+00:00").trim_end_matches('Z');
    let (date, clock) = time.split_once('T').expect("date and time");
    let days: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let parts: Vec<f64> = clock.split(':').map(|p| p.parse().unwrap()).collect();
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m, d) = (days[0] - i64::from(days[1] <= 2), days[1], days[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let day = era * 146_097 + doe - 719_468;
    day as f64 * 86_400.0 + parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
}

/// The samples of the records of a segment file from the one holding `offset` on:
/// what cutting the file there loses.
fn samples_from(segment: &[u8], offset: usize) -> (u64, usize) {
    let (mut at, mut lost, mut records) = (0usize, 0u64, 0usize);
    while at + 12 <= segment.len() {
        let len = u32::from_le_bytes(segment[at..at + 4].try_into().unwrap()) as usize;
        let samples = u32::from_le_bytes(segment[at + 4..at + 8].try_into().unwrap());
        let end = at + 12 + len;
        if end > offset {
            lost += u64::from(samples);
            records += 1;
        }
        at = end;
    }
    (lost, records)
}

/// A generated node of 200 domains, the broker away from the start, a queue of 2 MiB:
/// the queue drops its oldest segments and stays within its bound; stopped, the rest
/// stays on disk. One segment cut in the middle of its record, the agent started with
/// the broker back delivers every other queued sample, and counts the torn record's.
#[test]
fn a_full_queue_drops_its_oldest_and_a_torn_record_loses_itself_alone() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let proxy = runtime.block_on(BrokerProxy::start());
    proxy.cut();
    let workspace = workspace();
    let node = workspace.path().join("node.xml");
    pollen_testkit::NodeSpec::with_domains(200).write(&node).expect("node file");
    let topic = unique_queue("disk-full");
    let queue = format!("{topic}.sample");
    fill_queue(&queue, &[]);
    let agent = format!("  libvirt_uri: test://{}\n", node.display());
    write_pipeline(&workspace, &agent, proxy.port, &topic, "&max_disk_mib=2");

    let mut first = Running::start(&workspace, &[], workspace.path().join("polled.jsonl"));
    first.wait_for_log("disk queue full; its oldest samples dropped", 1);
    let on_disk: u64 =
        segments(&workspace.path().join("state")).iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
    assert!(on_disk <= 2 << 20, "{on_disk} bytes of segments, over the 2 MiB bound");
    let log = first.stop();
    let kept: u64 = log
        .lines()
        .find(|l| l.contains("samples stay in the disk queue for the next start"))
        .and_then(|l| l.split("samples=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of samples kept on disk:\n{log}"));
    let last_polled =
        polled(&workspace).iter().filter_map(|s| s["timestamp"].as_str().map(String::from)).max().unwrap();

    // Cut the middle segment in the middle of its record.
    let all = segments(&workspace.path().join("state"));
    assert!(all.len() >= 3, "segments: {all:?}");
    let torn = &all[all.len() / 2];
    let contents = std::fs::read(torn).unwrap();
    let (lost, records) = samples_from(&contents, contents.len() / 2);
    assert_eq!(records, 1, "one record in {} (records are larger than segments here)", torn.display());
    std::fs::OpenOptions::new().write(true).open(torn).unwrap().set_len(contents.len() as u64 / 2).unwrap();

    proxy.restore();
    let mut second = Running::start(&workspace, &[], workspace.path().join("polled.jsonl"));
    second.wait_for_log("torn or damaged records", 1);
    second.wait_for_log("everything queued was sent", 1);
    let log = second.stop();
    let torn_line = log.lines().find(|l| l.contains("torn or damaged records")).unwrap();
    assert!(torn_line.contains(&format!("samples={lost}")), "{torn_line}");
    let stopped = log.lines().find(|l| l.contains("publisher stopped") && l.contains("notifier")).unwrap();
    assert!(stopped.contains(&format!("dropped={lost}")), "the torn record's samples are counted: {stopped}");

    let sent = delivered(&queue);
    delete_queues(&[&queue]);
    let first_run: Vec<&Key> = sent.iter().filter(|k| k.2 <= last_polled).collect();
    assert_eq!(first_run.len() as u64, kept - lost, "every queued sample but the torn record's, once");
    let polled_keys: HashSet<Key> = polled(&workspace).iter().map(polled_key).collect();
    assert!(first_run.iter().all(|k| polled_keys.contains(*k)), "only samples the agent polled");
}
