//! Storage for the tests: a database of the test's own on the machine's PostgreSQL
//! (dropped at the end), a PostgreSQL server of the test's own (to stop and start
//! again), queues filled with signed notifications, and reading back what a collector
//! stored.

use super::{wait_until, SAFETY_NET};
use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use pollen_host::publish::Batch;
use pollen_host::registry::Registry;
use pollen_host::sample::{Metadata, Meter, MeterType, Owner, Resource, Sample};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// The machine's PostgreSQL (trust authentication, as the machine sets it up).
pub const POSTGRES_PORT: u16 = 5432;

/// Runs `sql` through `psql` on `port`/`database`; its rows, `|`-separated.
pub fn psql(port: u16, database: &str, sql: &str) -> String {
    let output = Command::new("psql")
        .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres"])
        .args(["-p", &port.to_string(), "-d", database, "-c", sql])
        .output()
        .expect("psql runs (PostgreSQL's client; `make setup`)");
    assert!(
        output.status.success(),
        "PostgreSQL must answer on 127.0.0.1:{port} (this test never passes by skipping): {sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A database of the test's own, dropped when the test ends.
pub struct TestDatabase {
    /// Its name.
    pub name: String,
    /// Its server's port.
    pub port: u16,
}

impl TestDatabase {
    /// Makes one on the machine's PostgreSQL.
    pub fn create() -> Self {
        Self::create_on(POSTGRES_PORT)
    }

    /// Makes one on the server at `port`.
    pub fn create_on(port: u16) -> Self {
        let name = format!("pollen_test_{}", uuid::Uuid::new_v4().simple());
        psql(port, "postgres", &format!("CREATE DATABASE {name}"));
        Self { name, port }
    }

    /// Its URL, as a publisher names it.
    pub fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{}", self.port, self.name)
    }

    /// Runs `sql` in it.
    pub fn query(&self, sql: &str) -> String {
        psql(self.port, &self.name, sql)
    }

    /// A number `sql` gives (0 while the schema is not there yet).
    pub fn number(&self, sql: &str) -> i64 {
        let exists = psql(self.port, &self.name, "SELECT to_regclass('samples') IS NOT NULL");
        if exists != "t" {
            return 0;
        }
        self.query(sql).parse().unwrap_or_else(|_| panic!("a number from {sql}"))
    }

    /// Samples stored.
    pub fn stored(&self) -> i64 {
        self.number("SELECT count(*) FROM samples")
    }

    /// Every stored sample as the JSON line an agent's `file://` publisher writes
    /// (without its `id`), its volume as a float.
    pub fn samples(&self) -> Vec<Value> {
        let rows = self.query(
            "SELECT json_build_object('name', m.name, 'type', m.type, 'unit', m.unit, 'volume', s.volume,
                 'user_id', r.user_id, 'user_name', null, 'project_id', r.project_id, 'project_name', null,
                 'resource_id', r.resource_id,
                 'timestamp', to_char(s.timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"'),
                 'resource_metadata', r.metadata, 'source', r.source, 'monotonic_time', null)
             FROM samples s JOIN meters m ON m.id = s.meter_id JOIN resources r ON r.id = s.resource_version",
        );
        rows.lines().map(|line| with_float_volume(serde_json::from_str(line).expect("a JSON row"))).collect()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-p", &self.port.to_string(), "-d", "postgres"])
            .args(["-c", &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)])
            .output();
    }
}

/// A sample line with its volume as a float, as both sides compare.
pub fn with_float_volume(mut sample: Value) -> Value {
    if let Some(volume) = sample["volume"].as_f64() {
        sample["volume"] = json!(volume);
    }
    sample
}

/// A PostgreSQL server of the test's own, in a temporary folder on a free port, that
/// the test stops and starts again.
pub struct OwnPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Its port.
    pub port: u16,
}

impl OwnPostgres {
    /// Makes its cluster and starts it.
    pub fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's server is installed (/usr/lib/postgresql)")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|bin| bin.join("initdb").exists())
            .expect("initdb under /usr/lib/postgresql/*/bin");
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        // PostgreSQL refuses to run as root: as root, the cluster is the postgres user's.
        if unsafe { libc::geteuid() } == 0 {
            assert!(Command::new("chown")
                .args(["postgres:postgres", &dir.path().to_string_lossy()])
                .status()
                .unwrap()
                .success());
        }
        let port = super::free_port();
        let own = Self { dir, bin, port };
        own.run("initdb", &["-D", &data.to_string_lossy(), "-A", "trust", "-U", "postgres", "--no-sync"]);
        own.start_again();
        own
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bin.join(tool);
        let mut command = if unsafe { libc::geteuid() } == 0 {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        let output = command.args(args).output().unwrap_or_else(|e| panic!("{tool} runs: {e}"));
        assert!(output.status.success(), "{tool} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_string_lossy().into_owned()
    }

    /// Starts it and waits until it answers.
    pub fn start_again(&self) {
        let options =
            format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir.path().display());
        let log = self.dir.path().join("server.log");
        self.run("pg_ctl", &["-D", &self.data(), "-o", &options, "-l", &log.to_string_lossy(), "-w", "start"]);
    }

    /// Stops it at once (connections cut, as a restart does).
    pub fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"])
        }));
    }
}

/// `count` samples over 20 instances with Nova-like metadata, signed with `secret`, as
/// oslo.messaging notifications of 50 samples each (as Ceilometer sends them).
pub fn signed_notifications(count: usize, secret: &str) -> Vec<Vec<u8>> {
    let registry = Arc::new(Registry::new());
    let meters: Vec<_> = ["cpu", "memory.usage", "disk.device.read.bytes"]
        .iter()
        .map(|name| registry.intern_meter(Meter { name: (*name).into(), kind: MeterType::Gauge, unit: "B".into() }))
        .collect();
    let resources: Vec<_> = (0..20)
        .map(|i| {
            let metadata = json!({"display_name": format!("vm-{i}"), "flavor": {"name": "m1.small", "ram": 2048},
                "image_ref_url": null, "host": "compute-1", "status": "active",
                "tags": ["web", "café", "it's"], "ratio": 0.1});
            registry.intern_resource(Resource {
                owner: Owner::of(Some("user-1"), Some(&format!("project-{}", i % 3))),
                metadata: Metadata::from_map(metadata.as_object().unwrap()),
                ..Resource::bare(&format!("instance-{i:04}"))
            })
        })
        .collect();
    let now = pollen_host::sample::now_ns();
    let samples = (0..count)
        .map(|i| Sample {
            meter: meters[i % meters.len()],
            resource: resources[(i / meters.len()) % resources.len()],
            volume: i as f64 + 0.5,
            timestamp: now + i as i64 * 1000,
        })
        .collect();
    let batch = Batch::new(samples, registry, Arc::from("openstack"));
    pollen_host::publish::metering::notification_bodies(&batch, secret, 50).into_iter().map(|(body, _)| body).collect()
}

/// A name of the test's own for a queue.
pub fn unique_queue(what: &str) -> String {
    format!("pollen-test-{what}-{}", uuid::Uuid::new_v4().simple())
}

fn broker<T>(work: impl AsyncFnOnce(&lapin::Channel) -> T) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let connection = Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f", ConnectionProperties::default())
            .await
            .unwrap_or_else(|e| panic!("RabbitMQ must listen on 127.0.0.1:5672 (run `make setup`): {e}"));
        let channel = connection.create_channel().await.expect("channel");
        let out = work(&channel).await;
        let _ = connection.close(200, "done".into()).await;
        out
    })
}

/// Declares `queue` as the collector does (not durable) and puts `bodies` in it.
pub fn fill_queue(queue: &str, bodies: &[Vec<u8>]) {
    broker(async |channel| {
        channel.queue_declare(queue.into(), QueueDeclareOptions::default(), FieldTable::default()).await.unwrap();
        let properties = BasicProperties::default().with_content_type("application/json".into());
        for body in bodies {
            channel
                .basic_publish("".into(), queue.into(), BasicPublishOptions::default(), body, properties.clone())
                .await
                .expect("basic.publish");
        }
    });
}

/// Messages ready in `queue` (not delivered to a consumer, or handed back).
pub fn ready_in(queue: &str) -> u32 {
    broker(async |channel| {
        let options = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
        channel
            .queue_declare(queue.into(), options, FieldTable::default())
            .await
            .map(|q| q.message_count())
            .unwrap_or(0)
    })
}

/// Takes every message of `queue`: its body and its `x-pollen-reason` header.
pub fn take_all(queue: &str) -> Vec<(Vec<u8>, String)> {
    broker(async |channel| {
        let mut found = Vec::new();
        while let Ok(Some(message)) = channel.basic_get(queue.into(), BasicGetOptions { no_ack: true }).await {
            let reason = message
                .delivery
                .properties
                .headers()
                .as_ref()
                .and_then(|h| h.inner().get("x-pollen-reason").cloned())
                .map(|v| match v {
                    lapin::types::AMQPValue::LongString(text) => text.to_string(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            found.push((message.delivery.data.clone(), reason));
        }
        found
    })
}

/// Deletes queues.
pub fn delete_queues(queues: &[&str]) {
    broker(async |channel| {
        for queue in queues {
            let _ = channel.queue_delete((*queue).into(), QueueDeleteOptions::default()).await;
        }
    });
}

/// Waits until `database` holds `count` samples.
pub fn wait_stored(database: &TestDatabase, count: i64, collector: &super::Running) {
    wait_until(
        &format!("{count} samples stored"),
        || database.stored() >= count,
        || format!("{} stored; the collector's log:\n{}", database.stored(), collector.log()),
    );
    let _ = SAFETY_NET;
}

/// Writes a collector file into `dir` with one input into `publisher`, and `extra`
/// lines in its `collector` section.
pub fn collector_file(dir: &Path, input: &str, publisher: &str, extra: &str) -> PathBuf {
    let path = dir.join("collector.yaml");
    let text = format!(
        "collector:\n  telemetry_secrets: [{SECRET}]\n{extra}  inputs:\n    - {{url: \"{input}\", sinks: [store]}}\nsinks:\n  - name: store\n    publishers: ['{publisher}']\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The secret the storage tests sign with.
pub const SECRET: &str = "pollen-store-secret";

/// Starts `pollen collect` on the file in `dir` and waits for `ready` in its log.
pub fn start_collector(dir: &Path, ready: &str) -> super::Running {
    let mut command = super::pollen_command();
    command.args(["collect", "--config", "collector.yaml", "--log", "info"]).current_dir(dir);
    let mut running = super::Running::spawn(command, dir.join("unused"));
    running.wait_for_log(ready, 1);
    running
}

/// Where `scripts/ceilometer.sh install` puts `ceilometer-agent-notification` 27.
pub const CEILOMETER_NOTIFICATION_AGENT: &str = "/var/lib/pollen-ceilometer/venv/bin/ceilometer-agent-notification";

/// `ceilometer-agent-notification` 27, as `scripts/ceilometer.sh install` (run by
/// `make setup`) puts it; a test fails without it.
pub fn ceilometer_notification_agent() -> PathBuf {
    let agent = PathBuf::from(CEILOMETER_NOTIFICATION_AGENT);
    assert!(agent.exists(), "{} is missing: run `scripts/ceilometer.sh install` (`make setup` does)", agent.display());
    agent
}

/// A `ceilometer.conf` (and its `pipeline.yaml`) in `dir` for the notification agent:
/// it consumes `<topic>.sample` on exchange `ceilometer` and hands every sample to
/// `publishers`, signing with [`SECRET`].
pub fn ceilometer_notification_conf(dir: &Path, topic: &str, publishers: &[String]) -> PathBuf {
    let pipeline = dir.join("ceilometer-pipeline.yaml");
    let list: Vec<String> = publishers.iter().map(|p| format!("\"{p}\"")).collect();
    std::fs::write(
        &pipeline,
        format!(
            "sources:\n  - name: meter_source\n    meters: [\"*\"]\n    sinks: [meter_sink]\nsinks:\n  - name: meter_sink\n    publishers: [{}]\n",
            list.join(", ")
        ),
    )
    .unwrap();
    let conf = dir.join("ceilometer.conf");
    std::fs::write(
        &conf,
        format!(
            "[DEFAULT]\ntransport_url = rabbit://guest:guest@127.0.0.1:5672/\npipeline_cfg_file = {}\n\
             [oslo_messaging_notifications]\ntopics = {topic}\n\
             [notification]\nnotification_control_exchanges = ceilometer\npipelines = meter\nworkers = 1\n\
             [publisher]\ntelemetry_secret = {SECRET}\n",
            pipeline.display()
        ),
    )
    .unwrap();
    conf
}
