//! `cargo bench -p pollen-host --bench compute [-- URI-KIND]`: one full compute cycle
//! (every built-in compute pollster, all meters) on generated test-driver nodes of 100,
//! 1000 and 10000 domains (`pollen_testkit::NodeSpec`): wall time, CPU time of the
//! agent, samples per cycle and peak RSS.
//!
//! Beside each cycle, its hypervisor reads alone: the same domains read as a cycle
//! reads them (100 at a time, XML kept from the first cycle), with no plugin and no
//! sample. That is the part of a cycle's CPU that libvirt's calls cost, a floor the
//! rest of the cycle adds to (through libvirtd, the test driver's bulk read has only
//! `state.*`, so each domain costs about six calls).
//!
//! Each size runs in a child process of its own, so its peak RSS is its own. In-process
//! (`test:///node.xml`) always; through `libvirtd` (`test+unix:///node.xml`) when
//! `POLLEN_BENCH_LIBVIRTD=1` and a system libvirtd runs (`scripts/hypervisor.sh start`).
//!
//! Needs `make plugins`.

mod shared;

use pollen_host::config;
use pollen_host::pipeline::cycle::{stream_cycle, CHUNK};
use pollen_host::pipeline::Agent;
use pollen_testkit::NodeSpec;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const SIZES: [usize; 3] = [100, 1000, 10000];
const PLUGINS: [&str; 7] = ["local_instances", "cpu", "memory", "instance", "disk", "network", "perf"];
/// Cycles measured after the first (which fills the XML cache).
const CYCLES: u32 = 5;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// CPU time (user + system) of this process so far, in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// In the child: builds the agent on `uri` and measures cycles; prints one line.
fn measure(uri: &str, cache: &str, label: &str) {
    // As `pollen` itself does at start.
    pollen_host::allocator::limit_arenas();
    // `POLLEN_BENCH_SELF_METRICS=0`: Pollen's own metrics not recorded (their cost).
    if std::env::var("POLLEN_BENCH_SELF_METRICS").is_ok_and(|v| v == "0") {
        pollen_host::self_metrics::get().set_enabled(false);
    }
    // `POLLEN_BENCH_LOG=debug` shows each phase of each cycle (profiling).
    if let Ok(filter) = std::env::var("POLLEN_BENCH_LOG") {
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    }
    // `POLLEN_BENCH_PLUGINS=local_instances,network` measures only those (profiling).
    let only = std::env::var("POLLEN_BENCH_PLUGINS").unwrap_or_default();
    let chosen: Vec<&str> =
        PLUGINS.iter().copied().filter(|p| only.is_empty() || only.split(',').any(|o| o == *p)).collect();
    let plugin_dir = tempfile::tempdir().unwrap();
    for plugin in &chosen {
        let file = format!("{plugin}.wasm");
        let built = repo().join("plugins/dist").join(&file);
        std::fs::copy(&built, plugin_dir.path().join(&file))
            .unwrap_or_else(|e| panic!("{}: {e} (run `make plugins`)", built.display()));
    }
    let plugins: String = chosen.iter().map(|p| format!("    {p}: {{grants: [hypervisor]}}\n")).collect();
    let yaml = format!(
        "agent:\n  libvirt_uri: {uri}\n  libvirt_timeout: 60\n  call_wall_timeout: 120\n  plugin_dir: {}\n  cache_dir: {cache}\n  plugins:\n{plugins}sources:\n  - {{name: compute, interval: 60, meters: ['*'], sinks: [out]}}\nsinks:\n  - {{name: out, publishers: ['stdout://']}}\n",
        plugin_dir.path().display()
    );
    let pipeline = config::parse(&yaml, Path::new("bench.yaml"), &repo()).expect("bench pipeline");
    let agent = Agent::build(pipeline).expect("agent");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // As the agent does, each chunk's samples are handed over as soon as they are
    // polled (the agent to its sinks; here they are counted and dropped: publishing is
    // measured by the `core` bench).
    let cycle = || {
        let mut samples = 0;
        let count = |chunk: Vec<Vec<_>>| {
            samples += chunk.iter().map(Vec::len).sum::<usize>();
            std::future::ready(())
        };
        let output = runtime.block_on(stream_cycle(
            &agent.plugins,
            &agent.hypervisor,
            &agent.registry,
            &agent.pipeline.sources,
            count,
        ));
        assert!(output.failures.is_empty(), "{:?}", output.failures);
        samples
    };
    let first = Instant::now();
    cycle();
    let first = first.elapsed();
    let (cpu_start, wall_start) = (cpu_seconds(), Instant::now());
    let mut samples = 0;
    for _ in 0..CYCLES {
        samples = cycle();
    }
    let wall = wall_start.elapsed().as_secs_f64() / f64::from(CYCLES);
    let cpu = (cpu_seconds() - cpu_start) / f64::from(CYCLES);
    println!(
        "compute cycle, {label}: {:.1} ms wall, {:.1} ms agent CPU per cycle, {samples} samples/cycle, peak RSS {:.1} MiB (first cycle {:.0} ms)",
        wall * 1e3,
        cpu * 1e3,
        shared::peak_rss_mib("self"),
        first.as_secs_f64() * 1e3
    );
    let (cpu_start, wall_start) = (cpu_seconds(), Instant::now());
    for _ in 0..CYCLES {
        read_every_domain(&agent.hypervisor);
    }
    println!(
        "hypervisor reads alone, {label}: {:.1} ms wall, {:.1} ms CPU per cycle",
        wall_start.elapsed().as_secs_f64() / f64::from(CYCLES) * 1e3,
        (cpu_seconds() - cpu_start) / f64::from(CYCLES) * 1e3
    );
}

/// What a cycle reads of the hypervisor, and nothing else: every domain's statistics,
/// a cycle's [`CHUNK`] at a time, each chunk released once read.
fn read_every_domain(hypervisor: &std::sync::Arc<pollen_host::hypervisor::Hypervisor>) {
    let snapshot = hypervisor.cycle();
    let domains = snapshot.domains().expect("the domain list");
    let uuids: Vec<&str> = domains.iter().map(|domain| domain.uuid.as_str()).collect();
    for chunk in uuids.chunks(CHUNK) {
        snapshot.prefetch(chunk).expect("statistics of a chunk");
        snapshot.release(chunk);
    }
    assert!(snapshot.unreadable().is_empty(), "every domain read: {:?}", snapshot.unreadable());
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    if let [one, uri, cache, label] = args.as_slice() {
        if one == "one" {
            return measure(uri, cache, label);
        }
    }
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let mut kinds = vec![("in-process", "test")];
    if std::env::var("POLLEN_BENCH_LIBVIRTD").is_ok_and(|v| v == "1") {
        kinds.push(("through libvirtd", "test+unix"));
    }
    for domains in SIZES {
        let node = work.path().join(format!("node-{domains}.xml"));
        NodeSpec { domains, stopped_every: 0, plain_every: 7 }.write(&node).unwrap();
        for (kind, scheme) in &kinds {
            let uri = format!("{scheme}://{}", node.display());
            // At 1000 domains in-process, also without Pollen's own metrics, by turns
            // (three each): what recording them costs.
            let runs: &[(&str, &str)] = if domains == 1000 && *scheme == "test" {
                &[
                    ("1", ""),
                    ("0", ", self-metrics off"),
                    ("1", ""),
                    ("0", ", self-metrics off"),
                    ("1", ""),
                    ("0", ", self-metrics off"),
                ]
            } else {
                &[("1", "")]
            };
            for (metrics, note) in runs {
                let label = format!("{domains} domains, {kind}{note}");
                let status = Command::new(std::env::current_exe().unwrap())
                    .args(["one", &uri, &cache.display().to_string(), &label])
                    .env("POLLEN_BENCH_SELF_METRICS", metrics)
                    .status()
                    .unwrap();
                assert!(status.success(), "{label} failed");
            }
        }
    }
}
