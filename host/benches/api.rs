//! `cargo bench -p pollen-host --bench api`: the read API over a month of a cloud.
//!
//! A store of `POLLEN_API_INSTANCES` instances (default 1,000, in projects of 100)
//! × 10 meters × a sample every 10 minutes for `POLLEN_API_DAYS` days (default 30:
//! 43.2 million samples) is written into PostgreSQL through the `database`
//! publisher's write path (`Store::write`, batches of 1,000, one writer as in one
//! collector), and a tenth of it into SQLite; how long that took is reported (it is
//! ingest speed too), and the store's size on disk per sample. Then `pollen api`
//! (this build's binary) answers, over HTTP, each of the common questions 20 times
//! (a different resource or project each time, after two warm-up answers):
//!
//! - one resource's meter over the whole month, `period=3600` (target ≤ 50 ms);
//! - one project's day of a meter, grouped per resource (target ≤ 500 ms), and the
//!   same per hour;
//! - `GET /v2/resources` of a project (target ≤ 200 ms);
//! - the latest sample of a resource's meter; a project's meters.
//!
//! `POLLEN_API_REUSE=1` keeps the PostgreSQL store of a previous run with the same
//! size instead of writing it again (`pollen_bench_api`); `POLLEN_API_ONLY=sqlite`
//! (or `postgresql`) measures one backend.

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use common::{free_port, http, psql, Running, POSTGRES_PORT};
use pollen_host::store::{MeterKey, ResourceVersion, Row, Store, StoreUrl, WriteBatch};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

const DATABASE: &str = "pollen_bench_api";
const PROJECT_SIZE: usize = 100;
const STEP_US: i64 = 600_000_000;
const DAY_US: i64 = 86_400_000_000;
/// 2026-11-01T00:00:00Z: the month starts here.
const START: i64 = 1_793_491_200_000_000;
const METERS: [(&str, &str, &str); 10] = [
    ("cpu", "cumulative", "ns"),
    ("cpu_util", "gauge", "%"),
    ("memory.usage", "gauge", "MB"),
    ("disk.read.bytes", "cumulative", "B"),
    ("disk.write.bytes", "cumulative", "B"),
    ("disk.read.requests", "cumulative", "request"),
    ("disk.write.requests", "cumulative", "request"),
    ("network.incoming.bytes", "cumulative", "B"),
    ("network.outgoing.bytes", "cumulative", "B"),
    ("vcpus", "gauge", "vcpu"),
];
const BATCH: usize = 1000;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn instance(index: usize) -> String {
    format!("0b3c{index:04}-9d2e-4f51-8a7c-1e5d2f0a{index:04}")
}

fn project(index: usize) -> String {
    format!("a1c2e3f4b5d6478899aabbcc{:08}", index / PROJECT_SIZE)
}

/// An instance's resource version: Nova's usual metadata.
fn version(index: usize) -> ResourceVersion {
    let flavor = ["m1.tiny", "m1.small", "m1.medium", "m1.large"][index % 4];
    let metadata = json!({
        "display_name": format!("web-{index}"), "host": format!("compute-{}", index % 20),
        "instance_type": flavor, "flavor": {"name": flavor, "vcpus": 1 + index % 4, "ram": 512 << (index % 4),
        "disk": 10, "ephemeral": 0}, "image_ref": "3e2f4c1d-0a9b-4c8d-8e7f-6a5b4c3d2e1f",
        "image_ref_url": null, "instance_host": format!("compute-{}", index % 20), "state": "running",
        "status": "active", "os_type": "linux", "architecture": "x86_64", "vcpus": 1 + index % 4,
        "memory_mb": 512 << (index % 4), "disk_gb": 10, "root_gb": 10, "ephemeral_gb": 0
    });
    ResourceVersion::new(
        &instance(index),
        Some("5f1e2d3c4b5a69788796a5b4c3d2e1f0"),
        Some(&project(index)),
        "openstack",
        &metadata.to_string(),
    )
}

/// Writes `instances` × 10 meters × `days` of 10-minute samples into `url`, in
/// time order; the samples written and the seconds it took.
fn generate(url: &StoreUrl, instances: usize, days: usize) -> (u64, f64) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut store = Store::open(url).await.expect("the store opens");
        let meters: Vec<MeterKey> = METERS
            .iter()
            .map(|(name, kind, unit)| MeterKey { name: name.to_string(), kind, unit: unit.to_string() })
            .collect();
        let versions: Vec<ResourceVersion> = (0..instances).map(version).collect();
        let steps = days as i64 * DAY_US / STEP_US;
        let started = Instant::now();
        let mut written = 0u64;
        let mut batch = WriteBatch { meters: meters.clone(), ..Default::default() };
        let mut in_batch: std::collections::HashMap<usize, u32> = Default::default();
        for step in 0..steps {
            let at = START + step * STEP_US;
            for (index, version) in versions.iter().enumerate() {
                let resource = *in_batch.entry(index).or_insert_with(|| {
                    batch.resources.push(version.clone());
                    batch.resources.len() as u32 - 1
                });
                for (meter, _) in METERS.iter().enumerate() {
                    let volume = match meter {
                        1 => ((step as usize * 7 + index * 13) % 100) as f64 + 0.25,
                        9 => (1 + index % 4) as f64,
                        _ => (step as f64 + 1.0) * (1000 + index) as f64,
                    };
                    batch.rows.push(Row {
                        message_id: format!("{step:05}-{index:04}-{meter}-{:08x}", (step as usize * 31 + index) as u32)
                            .into(),
                        meter: meter as u32,
                        resource,
                        volume,
                        timestamp_us: at + (index as i64 % 60) * 1_000_000,
                    });
                }
                if batch.rows.len() >= BATCH {
                    let full =
                        std::mem::replace(&mut batch, WriteBatch { meters: meters.clone(), ..Default::default() });
                    in_batch.clear();
                    written += store.write(Arc::new(full)).await.expect("a batch is stored").stored;
                }
            }
            if step % (DAY_US / STEP_US) == 0 && step > 0 {
                let rate = written as f64 / started.elapsed().as_secs_f64();
                eprintln!("api bench: day {} written ({written} samples, {rate:.0}/s)", step * STEP_US / DAY_US);
            }
        }
        if !batch.rows.is_empty() {
            written += store.write(Arc::new(batch)).await.expect("a batch is stored").stored;
        }
        (written, started.elapsed().as_secs_f64())
    })
}

/// The median and 95th percentile of `runs` answers to the paths `path` makes, ms.
fn latency(address: &str, runs: usize, path: impl Fn(usize) -> String) -> (f64, f64, usize) {
    let mut size = 0;
    for warm in 0..2 {
        let (status, body) = http(address, "GET", &path(runs + warm), b"").unwrap();
        assert_eq!(status, 200, "{}: {}", path(0), String::from_utf8_lossy(&body));
    }
    let mut times: Vec<f64> = (0..runs)
        .map(|run| {
            let started = Instant::now();
            let (status, body) = http(address, "GET", &path(run), b"").unwrap();
            let elapsed = started.elapsed().as_secs_f64() * 1000.0;
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            size = serde_json::from_slice::<serde_json::Value>(&body).unwrap().as_array().map_or(1, Vec::len);
            elapsed
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[runs / 2], times[(runs * 95).div_ceil(100) - 1], size)
}

fn iso(us: i64) -> String {
    pollen_host::api::time::isoformat(us)
}

fn q(conditions: &[(&str, &str, &str)]) -> String {
    conditions.iter().map(|(f, o, v)| format!("q.field={f}&q.op={o}&q.value={v}")).collect::<Vec<_>>().join("&")
}

/// Asks the common questions of the store at `url`.
fn questions(label: &str, url: &str, instances: usize, days: usize) {
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_pollen"));
    command
        .args(["api", "--store", url, "--listen", &address, "--log", "warn,pollen_host::cli=info"])
        .current_dir(dir.path());
    let mut api = Running::spawn(command, dir.path().join("unused"));
    api.wait_for_log("API serving", 1);
    let runs = 20;
    let projects = instances.div_ceil(PROJECT_SIZE);
    let end = START + days as i64 * DAY_US;
    let report = |question: &str, target: Option<f64>, (median, p95, rows): (f64, f64, usize)| {
        let verdict = match target {
            Some(t) if p95 <= t => format!("target ≤ {t} ms: met"),
            Some(t) => format!("target ≤ {t} ms: NOT met"),
            None => String::new(),
        };
        println!("api {label:<10} {question:<58} median {median:>7.1} ms  p95 {p95:>7.1} ms  ({rows} rows)  {verdict}");
    };
    report(
        "one resource's cpu_util over the month, period=3600",
        Some(50.0),
        latency(&address, runs, |run| {
            let conditions = [
                ("resource_id", "eq", &*instance(run * 37 % instances)),
                ("timestamp", "ge", &*iso(START)),
                ("timestamp", "lt", &*iso(end)),
            ];
            format!("/v2/meters/cpu_util/statistics?{}&period=3600", q(&conditions))
        }),
    );
    let day = |run: usize| START + ((run % days) as i64) * DAY_US;
    report(
        "a project's day of cpu_util, grouped per resource",
        Some(500.0),
        latency(&address, runs, |run| {
            let conditions = [
                ("project_id", "eq", &*project((run % projects) * PROJECT_SIZE)),
                ("timestamp", "ge", &*iso(day(run))),
                ("timestamp", "lt", &*iso(day(run) + DAY_US)),
            ];
            format!("/v2/meters/cpu_util/statistics?{}&groupby=resource_id", q(&conditions))
        }),
    );
    report(
        "a project's day of cpu_util, per resource and hour",
        None,
        latency(&address, runs, |run| {
            let conditions = [
                ("project_id", "eq", &*project((run % projects) * PROJECT_SIZE)),
                ("timestamp", "ge", &*iso(day(run))),
                ("timestamp", "lt", &*iso(day(run) + DAY_US)),
            ];
            format!("/v2/meters/cpu_util/statistics?{}&groupby=resource_id&period=3600", q(&conditions))
        }),
    );
    report(
        "GET /v2/resources of a project",
        Some(200.0),
        latency(&address, runs, |run| {
            format!("/v2/resources?{}", q(&[("project_id", "eq", &*project((run % projects) * PROJECT_SIZE))]))
        }),
    );
    report(
        "the latest cpu_util sample of a resource",
        None,
        latency(&address, runs, |run| {
            format!(
                "/v2/samples?{}&limit=1",
                q(&[("resource_id", "eq", &*instance(run * 37 % instances)), ("meter", "eq", "cpu_util")])
            )
        }),
    );
    report(
        "GET /v2/meters of a project",
        None,
        latency(&address, runs, |run| {
            format!("/v2/meters?{}&limit=1000", q(&[("project_id", "eq", &*project((run % projects) * PROJECT_SIZE))]))
        }),
    );
    api.stop();
}

fn main() {
    let instances = setting("POLLEN_API_INSTANCES", 1000);
    let days = setting("POLLEN_API_DAYS", 30);
    let expected = (instances * METERS.len() * days * (DAY_US / STEP_US) as usize) as u64;

    let only = std::env::var("POLLEN_API_ONLY").unwrap_or_default();
    if only != "sqlite" {
        postgresql(instances, days, expected);
    }
    if only != "postgresql" {
        sqlite(instances, days);
    }
}

/// PostgreSQL: the whole month.
fn postgresql(instances: usize, days: usize, expected: u64) {
    let pg_url = format!("postgresql://postgres@127.0.0.1:{POSTGRES_PORT}/{DATABASE}");
    let reuse = std::env::var("POLLEN_API_REUSE").is_ok_and(|v| v == "1")
        && psql(POSTGRES_PORT, "postgres", &format!("SELECT count(*) FROM pg_database WHERE datname = '{DATABASE}'"))
            == "1"
        && psql(POSTGRES_PORT, DATABASE, "SELECT count(*) FROM samples").parse::<u64>().ok() == Some(expected);
    if reuse {
        println!("api postgresql reusing the store of {expected} samples (POLLEN_API_REUSE=1)");
    } else {
        psql(POSTGRES_PORT, "postgres", &format!("DROP DATABASE IF EXISTS {DATABASE}"));
        psql(POSTGRES_PORT, "postgres", &format!("CREATE DATABASE {DATABASE}"));
        let (written, seconds) = generate(&StoreUrl::parse(&pg_url).unwrap(), instances, days);
        assert_eq!(written, expected);
        // What autovacuum leaves of a store after a while: statistics for the planner,
        // and the visibility map that lets statistics read the index alone.
        psql(POSTGRES_PORT, DATABASE, "VACUUM (ANALYZE)");
        println!(
            "api postgresql store of {written} samples ({instances} instances × 10 meters × {days} days) written in {seconds:.0} s: {:.0} samples/s",
            written as f64 / seconds
        );
    }
    let bytes: f64 =
        psql(POSTGRES_PORT, "postgres", &format!("SELECT pg_database_size('{DATABASE}')")).parse().unwrap();
    println!(
        "api postgresql store on disk: {:.0} MiB, {:.0} bytes per sample",
        bytes / 1048576.0,
        bytes / expected as f64
    );
    questions("postgresql", &pg_url, instances, days);
}

/// SQLite: a tenth.
fn sqlite(instances: usize, days: usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("samples.db");
    let sqlite_url = format!("sqlite://{}", path.display());
    let tenth = instances.div_ceil(10);
    let (written, seconds) = generate(&StoreUrl::parse(&sqlite_url).unwrap(), tenth, days);
    println!(
        "api sqlite store of {written} samples ({tenth} instances × 10 meters × {days} days) written in {seconds:.0} s: {:.0} samples/s",
        written as f64 / seconds
    );
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) as f64;
    println!("api sqlite store on disk: {:.0} MiB, {:.0} bytes per sample", bytes / 1048576.0, bytes / written as f64);
    questions("sqlite", &sqlite_url, tenth, days);
}
