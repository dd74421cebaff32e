//! `cargo bench -p pollen-host --bench e2e`: what an operator pays for a whole compute
//! cycle, poll to wire. `pollen run` itself (the release binary, not the library) polls
//! every compute meter of a generated test-driver node (`pollen_testkit::NodeSpec`)
//! every `POLLEN_E2E_INTERVAL` seconds (default 20) and publishes to `file://` or to
//! `notifier://` (the local RabbitMQ, signed; at 1000 domains also behind a disk queue,
//! `policy=disk`); collectd's virt plugin (Debian's
//! `collectd-core`, `scripts/bench-peers.sh`) reads the same node at the same interval
//! into `write_log`, as the peer.
//!
//! Each agent runs as a process of its own: after one warm-up cycle, its CPU time
//! (user + system, from `/proc/<pid>/stat`, its children's included) is read over three
//! cycles; then its peak RSS (`VmHWM`). Pollen's cycles are counted from its own
//! `cycle done` log lines; collectd's, from the clock (it logs none).
//!
//! 1000 domains through libvirt's test driver in-process (for both); 10000 domains
//! through the local `libvirtd` (`test+unix://`, `POLLEN_BENCH_LIBVIRTD=1`, which
//! `make bench` sets), also with the shipped `pipeline.yaml` (its transformers and
//! publishers, stdout to `/dev/null`). Needs `make plugins`.

mod shared;

use pollen_testkit::NodeSpec;
use shared::{cpu_seconds, stop, CYCLES};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const PLUGINS: [&str; 7] = ["local_instances", "cpu", "memory", "instance", "disk", "network", "perf"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn interval() -> u64 {
    std::env::var("POLLEN_E2E_INTERVAL").ok().and_then(|v| v.parse().ok()).unwrap_or(20)
}

struct Figures {
    per_cycle: u64,
    cpu: f64,
    peak: f64,
}

fn print(label: &str, what: &str, figures: Option<Figures>) {
    match figures {
        Some(f) => println!(
            "e2e {label:<44} {:>7} {what}/cycle  {:>6.3} CPU s/cycle  peak RSS {:>6.1} MiB",
            f.per_cycle, f.cpu, f.peak
        ),
        None => println!("e2e {label:<44} skipped"),
    }
}

/// The pipeline of one source polling every compute meter into `publisher`.
fn pipeline(dir: &Path, uri: &str, publisher: &str) -> PathBuf {
    let mut grants = String::new();
    for plugin in PLUGINS {
        grants.push_str(&format!("    {plugin}:\n      grants: [hypervisor]\n"));
    }
    let text = format!(
        "agent:\n  libvirt_uri: {uri}\n  plugin_dir: {plugins}\n  cache_dir: {cache}\n  state_dir: {state}\n  telemetry_secret: bench\n  plugins:\n{grants}\
         sources:\n  - name: compute\n    interval: {interval}\n    meters: ['*']\n    sinks: [out]\n\
         sinks:\n  - name: out\n    publishers: ['{publisher}']\n",
        plugins = repo().join("plugins/dist").display(),
        cache = dir.join("cache").display(),
        state = dir.join("state").display(),
        interval = interval(),
    );
    let path = dir.join(format!("pipeline-{}.yaml", publisher.split(':').next().unwrap()));
    std::fs::write(&path, text).unwrap();
    path
}

/// The shipped pipeline, every interval the bench's, plugins from the repository.
fn shipped_pipeline(dir: &Path, uri: &str) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("pipeline.yaml")).unwrap();
    let text = text
        .replace("interval: 60", &format!("interval: {}", interval()))
        .replace("plugin_dir: plugins/dist", &format!("plugin_dir: {}", repo().join("plugins/dist").display()))
        .replace(
            "libvirt_uri: test:///default",
            &format!("libvirt_uri: {uri}\n  cache_dir: {}", dir.join("cache").display()),
        );
    let path = dir.join("pipeline-shipped.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `pollen run` on `config`: samples, CPU and peak over [`CYCLES`] cycles after a warm-up.
fn run_pollen(config: &Path) -> Option<Figures> {
    let figures = shared::run_pollen(config, Duration::from_secs(interval() * 4 + 600))?;
    Some(Figures { per_cycle: figures.samples, cpu: figures.cpu, peak: figures.peak })
}

/// collectd's virt plugin on `uri` into `write_log`, measured over [`CYCLES`] intervals
/// after a warm-up one.
fn run_collectd(dir: &Path, uri: &str) -> Option<Figures> {
    if !Path::new("/usr/sbin/collectd").exists() {
        return None;
    }
    let log = dir.join("collectd.log");
    let config = dir.join("collectd.conf");
    std::fs::write(
        &config,
        format!(
            "Interval {}\nFQDNLookup false\nHostname \"bench\"\nLoadPlugin logfile\n<Plugin logfile>\n  LogLevel info\n  File \"{}\"\n</Plugin>\n\
             LoadPlugin virt\n<Plugin virt>\n  Connection \"{uri}\"\n  RefreshInterval 60\n  HostnameFormat uuid\n</Plugin>\n\
             LoadPlugin write_log\n<Plugin write_log>\n  Format JSON\n</Plugin>\n",
            interval(),
            log.display()
        ),
    )
    .unwrap();
    let child = Command::new("/usr/sbin/collectd")
        .args(["-f", "-C"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let values = || {
        std::fs::read_to_string(&log).map(|t| t.lines().filter(|l| l.starts_with("[{\"values\"")).count()).unwrap_or(0)
    };
    let period = Duration::from_secs(interval());
    std::thread::sleep(period + period / 2);
    let (before, counted) = (cpu_seconds(child.id()), values());
    std::thread::sleep(period * CYCLES);
    let cpu = (cpu_seconds(child.id()) - before) / f64::from(CYCLES);
    let per_cycle = ((values() - counted) as u64) / u64::from(CYCLES);
    let peak = shared::peak_rss_mib(&child.id().to_string());
    stop(child);
    Some(Figures { per_cycle, cpu, peak })
}

/// Deletes the queue the notifier filled (`<topic>.sample`).
fn delete_queue(name: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let Ok(connection) =
            lapin::Connection::connect("amqp://127.0.0.1:5672/%2f", lapin::ConnectionProperties::default()).await
        else {
            return;
        };
        if let Ok(channel) = connection.create_channel().await {
            let _ = channel.queue_delete(name.into(), lapin::options::QueueDeleteOptions::default()).await;
        }
    });
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let notifier = "notifier://guest:guest@127.0.0.1:5672/?topic=pollen_e2e";
    for domains in [1000, 10000] {
        let node = dir.path().join(format!("node-{domains}.xml"));
        NodeSpec::with_domains(domains).write(&node).unwrap();
        let through_libvirtd = domains > 1000;
        if through_libvirtd && std::env::var("POLLEN_BENCH_LIBVIRTD").as_deref() != Ok("1") {
            println!("e2e {domains} domains: skipped (POLLEN_BENCH_LIBVIRTD=1 and a running libvirtd measure it)");
            continue;
        }
        let (scheme, how) = if through_libvirtd { ("test+unix", "through libvirtd") } else { ("test", "in-process") };
        let uri = format!("{scheme}://{}", node.display());
        let out = dir.path().join("out.jsonl");
        let mut publishers =
            vec![(format!("file://{}", out.display()), "file://"), (notifier.to_string(), "notifier://")];
        if !through_libvirtd {
            publishers.push((format!("{notifier}&policy=disk"), "notifier:// policy=disk"));
        }
        for (publisher, name) in publishers {
            let figures = run_pollen(&pipeline(dir.path(), &uri, &publisher));
            print(&format!("pollen {domains} domains {how} → {name}"), "samples", figures);
        }
        // What the two publishers left behind.
        let _ = std::fs::remove_file(&out);
        delete_queue("pollen_e2e.sample");
        if through_libvirtd {
            let figures = run_pollen(&shipped_pipeline(dir.path(), &uri));
            print(&format!("pollen {domains} domains {how}, shipped pipeline"), "samples", figures);
        }
        print(&format!("collectd {domains} domains {how} → write_log"), "values", run_collectd(dir.path(), &uri));
    }
}
