//! `cargo bench -p pollen-host --bench collector`: how fast the collector stores what
//! waits in RabbitMQ. A queue is filled with `POLLEN_COLLECTOR_SAMPLES` samples (default
//! 200,000) in oslo.messaging notifications of 50, signed, as Ceilometer sends them;
//! then one `pollen collect` (the release binary) consumes it into PostgreSQL (a
//! database of its own on the machine's server), and again into SQLite (a file), each
//! message acknowledged after its samples commit. Its rate is samples over the time
//! from its first consuming line to the last sample committed (the collector's own
//! counter of committed samples, read from its `/metrics` every 20 ms: counting the
//! table instead cost the 2-core machine a `psql` and a scan every poll); then the
//! table is counted once, and a run that stored fewer fails. Its CPU (user + system,
//! from `/proc`) over the same span, and its peak RSS.
//!
//! `POLLEN_COLLECTOR_INPUT_OPTIONS` appends options to the collector's input URL
//! (`&prefetch=300`), to compare settings.
//!
//! Beside it, in the same run, the component that does this job in Ceilometer today:
//! `ceilometer-agent-notification` 27 (`scripts/ceilometer.sh`, a venv from PyPI)
//! consumes the same messages from `notifications.sample` into a `file://` publisher.

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;
mod shared;

use common::{fill_queue, ready_in, signed_notifications, unique_queue, TestDatabase, SECRET};
use shared::{cpu_seconds, peak_rss_mib, stop};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a run may take before it is called failed.
const PATIENCE: Duration = Duration::from_secs(600);

fn samples() -> usize {
    std::env::var("POLLEN_COLLECTOR_SAMPLES").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000)
}

/// What a run cost.
struct Figures {
    /// Samples per second.
    rate: f64,
    /// CPU seconds per 100,000 samples.
    cpu: f64,
    /// Peak RSS, MiB.
    peak: f64,
}

fn print(label: &str, figures: Option<Figures>) {
    match figures {
        Some(f) => println!(
            "collector {label:<62} {:>9.0} samples/s  {:>6.2} CPU s per 100k samples  peak RSS {:>6.1} MiB",
            f.rate, f.cpu, f.peak
        ),
        None => println!("collector {label:<52} failed (see above)"),
    }
}

/// Waits for a line containing `needle` on `lines` (a process's stderr).
fn wait_line(lines: &std::sync::mpsc::Receiver<String>, needle: &str) -> bool {
    let started = Instant::now();
    while let Ok(line) = lines.recv_timeout(PATIENCE.saturating_sub(started.elapsed())) {
        if line.contains(needle) {
            return true;
        }
        if line.contains("ERROR") {
            eprintln!("{line}");
        }
    }
    false
}

/// Spawns `command`, its stderr read line by line.
fn spawn(mut command: Command) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut child = command.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("the process starts");
    let stderr = child.stderr.take().expect("piped");
    let (sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    (child, lines)
}

/// One `pollen collect` from a filled queue into `publisher`, until `stored()` says
/// every sample is in.
fn collect(dir: &Path, publisher: &str, stored: impl Fn() -> i64) -> Option<Figures> {
    let count = samples();
    let queue = unique_queue("bench");
    fill_queue(&queue, &signed_notifications(count, SECRET));
    let metrics = format!("127.0.0.1:{}", common::free_port());
    common::collector_file(
        dir,
        &format!(
            "amqp://guest:guest@127.0.0.1:5672/?queues={queue}&dead_letter={queue}.dead{}",
            std::env::var("POLLEN_COLLECTOR_INPUT_OPTIONS").unwrap_or_default()
        ),
        publisher,
        &format!("  prometheus_listen: [\"{metrics}\"]\n"),
    );
    let mut command = Command::new(env!("CARGO_BIN_EXE_pollen"));
    command.args(["collect", "--config", "collector.yaml", "--log", "info"]).current_dir(dir);
    let (child, lines) = spawn(command);
    if !wait_line(&lines, "collector input consuming") {
        stop(child);
        return None;
    }
    let (started, cpu_before) = (Instant::now(), cpu_seconds(child.id()));
    while committed(&metrics) < count as u64 {
        if started.elapsed() > PATIENCE {
            eprintln!("only {} of {count} committed in {PATIENCE:?}", committed(&metrics));
            stop(child);
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (took, cpu) = (started.elapsed(), cpu_seconds(child.id()) - cpu_before);
    let peak = peak_rss_mib(&child.id().to_string());
    stop(child);
    let in_table = stored();
    if in_table != count as i64 {
        eprintln!("the collector counted {count} committed, the table holds {in_table}");
        return None;
    }
    let left = ready_in(&queue);
    if left > 0 {
        eprintln!("{left} messages left unacknowledged in {queue}");
    }
    common::delete_queues(&[&queue, &format!("{queue}.dead")]);
    Some(Figures { rate: count as f64 / took.as_secs_f64(), cpu: cpu * 100_000.0 / count as f64, peak })
}

/// Samples the collector's publishers committed, from its `/metrics` (0 while it
/// does not answer).
fn committed(metrics: &str) -> u64 {
    let Ok((200, body)) = common::http(metrics, "GET", "/metrics", b"") else { return 0 };
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|line| line.starts_with("pollen_collector_publisher_samples_published_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The peer gets at most this many samples: it is far slower.
const PEER_SAMPLES: usize = 50_000;

/// CPU seconds of a process and of its descendants alive now.
fn tree_cpu_seconds(pid: u32) -> f64 {
    descendants(pid).into_iter().map(cpu_seconds).sum()
}

/// Peak RSS of a process and of its descendants alive now, MiB.
fn tree_peak_mib(pid: u32) -> f64 {
    descendants(pid).into_iter().map(|p| peak_rss_mib(&p.to_string())).sum()
}

/// A process and its descendants, from every process's parent in `/proc`.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // The parent is the second field after the command's closing parenthesis.
        let parent = stat.rfind(')').and_then(|at| stat[at + 2..].split_whitespace().nth(1)?.parse().ok());
        if let Some(parent) = parent {
            parents.push((child, parent));
        }
    }
    let mut all = vec![pid];
    let mut at = 0;
    while at < all.len() {
        let of = all[at];
        all.extend(parents.iter().filter(|(_, parent)| *parent == of).map(|(child, _)| *child));
        at += 1;
    }
    all
}

/// Counts a growing file's lines, reading only what was added since the last call.
struct LineCounter {
    path: PathBuf,
    read: u64,
    lines: usize,
}

impl LineCounter {
    fn count(&mut self) -> usize {
        use std::io::{Read, Seek};
        if let Ok(mut file) = std::fs::File::open(&self.path) {
            let _ = file.seek(std::io::SeekFrom::Start(self.read));
            let mut added = Vec::new();
            let _ = file.read_to_end(&mut added);
            self.read += added.len() as u64;
            self.lines += added.iter().filter(|b| **b == b'\n').count();
        }
        self.lines
    }
}

/// `ceilometer-agent-notification` 27 from the bench's venv (`scripts/ceilometer.sh
/// install`), one worker, consuming the same kind of messages from a queue filled
/// beforehand into its `file://` publisher (a line per sample), from its first line to
/// its last; CPU and peak RSS of its processes (a master and a worker).
fn ceilometer_notification_agent(dir: &Path) -> Option<Figures> {
    let agent = PathBuf::from(common::CEILOMETER_NOTIFICATION_AGENT);
    if !agent.exists() {
        eprintln!("ceilometer-agent-notification is not installed: `scripts/ceilometer.sh install`");
        return None;
    }
    let count = samples().min(PEER_SAMPLES);
    let topic = unique_queue("bench-ceilometer");
    let out = dir.join("ceilometer-samples.log");
    let conf = common::ceilometer_notification_conf(dir, &topic, &[format!("file://{}", out.display())]);
    let queue = format!("{topic}.sample");
    fill_queue(&queue, &signed_notifications(count, SECRET));
    let mut command = Command::new(&agent);
    command.arg("--config-file").arg(&conf).current_dir(dir);
    let (child, _lines) = spawn(command);
    let mut written = LineCounter { path: out, read: 0, lines: 0 };
    let patience = Instant::now();
    while written.count() == 0 {
        if patience.elapsed() > PATIENCE {
            stop(child);
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (started, cpu_before, first) = (Instant::now(), tree_cpu_seconds(child.id()), written.count());
    while written.count() < count {
        if started.elapsed() > PATIENCE {
            eprintln!("ceilometer-agent-notification wrote {} of {count} in {PATIENCE:?}", written.count());
            stop(child);
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (took, cpu) = (started.elapsed(), tree_cpu_seconds(child.id()) - cpu_before);
    let peak = tree_peak_mib(child.id());
    stop(child);
    let priorities = ["sample", "info", "audit", "warn", "error", "critical", "debug"].map(|p| format!("{topic}.{p}"));
    common::delete_queues(&priorities.iter().map(String::as_str).collect::<Vec<_>>());
    let measured = (count - first) as f64;
    Some(Figures { rate: measured / took.as_secs_f64(), cpu: cpu * 100_000.0 / measured, peak })
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    println!("collector: {} samples in notifications of 50, one collector, this machine", samples());

    let database = TestDatabase::create();
    let postgres = collect(dir.path(), &database.url(), || database.stored());
    print("RabbitMQ -> pollen collect -> PostgreSQL (acked after commit)", postgres);

    let sqlite = dir.path().join("bench.db");
    let _ = std::fs::remove_file(&sqlite);
    let stored = || {
        rusqlite::Connection::open(&sqlite)
            .and_then(|c| c.query_row("SELECT count(*) FROM samples", [], |r| r.get::<_, i64>(0)))
            .unwrap_or(0)
    };
    let figures = collect(dir.path(), &format!("sqlite://{}", sqlite.display()), stored);
    print("RabbitMQ -> pollen collect -> SQLite (acked after commit)", figures);

    let peer = ceilometer_notification_agent(dir.path());
    print(
        &format!("RabbitMQ -> ceilometer-agent-notification 27 -> file ({}k)", samples().min(PEER_SAMPLES) / 1000),
        peer,
    );
}
