//! `make bench`: plugin call overhead, transformer throughput, cold and warm start,
//! and the resident memory of `pollen run`. Prints one line per figure.
//!
//! Needs `make plugins test-plugins` (the Makefile's `bench` target runs them).

use pollen_host::config;
use pollen_host::hypervisor::Hypervisor;
use pollen_host::plugin::{load_file, PluginEngine};
use pollen_host::registry::Registry;
use pollen_host::sample::{Metadata, Meter, MeterType, Owner, Resource, Sample};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn plugin(path: &str) -> PathBuf {
    let file = repo().join(path);
    assert!(file.exists(), "{} is missing: run `make plugins test-plugins`", file.display());
    file
}

fn agent(cache: &Path, extra: &str) -> config::Agent {
    let yaml = format!("agent:\n  cache_dir: {}\n{extra}", cache.display());
    config::parse(&yaml, Path::new("bench.yaml"), &repo()).expect("bench pipeline").agent
}

/// µs per `poll` call of the `cpu` pollster on one domain, with the cycle's snapshot
/// warm (so this is the sandbox boundary, the guest, and the host-function copy).
fn pollster_call_overhead(cache: &Path) {
    let agent = agent(cache, "  plugins:\n    cpu: {grants: [hypervisor]}\n");
    let engine = PluginEngine::new(agent.cache_dir()).unwrap();
    let registry = Arc::new(Registry::new());
    let cpu = load_file(&engine, &plugin("plugins/dist/cpu.wasm"), &agent, &registry).unwrap();
    let hypervisor = Arc::new(Hypervisor::new("test:///default"));
    let snapshot = hypervisor.cycle();
    let uuid = snapshot.domains().unwrap()[0].uuid.clone();
    let resources = vec![pollen_host::bindings::types::ResourceInfo { id: uuid, name: "test".into(), data: None }];
    for _ in 0..100 {
        cpu.poll(snapshot.clone(), &resources).unwrap();
    }
    let calls = 20_000;
    let started = Instant::now();
    for _ in 0..calls {
        let samples = cpu.poll(snapshot.clone(), &resources).unwrap();
        assert_eq!(samples.samples.len(), 1);
    }
    let per_call = started.elapsed().as_secs_f64() * 1e6 / calls as f64;
    println!("pollster call (cpu, 1 resource, warm snapshot): {per_call:.2} µs/call over {calls} calls");
}

/// Samples per second through the `echo_transformer` test plugin, batches of 1000.
fn transformer_throughput(cache: &Path) {
    let agent = agent(cache, "");
    let engine = PluginEngine::new(agent.cache_dir()).unwrap();
    let registry = Arc::new(Registry::new());
    let echo = load_file(&engine, &plugin("tests/plugins/dist/echo_transformer.wasm"), &agent, &registry).unwrap();
    let meter = registry.intern_meter(Meter { name: "cpu".into(), kind: MeterType::Cumulative, unit: "ns".into() });
    let batch: Vec<Sample> = (0..1000)
        .map(|i| Sample {
            meter,
            resource: registry.intern_resource(Resource::bare(&format!("vm-{i}"))),
            volume: i as f64,
            timestamp: i,
        })
        .collect();
    for _ in 0..10 {
        echo.transform(&batch).unwrap();
    }
    let batches = 2_000;
    let started = Instant::now();
    for _ in 0..batches {
        echo.transform(&batch).unwrap();
    }
    let rate = (batches * batch.len()) as f64 / started.elapsed().as_secs_f64();
    println!("transformer throughput (echo_transformer, one transformer, batch 1000): {rate:.0} samples/s");
}

/// Samples per second through a sink's chain of three Wasm transformers, batches of
/// 1000 samples of 1000 instances, on one core: `unit_conversion` (a factor),
/// `rate_of_change` (cpu_util, its scale reading `cpu_number` from the metadata),
/// `unit_conversion` (an expression). Every sample passes all three, and the output
/// is checked.
fn chain_throughput(cache: &Path) {
    let plugins = tempfile::tempdir().unwrap();
    for name in ["unit_conversion", "rate_of_change"] {
        std::fs::copy(plugin(&format!("plugins/dist/{name}.wasm")), plugins.path().join(format!("{name}.wasm")))
            .unwrap();
    }
    let yaml = format!(
        "agent:\n  plugin_dir: {}\n  cache_dir: {}\nsources:\n  - name: cpu\n    meters: [cpu]\n    sinks: [chain]\nsinks:\n  - name: chain\n    transformers:\n      - name: unit_conversion\n        parameters: {{target: {{scale: 2}}}}\n      - name: rate_of_change\n        parameters:\n          target: {{name: cpu_util, unit: '%', type: gauge, scale: '100.0 / (10**9 * (resource_metadata.cpu_number or 1))'}}\n      - name: unit_conversion\n        parameters: {{target: {{name: cpu_util.ratio, unit: '1', scale: 'volume / 100'}}}}\n    publishers: ['stdout://']\n",
        plugins.path().display(),
        cache.display()
    );
    let pipeline = config::parse(&yaml, Path::new("bench.yaml"), &repo()).expect("bench pipeline");
    let agent = pollen_host::pipeline::Agent::build(pipeline).expect("agent");
    let chain = agent.chains["chain"].clone();
    let registry = agent.registry.clone();
    let cpu = registry.intern_meter(Meter { name: "cpu".into(), kind: MeterType::Cumulative, unit: "ns".into() });
    let resources: Vec<u32> = (0..1000)
        .map(|i| {
            let mut metadata = serde_json::Map::new();
            metadata.insert("cpu_number".into(), (1 + i % 8).into());
            registry.intern_resource(Resource {
                metadata: Metadata::from_map(&metadata),
                ..Resource::bare(&format!("vm-{i}"))
            })
        })
        .collect();
    let batch = |round: i64| -> Vec<Sample> {
        resources
            .iter()
            .map(|&resource| Sample {
                meter: cpu,
                resource,
                volume: round as f64 * 1e9,
                timestamp: 1_790_000_000_000_000_000 + round * 1_000_000_000,
            })
            .collect()
    };
    // Warm up: the first round only primes rate_of_change.
    for round in 0..10 {
        chain.run(batch(round), &registry);
    }
    let rounds = 2_000;
    let inputs: Vec<Vec<Sample>> = (10..10 + rounds).map(batch).collect();
    let started = Instant::now();
    let mut out = 0;
    for input in inputs {
        let output = chain.run(input, &registry);
        assert!(output.failures.is_empty() && output.malformed == 0);
        out += output.samples.len();
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(out, rounds as usize * resources.len(), "every sample makes it through");
    let rate = out as f64 / elapsed;
    println!("transformer chain (unit_conversion → rate_of_change → unit_conversion, batch 1000, one core): {rate:.0} samples/s");
}

/// Wall time of `pollen validate` on the shipped pipeline (loads every built-in
/// plugin), with an empty compiled-component cache and then with a warm one.
fn start_times(cache: &Path) {
    let workspace = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(repo().join("pipeline.yaml")).unwrap();
    let pipeline = shipped.replace(
        "plugin_dir: plugins/dist",
        &format!(
            "plugin_dir: {}\n  cache_dir: {}",
            repo().join("plugins/dist").display(),
            cache.join("start").display()
        ),
    );
    std::fs::write(workspace.path().join("pipeline.yaml"), pipeline).unwrap();
    let cold = validate(workspace.path());
    let warm: Vec<Duration> = (0..5).map(|_| validate(workspace.path())).collect();
    let warm_best = warm.iter().min().unwrap();
    println!(
        "start, built-in plugins (pollen validate): cold {:.0} ms (compiles), warm {:.0} ms (best of 5, cached)",
        cold.as_secs_f64() * 1e3,
        warm_best.as_secs_f64() * 1e3
    );
}

/// Runs `pollen validate` on the pipeline in `dir` (loading, and if need be compiling,
/// every plugin); returns how long it took.
fn validate(dir: &Path) -> Duration {
    let started = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_pollen"))
        .args(["validate", "--log", "warn"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    started.elapsed()
}

/// Resident memory of `pollen run` on the shipped plugins, polling every second.
fn run_rss(cache: &Path) {
    let workspace = tempfile::tempdir().unwrap();
    let out = workspace.path().join("samples.jsonl");
    let pipeline = format!(
        "agent:\n  plugin_dir: {}\n  cache_dir: {}\n  plugins:\n    local_instances: {{grants: [hypervisor]}}\n    cpu: {{grants: [hypervisor]}}\n    memory: {{grants: [hypervisor]}}\n    instance: {{grants: [hypervisor]}}\n    disk: {{grants: [hypervisor]}}\n    network: {{grants: [hypervisor]}}\n    perf: {{grants: [hypervisor]}}\nsources:\n  - {{name: compute, interval: 1, meters: ['*'], sinks: [out]}}\nsinks:\n  - {{name: out, publishers: ['file://{}']}}\n",
        repo().join("plugins/dist").display(),
        cache.join("start").display(),
        out.display()
    );
    std::fs::write(workspace.path().join("pipeline.yaml"), pipeline).unwrap();
    // The plugins compiled beforehand (as after any first start), so that the figure
    // is the agent's, not the compiler's, whichever sections run before.
    validate(workspace.path());
    let child = Command::new(env!("CARGO_BIN_EXE_pollen"))
        .args(["run", "--log", "warn"])
        .current_dir(workspace.path())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(6));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap())
            .unwrap()
    };
    let (rss, peak) = (field("VmRSS:"), field("VmHWM:"));
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    // One `cpu` sample per cycle: the test driver has one domain.
    let cycles = std::fs::read_to_string(&out).unwrap().lines().filter(|l| l.contains("\"name\":\"cpu\"")).count();
    println!(
        "pollen run RSS after {cycles} cycles (1 s interval, test driver): {:.1} MiB (peak {:.1} MiB)",
        rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
}

/// A batch of 1000 samples over 100 instances with Ceilometer-like metadata.
fn thousand_samples() -> pollen_host::publish::Batch {
    let registry = Arc::new(Registry::new());
    let cpu = registry.intern_meter(Meter { name: "cpu".into(), kind: MeterType::Cumulative, unit: "ns".into() });
    let metadata = serde_json::json!({
        "display_name": "web", "name": "instance-00000001", "instance_type": "m1.small", "status": "active",
        "flavor": {"id": "2", "name": "m1.small", "ram": 2048, "vcpus": 1, "disk": 20, "ephemeral": 0, "swap": 0},
        "image_ref": "9a8b7c6d-0000-4000-8000-000000000001", "host": "abc", "vcpus": 1, "memory_mb": 2048,
    });
    let resources: Vec<_> = (0..100)
        .map(|i| {
            registry.intern_resource(Resource {
                owner: Owner::of(Some("a1b2c3d4e5f60718293a4b5c6d7e8f90"), Some("0f9e8d7c6b5a49382716f5e4d3c2b1a0")),
                metadata: Metadata::from_map(metadata.as_object().unwrap()),
                ..Resource::bare(&format!("11111111-2222-3333-4444-{i:012}"))
            })
        })
        .collect();
    let samples = (0..1000)
        .map(|i| Sample {
            meter: cpu,
            resource: resources[i % 100],
            volume: 1.5e12 + i as f64,
            timestamp: 1_790_000_000_000_000_000,
        })
        .collect();
    pollen_host::publish::Batch::new(samples, registry, Arc::from("openstack"))
}

/// Samples per second through one publisher, `batches` batches of 1000, counted when
/// the publisher reports them sent (for the notifier: confirmed by the broker).
fn publish_rate(runtime: &tokio::runtime::Runtime, name: &str, url: &str, batches: usize) {
    publish_rate_in(runtime, name, url, batches, &pollen_host::store::state_dir())
}

/// The same, with `state_dir` for a disk queue.
fn publish_rate_in(runtime: &tokio::runtime::Runtime, name: &str, url: &str, batches: usize, state_dir: &Path) {
    use pollen_host::publish::{PublishContext, PublisherHandle};
    let batch = Arc::new(thousand_samples());
    let context = PublishContext { telemetry_secret: "bench-secret".into(), state_dir: state_dir.to_path_buf() };
    let (delivery, elapsed) = runtime.block_on(async {
        let handle = PublisherHandle::start(url, &context).await.expect("publisher starts");
        let started = Instant::now();
        for _ in 0..batches {
            handle.send_waiting(batch.clone()).await;
        }
        let delivery = handle.shutdown(Duration::from_secs(120)).await;
        (delivery, started.elapsed())
    });
    assert_eq!(delivery.dropped, 0, "{name}: nothing dropped");
    let rate = delivery.sent as f64 / elapsed.as_secs_f64();
    println!("publish {name}: {rate:.0} samples/s ({} samples, signed, batches of 1000)", delivery.sent);
}

/// Samples per second through a disk queue (`policy=disk`) on its own: batches of 1000
/// encoded into records and appended, then read back, decoded into batches and
/// acknowledged; then the notifier behind one, the broker up.
fn disk_queue(_cache: &Path) {
    use pollen_host::publish::disk::{record, Head, SegmentLog};
    let batch = thousand_samples();
    let dir = tempfile::tempdir().expect("temporary folder");
    let (mut log, _) = SegmentLog::open(dir.path(), 4 << 30).expect("a disk queue");
    let rounds = 500;
    let started = Instant::now();
    for _ in 0..rounds {
        let (samples, payload) = record::encode(&batch, 0..batch.samples.len());
        log.append(samples, &payload).expect("appended");
    }
    let written = started.elapsed();
    let bytes = log.bytes();
    let started = Instant::now();
    let mut replayed = 0;
    while let Some(head) = log.head().expect("readable") {
        let Head::Record { payload, .. } = head else { panic!("a damaged record") };
        replayed += record::decode(&payload).expect("decodable").samples.len();
        log.acknowledge().expect("acknowledged");
    }
    let read = started.elapsed();
    assert_eq!(replayed, rounds * 1000);
    println!(
        "disk queue: written {:.0} samples/s, replayed {:.0} samples/s ({} bytes/sample on disk, {} samples)",
        replayed as f64 / written.as_secs_f64(),
        replayed as f64 / read.as_secs_f64(),
        bytes / replayed as u64,
        replayed
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let topic = format!("pollen-bench-disk-{}", std::process::id());
    let state = tempfile::tempdir().expect("temporary folder");
    let url = format!("notifier://?topic={topic}&policy=disk");
    publish_rate_in(&runtime, "notifier:// policy=disk (RabbitMQ, confirmed)", &url, 200, state.path());
}

/// Samples per second turned into signed notification bodies, without sending.
fn encoding(_cache: &Path) {
    use pollen_host::publish::metering::{nested_json_messages, notification_body};
    let batch = thousand_samples();
    let started = Instant::now();
    let rounds = 100;
    let mut bytes = 0;
    for _ in 0..rounds {
        let messages = nested_json_messages(&batch, "bench-secret");
        let raw: Vec<&[u8]> = messages.iter().map(|(_, m)| m).collect();
        for chunk in raw.chunks(50) {
            bytes += notification_body(chunk.iter().copied()).len();
        }
    }
    let rate = (rounds * batch.samples.len()) as f64 / started.elapsed().as_secs_f64();
    println!(
        "encode notifications (signed, batch_size 50): {rate:.0} samples/s, {} bytes/sample",
        bytes / (rounds * 1000)
    );
}

/// Samples per second that lapin and the broker take when the notifications are
/// already encoded: the same bodies (50 samples each) published in confirm windows of
/// 256, as the notifier does.
fn amqp_raw(_cache: &Path) {
    use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions};
    use pollen_host::publish::metering::{nested_json_messages, notification_body};
    let batch = thousand_samples();
    let messages = nested_json_messages(&batch, "bench-secret");
    let body = notification_body(messages.iter().take(50).map(|(_, m)| m));
    let queue = format!("pollen-bench-raw-{}", std::process::id());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let elapsed = runtime.block_on(async {
        let connection =
            lapin::Connection::connect("amqp://127.0.0.1:5672/%2f", lapin::ConnectionProperties::default())
                .await
                .unwrap();
        let channel = connection.create_channel().await.unwrap();
        channel.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        channel.queue_declare(queue.as_str().into(), QueueDeclareOptions::default(), Default::default()).await.unwrap();
        let started = Instant::now();
        for _ in 0..(4000 / 256 + 1) {
            let mut confirms = Vec::new();
            for _ in 0..256 {
                let confirm = channel
                    .basic_publish(
                        "".into(),
                        queue.as_str().into(),
                        BasicPublishOptions::default(),
                        &body,
                        Default::default(),
                    )
                    .await
                    .unwrap();
                confirms.push(confirm);
            }
            for confirm in confirms {
                assert!(confirm.await.unwrap().is_ack());
            }
        }
        let elapsed = started.elapsed();
        let _ = channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await;
        elapsed
    });
    let notifications = (4000 / 256 + 1) * 256;
    let rate = (notifications * 50) as f64 / elapsed.as_secs_f64();
    println!("amqp raw (pre-encoded notifications of 50, confirmed): {rate:.0} samples/s ({} bytes each)", body.len());
}

fn publishing(cache: &Path) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let file = cache.join("bench-samples.jsonl");
    publish_rate(&runtime, "file://", &format!("file://{}", file.display()), 200);

    let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = receiver.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 65536];
        while receiver.recv(&mut buffer).is_ok() {}
    });
    publish_rate(&runtime, "udp://", &format!("udp://127.0.0.1:{port}"), 200);

    let topic = format!("pollen-bench-{}", std::process::id());
    publish_rate(
        &runtime,
        "notifier:// (RabbitMQ, confirmed, batch_size=50)",
        &format!("notifier://?topic={topic}"),
        200,
    );
    publish_rate(
        &runtime,
        "notifier:// (RabbitMQ, confirmed, batch_size=1000)",
        &format!("notifier://?topic={topic}&batch_size=1000"),
        200,
    );
    runtime.block_on(async {
        let connection =
            lapin::Connection::connect("amqp://127.0.0.1:5672/%2f", lapin::ConnectionProperties::default())
                .await
                .unwrap();
        let channel = connection.create_channel().await.unwrap();
        let _ = channel
            .queue_delete(format!("{topic}.sample").as_str().into(), lapin::options::QueueDeleteOptions::default())
            .await;
    });
}

fn main() {
    // `cargo bench -p pollen-host -- NAME` runs only the sections whose name contains
    // NAME (`call`, `transformer`, `chain`, `start`, `rss`, `encode`, `amqp-raw`, `publish`, `disk`); `--bench` is cargo's.
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let cache = tempfile::tempdir().unwrap();
    type Section = fn(&Path);
    let sections: [(&str, Section); 9] = [
        ("call", pollster_call_overhead),
        ("transformer", transformer_throughput),
        ("chain", chain_throughput),
        ("start", start_times),
        ("rss", run_rss),
        ("encode", encoding),
        ("amqp-raw", amqp_raw),
        ("publish", publishing),
        ("disk", disk_queue),
    ];
    for (name, section) in sections {
        if wanted(name) {
            section(cache.path());
        }
    }
}
