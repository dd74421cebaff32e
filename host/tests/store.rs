//! The collector storing (issue 19): `pollen run` → RabbitMQ → `pollen collect` →
//! PostgreSQL, every sample exactly once with its fields intact; the collector killed
//! mid-batch, PostgreSQL restarted, the broker connection cut: nothing lost, nothing
//! stored twice; unreadable and poisonous messages dead-lettered; SQLite as the
//! embedded default; retention; a schema from a newer Pollen refused. Against the
//! machine's RabbitMQ and PostgreSQL (and a PostgreSQL of the test's own where it is
//! stopped): a test that cannot reach them fails, it never skips.

mod common;

use common::*;
use serde_json::Value;

/// What must arrive unchanged: everything but the id (Ceilometer's `message_id`
/// travels apart from the file publisher's `id`), the volume as a float.
fn comparable(mut sample: Value) -> Value {
    sample.as_object_mut().unwrap().remove("id");
    with_float_volume(sample)
}

fn sorted(mut samples: Vec<Value>) -> Vec<Value> {
    samples.sort_by_key(|v| v.to_string());
    samples
}

/// A queue of `samples` signed samples, and a collector consuming it (through the input
/// `input` names for the queue) into `database`, once it has stored the first ones;
/// its folder, the queue, the collector.
fn ingesting(
    database: &TestDatabase,
    what: &str,
    samples: usize,
    input: impl Fn(&str) -> String,
) -> (tempfile::TempDir, String, Running) {
    let queue = unique_queue(what);
    fill_queue(&queue, &signed_notifications(samples, SECRET));
    let dir = tempfile::tempdir().unwrap();
    collector_file(dir.path(), &input(&queue), &database.url(), "");
    let mut collector = start_collector(dir.path(), "collector input consuming");
    collector.wait("the first samples stored", |_| database.stored() > 0);
    (dir, queue, collector)
}

/// Waits until `samples` are stored, stops the collector, and checks each is stored
/// once and every message of `queue` was acknowledged; deletes the test's queues.
fn every_sample_stored_once(database: &TestDatabase, samples: usize, collector: Running, queue: &str) {
    wait_stored(database, samples as i64, &collector);
    let log = collector.stop();
    assert_eq!(database.stored(), samples as i64, "{log}");
    assert_eq!(database.number("SELECT count(DISTINCT message_id) FROM samples"), samples as i64, "{log}");
    assert_eq!(ready_in(queue), 0, "every message acknowledged: {log}");
    delete_queues(&[queue, &format!("{queue}.dead")]);
}

fn amqp_input(queue: &str, extra: &str) -> String {
    format!("amqp://guest:guest@127.0.0.1:5672/?queues={queue}&dead_letter={queue}.dead{extra}")
}

#[test]
fn an_agent_s_samples_are_stored_exactly_once_through_rabbitmq_into_postgresql() {
    let database = TestDatabase::create();
    let topic = unique_queue("e2e");
    let queue = format!("{topic}.sample");
    let dir = tempfile::tempdir().unwrap();
    collector_file(dir.path(), &amqp_input(&queue, ""), &database.url(), "");
    let collector = start_collector(dir.path(), "collector input consuming");
    let sent = agent_sends_two_cycles(&format!("'notifier://?topic={topic}'"), SECRET);

    wait_stored(&database, sent.len() as i64, &collector);
    let stderr = collector.stop();
    assert_eq!(database.stored(), sent.len() as i64, "exactly once: {stderr}");
    assert_eq!(database.number("SELECT count(DISTINCT message_id) FROM samples"), sent.len() as i64);
    let stored = sorted(database.samples());
    let expected = sorted(sent.into_iter().map(comparable).collect());
    for (got, want) in stored.iter().zip(&expected) {
        assert_eq!(got, want, "every field intact");
    }
    assert!(stderr.contains("requeued=0") && stderr.contains("dead_lettered=0"), "{stderr}");
    assert_eq!(ready_in(&queue), 0, "every message acknowledged");
    delete_queues(&[&queue, &format!("{queue}.dead")]);
}

/// Every message sent twice (some again after their first copy was stored, some in
/// the same batch as it), into PostgreSQL and SQLite alike: each sample is stored once,
/// every message acknowledged, none requeued or dead-lettered.
#[test]
fn messages_delivered_twice_are_stored_once_in_postgresql_and_sqlite() {
    const SAMPLES: usize = 3_000;
    let database = TestDatabase::create();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("samples.db");
    let bodies = signed_notifications(SAMPLES, SECRET);
    // The first half, then everything: the first half's second copies come after
    // their first were stored; each of the second half's copies is in the batch of
    // its twin.
    let mut twice: Vec<Vec<u8>> = bodies[..bodies.len() / 2].to_vec();
    for body in &bodies {
        twice.push(body.clone());
        if twice.len() > bodies.len() {
            twice.push(body.clone());
        }
    }
    for publisher in [database.url(), format!("sqlite://{}", sqlite.display())] {
        let queue = unique_queue("twice");
        fill_queue(&queue, &twice);
        collector_file(dir.path(), &amqp_input(&queue, ""), &publisher, "");
        let mut collector = start_collector(dir.path(), "collector input consuming");
        let stored = || {
            if publisher.starts_with("sqlite") {
                rusqlite::Connection::open(&sqlite)
                    .and_then(|c| c.query_row("SELECT count(*) FROM samples", [], |r| r.get::<_, i64>(0)))
                    .unwrap_or(0)
            } else {
                database.stored()
            }
        };
        collector.wait("every sample stored", |_| stored() >= SAMPLES as i64);
        let log = collector.stop();
        assert_eq!(stored(), SAMPLES as i64, "{publisher}: each sample once: {log}");
        assert!(log.contains("requeued=0") && log.contains("dead_lettered=0"), "{publisher}: {log}");
        assert!(!log.contains("sample dropped"), "a second copy is skipped, not refused: {log}");
        assert_eq!(ready_in(&queue), 0, "{publisher}: every message acknowledged: {log}");
        delete_queues(&[&queue, &format!("{queue}.dead")]);
    }
}

/// 40,000 samples wait in the queue; the collector is SIGKILLed as soon as the first
/// are stored, then started again: every sample is stored once, the queue is empty.
#[test]
fn a_collector_killed_mid_ingest_loses_nothing_and_stores_nothing_twice() {
    const SAMPLES: usize = 40_000;
    let database = TestDatabase::create();
    let (dir, queue, collector) = ingesting(&database, "killed", SAMPLES, |queue| amqp_input(queue, ""));
    let log = collector.kill();
    let at_kill = database.stored();
    assert!(at_kill < SAMPLES as i64, "killed before the end ({at_kill} stored): {log}");

    let collector = start_collector(dir.path(), "collector input consuming");
    every_sample_stored_once(&database, SAMPLES, collector, &queue);
}

/// PostgreSQL (a server of the test's own) stops during ingest and starts again: the
/// batches wait, the messages stay unacknowledged, and every sample is stored once.
#[test]
fn postgresql_restarted_during_ingest_loses_nothing_and_stores_nothing_twice() {
    const SAMPLES: usize = 30_000;
    let server = OwnPostgres::start();
    let database = TestDatabase::create_on(server.port);
    let (_dir, queue, mut collector) =
        ingesting(&database, "pg-restart", SAMPLES, |queue| amqp_input(queue, "&prefetch=20"));
    server.stop();
    collector.wait_for_log("database unreachable; the batch waits", 1);
    assert!(ready_in(&queue) > 0, "messages wait in the queue while the database is away");
    server.start_again();
    collector.wait_for_log("database reachable again", 1);
    every_sample_stored_once(&database, SAMPLES, collector, &queue);
}

/// The collector's connection to the broker is cut mid-ingest (a proxy in front of
/// RabbitMQ, so the broker stays up for the other tests): it reconnects, what was
/// delivered and not acknowledged comes again, and every sample is stored once.
#[test]
fn the_broker_connection_cut_mid_ingest_loses_nothing_and_stores_nothing_twice() {
    const SAMPLES: usize = 30_000;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let proxy = runtime.block_on(BrokerProxy::start());
    let database = TestDatabase::create();
    let (_dir, queue, mut collector) = ingesting(&database, "broker-cut", SAMPLES, |queue| {
        format!("amqp://guest:guest@127.0.0.1:{}/?queues={queue}&dead_letter={queue}.dead&prefetch=20", proxy.port)
    });
    runtime.block_on(async { proxy.cut() });
    collector.wait_for_log("reconnecting", 1);
    runtime.block_on(async { proxy.restore() });
    // Consuming again, whether its first try after the cut was refused or (on a busy
    // machine, the proxy accepting late) went through once the proxy was restored.
    collector.wait_for_log("collector input consuming", 2);
    every_sample_stored_once(&database, SAMPLES, collector, &queue);
}

/// A message that is not a notification goes to the dead-letter queue at once; one
/// whose sample PostgreSQL refuses (a NUL in its metadata) fails, is retried alone
/// `max_attempts` times and then dead-lettered, while its good sample and every other
/// message are stored; forged samples are dropped, never stored.
#[test]
fn unreadable_and_poisonous_messages_go_to_the_dead_letter_queue_and_hold_nothing_back() {
    let database = TestDatabase::create();
    let queue = unique_queue("poison");
    let dead = format!("{queue}.dead");
    let good = signed_notifications(500, SECRET);
    let forged = signed_notifications(50, "not the secret");
    // Two samples in one message: a good one and one whose metadata has a NUL.
    let mut poison: Value = serde_json::from_slice(&signed_notifications(2, SECRET)[0]).unwrap();
    let mut inner: Value = serde_json::from_str(poison["oslo.message"].as_str().unwrap()).unwrap();
    let bad = &mut inner["payload"]["samples"][1];
    bad["resource_metadata"]["display_name"] = Value::String("nul\u{0}here".into());
    bad["resource_id"] = Value::String("poisoned".into());
    let fields = bad.as_object_mut().unwrap();
    let signature = pollen_host::publish::signature::compute(fields, SECRET);
    fields.insert("message_signature".into(), Value::String(signature));
    poison["oslo.message"] = Value::String(inner.to_string());
    let mut bodies = vec![b"{not json".to_vec(), serde_json::to_vec(&poison).unwrap()];
    bodies.extend(forged);
    bodies.extend(good);
    fill_queue(&queue, &bodies);

    let dir = tempfile::tempdir().unwrap();
    collector_file(dir.path(), &amqp_input(&queue, "&max_attempts=3"), &database.url(), "");
    let mut collector = start_collector(dir.path(), "collector input consuming");
    collector.wait("both bad messages dead-lettered", |_| ready_in(&dead) >= 2);
    wait_stored(&database, 501, &collector);
    let log = collector.stop();
    assert_eq!(database.stored(), 501, "the 500 good and the poison message's good sample: {log}");
    assert_eq!(database.number("SELECT count(*) FROM resources WHERE resource_id = 'poisoned'"), 0);
    let dead_letters = take_all(&dead);
    assert_eq!(dead_letters.len(), 2, "{dead_letters:?}");
    assert_eq!(dead_letters[0].0, b"{not json", "the body as it came");
    assert!(dead_letters[0].1.contains("not JSON"), "{}", dead_letters[0].1);
    assert!(dead_letters[1].1.contains("failed 3 times"), "{}", dead_letters[1].1);
    assert!(log.contains("rejected=50"), "the forged samples counted: {log}");
    assert!(log.contains("sample dropped") && log.contains("resource=poisoned"), "{log}");
    assert_eq!(ready_in(&queue), 0);
    delete_queues(&[&queue, &dead]);
}

/// `pollen collect` with no file stores what comes over `udp://127.0.0.1:4952`
/// into `samples.db` in the state directory (WAL mode), every field intact.
#[test]
fn with_no_file_the_collector_stores_into_sqlite_in_its_state_directory() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut command = pollen_command();
    command.args(["collect", "--log", "info"]).current_dir(dir.path()).env("POLLEN_STATE_DIR", &state);
    let mut collector = Running::spawn(command, dir.path().join("unused"));
    collector.wait_for_log("collector input listening", 1);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let messages = pollen_host::publish::metering::msgpack_messages(&batch(300, 1.0), "");
    let path = state.join("samples.db");
    // Fifty at a time, each stored before the next: datagrams beyond a socket's
    // buffer are lost, whoever receives them.
    for (part, messages) in messages.chunks(50).enumerate() {
        for message in messages {
            socket.send_to(message, "127.0.0.1:4952").unwrap();
        }
        let want = (part as i64 + 1) * 50;
        collector.wait(&format!("{want} samples in samples.db"), |_| sqlite_count(&path) >= want);
    }
    let log = collector.stop();
    assert_eq!(sqlite_count(&path), 300, "{log}");
    let connection = rusqlite::Connection::open(&path).unwrap();
    let mode: String = connection.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    let (name, unit, volume, resource, metadata): (String, String, f64, String, String) = connection
        .query_row(
            "SELECT m.name, m.unit, s.volume, r.resource_id, r.metadata FROM samples s
             JOIN meters m ON m.id = s.meter_id JOIN resources r ON r.id = s.resource_version
             ORDER BY s.volume LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!((name.as_str(), unit.as_str(), volume), ("cpu", "ns", 1.0));
    assert_eq!(resource, "vm-a");
    let metadata: Value = serde_json::from_str(&metadata).unwrap();
    assert!(metadata.is_object(), "{metadata}");
    let version: u32 =
        connection.query_row("SELECT max(version) FROM pollen_schema_migrations", [], |r| r.get(0)).unwrap();
    assert!(version >= 1);
}

/// Retention at start: a `*` rule of a day drops PostgreSQL's partitions older than
/// that, and a shorter rule deletes one meter's older samples; on SQLite the same
/// samples are deleted. Meters no rule covers are kept.
#[test]
fn retention_drops_old_partitions_and_deletes_what_outlived_its_meter_s_time_to_live() {
    let database = TestDatabase::create();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("samples.db");
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let text = format!(
        "collector:\n  inputs:\n    - {{url: \"udp://127.0.0.1:{udp}\", sinks: [store]}}\nsinks:\n  - name: store\n    publishers: ['{}', 'sqlite://{}']\n",
        database.url(),
        sqlite.display()
    );
    std::fs::write(dir.path().join("collector.yaml"), &text).unwrap();
    let mut collector = start_collector(dir.path(), "collector input listening");
    // cpu and memory, now, 3 hours ago and 3 days ago.
    let now = pollen_host::sample::now_ns();
    let hour = 3_600_000_000_000i64;
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for (meter, age) in [("cpu", 0), ("cpu", 3), ("cpu", 72), ("memory", 0), ("memory", 3), ("memory", 72)] {
        let mut batch = batch(1, 1.0);
        batch.samples[0].timestamp = now - age * hour;
        batch.samples[0].meter = batch.registry.intern_meter(pollen_host::sample::Meter {
            name: meter.into(),
            kind: pollen_host::sample::MeterType::Gauge,
            unit: "1".into(),
        });
        for message in pollen_host::publish::metering::msgpack_messages(&batch, "") {
            socket.send_to(&message, ("127.0.0.1", udp)).unwrap();
        }
    }
    wait_stored(&database, 6, &collector);
    collector.wait("6 samples in SQLite", |_| sqlite_count(&sqlite) == 6);
    collector.stop();
    let partitions = || database.number("SELECT count(*) FROM pg_inherits WHERE inhparent = 'samples'::regclass");
    assert!(partitions() >= 2, "today's and three days ago's");

    let rules = "  retention:\n    - {meters: memory, time_to_live: 1h}\n    - {meters: '*', time_to_live: 1d}\n";
    std::fs::write(dir.path().join("collector.yaml"), text.replace("collector:\n", &format!("collector:\n{rules}")))
        .unwrap();
    let mut collector = start_collector(dir.path(), "collector input listening");
    collector.wait_for_log("retention: samples past their time to live removed", 2);
    let log = collector.stop();
    // Three days ago's partition dropped (both meters' samples in it); memory's of
    // three hours ago deleted; the rest kept.
    let left: Vec<String> = database
        .query("SELECT m.name || ':' || round(extract(epoch FROM now() - s.timestamp) / 3600) FROM samples s JOIN meters m ON m.id = s.meter_id ORDER BY 1")
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(left, ["cpu:0", "cpu:3", "memory:0"], "{log}");
    assert!(log.contains("partitions=1"), "{log}");
    assert!(log.contains("samples past their time to live removed") && log.contains("samples=3"), "SQLite: {log}");
    assert_eq!(sqlite_count(&sqlite), 3);
    // The resource's span (what `/v2/resources` shows) starts no earlier than what is
    // kept, and no later than its oldest sample kept (3 hours ago).
    let span_hours =
        database.number("SELECT ceil(extract(epoch FROM now() - min(first_timestamp)) / 3600) FROM resource_spans");
    assert!((3..=48).contains(&span_hours), "PostgreSQL: the span starts {span_hours} h ago");
    let first_us: i64 = rusqlite::Connection::open(&sqlite)
        .and_then(|c| c.query_row("SELECT min(first_timestamp) FROM resource_spans", [], |r| r.get(0)))
        .unwrap();
    let sqlite_hours = (now / 1000 - first_us) as f64 / 3.6e9;
    assert!((2.9..=24.1).contains(&sqlite_hours), "SQLite: the span starts {sqlite_hours} h ago");
}

fn sqlite_count(path: &std::path::Path) -> i64 {
    rusqlite::Connection::open(path)
        .and_then(|c| c.query_row("SELECT count(*) FROM samples", [], |r| r.get::<_, i64>(0)))
        .unwrap_or(0)
}

/// A database whose schema a newer Pollen made is refused at start, with what to do;
/// a bad database URL is a configuration error with its place.
#[test]
fn a_newer_schema_and_bad_urls_are_refused_with_what_to_do() {
    let database = TestDatabase::create();
    database.query(
        "CREATE TABLE pollen_schema_migrations (version integer PRIMARY KEY, description text NOT NULL, applied_at text NOT NULL);
         INSERT INTO pollen_schema_migrations VALUES (99, 'from the future', 'now')",
    );
    let dir = tempfile::tempdir().unwrap();
    collector_file(dir.path(), "udp://127.0.0.1:0", &database.url(), "");
    let output =
        pollen_command().args(["collect", "--config", "collector.yaml"]).current_dir(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("version 99, made by a newer Pollen"), "{stderr}");

    collector_file(dir.path(), "udp://127.0.0.1:0", "sqlite://relative.db", "");
    let output = pollen_command()
        .args(["collect", "--config", "collector.yaml", "--check"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("sinks[0].publishers[0]") && stderr.contains("absolute path"), "{stderr}");
}

/// The real `ceilometer-agent-notification` 27 takes signed notifications from its
/// queue (as `ceilometer-polling` sends them) and publishes them with its `notifier://`
/// publisher to `metering.sample`-style topics, signed by Ceilometer itself: the
/// collector checks those signatures and stores every sample, its message id kept.
#[test]
fn what_ceilometer_s_notification_agent_publishes_is_verified_and_stored() {
    const SAMPLES: usize = 500;
    let agent = ceilometer_notification_agent();
    let database = TestDatabase::create();
    let topic = unique_queue("ceilometer");
    let metering = format!("{topic}-metering");
    let dir = tempfile::tempdir().unwrap();
    collector_file(dir.path(), &amqp_input(&format!("{metering}.sample"), ""), &database.url(), "");
    let collector = start_collector(dir.path(), "collector input consuming");
    let bodies = signed_notifications(SAMPLES, SECRET);
    fill_queue(&format!("{topic}.sample"), &bodies);
    let conf = ceilometer_notification_conf(dir.path(), &topic, &[format!("notifier://?topic={metering}")]);
    let mut command = std::process::Command::new(agent);
    command.arg("--config-file").arg(&conf).current_dir(dir.path());
    let notification_agent = Running::spawn(command, dir.path().join("unused"));
    wait_stored(&database, SAMPLES as i64, &collector);
    notification_agent.kill();
    let log = collector.stop();
    assert!(log.contains("rejected=0") && log.contains("malformed=0"), "Ceilometer's signatures check out: {log}");

    let mut sent: Vec<String> = Vec::new();
    for body in &bodies {
        for message in pollen_host::publish::metering::decode::from_notification(body).unwrap() {
            let sample = pollen_host::publish::metering::decode::sample(&message).unwrap();
            let at = sample.timestamp / 1000;
            sent.push(format!("{}|{}|{}|{}|{at}", sample.message_id, sample.name, sample.volume, sample.resource_id));
        }
    }
    let stored = database.query(
        "SELECT s.message_id || '|' || m.name || '|' || s.volume || '|' || r.resource_id || '|' ||
                (extract(epoch FROM s.timestamp) * 1000000)::bigint
         FROM samples s JOIN meters m ON m.id = s.meter_id JOIN resources r ON r.id = s.resource_version",
    );
    let mut stored: Vec<String> = stored.lines().map(String::from).collect();
    sent.sort();
    stored.sort();
    assert_eq!(stored, sent, "every sample, its message id kept");
    // The notification agent declares a queue per priority of its topic.
    let mut queues = vec![format!("{metering}.sample"), format!("{metering}.sample.dead")];
    queues.extend(["sample", "info", "audit", "warn", "error", "critical", "debug"].map(|p| format!("{topic}.{p}")));
    delete_queues(&queues.iter().map(String::as_str).collect::<Vec<_>>());
}

/// SIGHUP: a file with a problem is refused (logged with its place) and the running
/// one kept; a good one is run after a drain, and what arrives next goes where it
/// says. `/metrics` counts what the inputs took and what each publisher stored.
#[test]
fn sighup_reloads_the_collector_file_and_its_metrics_count_what_it_did() {
    let dir = tempfile::tempdir().unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let metrics = format!("127.0.0.1:{}", free_port());
    let (first, second) = (dir.path().join("first.db"), dir.path().join("second.db"));
    let file = |store: &std::path::Path| {
        format!(
            "collector:\n  prometheus_listen: ['{metrics}']\n  inputs:\n    - {{url: \"udp://127.0.0.1:{udp}\", sinks: [store]}}\nsinks:\n  - name: store\n    publishers: ['sqlite://{}']\n",
            store.display()
        )
    };
    std::fs::write(dir.path().join("collector.yaml"), file(&first)).unwrap();
    let mut collector = start_collector(dir.path(), "collector input listening");
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let send = |count: usize, volume: f64| {
        for message in pollen_host::publish::metering::msgpack_messages(&batch(count, volume), "") {
            socket.send_to(&message, ("127.0.0.1", udp)).unwrap();
        }
    };
    send(10, 1.0);
    collector.wait("10 samples in the first file", |_| sqlite_count(&first) == 10);
    let (status, body) = http(&metrics, "GET", "/metrics", b"").unwrap();
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 200);
    assert!(text.contains("pollen_collector_messages_received_total 10"), "{text}");
    let published = format!(
        "pollen_collector_publisher_samples_published_total{{sink=\"store\",publisher=\"sqlite://{}\"}} 10",
        first.display()
    );
    assert!(text.contains(&published), "{text}");
    assert_eq!(http(&metrics, "GET", "/readyz", b"").unwrap().0, 200);

    std::fs::write(dir.path().join("collector.yaml"), file(&first).replace("sqlite://", "sqlite:relative")).unwrap();
    collector.signal("HUP");
    collector.wait_for_log("reload refused, the running file is kept", 1);
    assert!(
        collector.log().contains("collector.yaml:7:18: sinks[0].publishers[0]"),
        "the problem's place: {}",
        collector.log()
    );
    send(5, 100.0);
    collector.wait("15 samples in the first file", |_| sqlite_count(&first) == 15);

    std::fs::write(dir.path().join("collector.yaml"), file(&second)).unwrap();
    collector.signal("HUP");
    collector.wait_for_log("collector input listening", 2);
    send(5, 200.0);
    collector.wait("5 samples in the second file", |_| sqlite_count(&second) == 5);
    let log = collector.stop();
    assert_eq!(sqlite_count(&first), 15, "{log}");
    assert!(log.contains("collector reloaded"), "{log}");
}

/// A flood of datagrams at the socket's limit (far faster than samples are stored):
/// the kernel drops what the buffer cannot hold, the collector's memory stays bounded,
/// and a message sent after the flood is still taken.
#[test]
fn a_udp_flood_keeps_the_collector_s_memory_bounded() {
    const FLOOD: usize = 200_000;
    let dir = tempfile::tempdir().unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let store = dir.path().join("flood.db");
    std::fs::write(
        dir.path().join("collector.yaml"),
        format!(
            "collector:\n  inputs:\n    - {{url: \"udp://127.0.0.1:{udp}\", sinks: [store]}}\nsinks:\n  - name: store\n    publishers: ['sqlite://{}']\n",
            store.display()
        ),
    )
    .unwrap();
    let mut collector = start_collector(dir.path(), "collector input listening");
    let messages = pollen_host::publish::metering::msgpack_messages(&batch(1000, 1.0), "");
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let started = std::time::Instant::now();
    for index in 0..FLOOD {
        // The kernel may refuse a datagram now and then (ENOBUFS): that is the flood.
        let _ = socket.send_to(&messages[index % messages.len()], ("127.0.0.1", udp));
    }
    let flood_took = started.elapsed();
    let last = pollen_host::publish::metering::msgpack_messages(&batch(1, 424242.0), "");
    collector.wait("the message after the flood stored", |_| {
        let _ = socket.send_to(&last[0], ("127.0.0.1", udp));
        rusqlite::Connection::open(&store)
            .and_then(|c| {
                c.query_row("SELECT count(*) FROM samples WHERE volume = 424242.0", [], |r| r.get::<_, i64>(0))
            })
            .unwrap_or(0)
            > 0
    });
    let status = std::fs::read_to_string(format!("/proc/{}/status", collector.id())).unwrap();
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    let log = collector.stop();
    // The flood repeats 1000 messages: stored once each, and the last one.
    let stored = sqlite_count(&store);
    assert!(peak_kib < 128 * 1024, "peak RSS {} MiB after {FLOOD} datagrams in {flood_took:?}: {log}", peak_kib / 1024);
    assert!(stored > 1 && stored <= 1001, "{stored}: {log}");
    eprintln!("flood of {FLOOD} in {flood_took:?}: {stored} stored, peak RSS {} MiB", peak_kib / 1024);
}
