//! The real hypervisor tier: `libvirtd` with QEMU on this machine
//! (`scripts/hypervisor.sh start`, run by `make setup`), domains booted by the tests
//! (64 MiB, no OS, a raw disk, a tap vNIC, Nova metadata), polled through
//! `qemu:///system` and checked against `virsh domstats`; then the faults: a domain
//! destroyed mid-cycle, libvirtd restarted, libvirtd frozen.
//!
//! In CI (`CI=true`) an unreachable libvirtd fails these tests; elsewhere they are
//! skipped with a message.

mod common;

use common::*;
use pollen_host::hypervisor::{Hypervisor, HypervisorError};
use pollen_host::pipeline::{cycle::run_cycle, Agent};
use pollen_testkit::QemuDomain;
use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use virt::connect::Connect;
use virt::domain::Domain;

const URI: &str = "qemu:///system";
const COMPUTE_PLUGINS: [&str; 7] = ["local_instances", "cpu", "memory", "instance", "disk", "network", "perf"];

/// These tests restart and freeze the one libvirtd: one at a time, in this process
/// and in any other test run on the machine (another clone's `make test`), through a
/// lock file.
static DAEMON: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The right to restart and freeze libvirtd, until dropped.
struct Daemon {
    _in_process: tokio::sync::MutexGuard<'static, ()>,
    _across_processes: std::fs::File,
}

async fn daemon() -> Option<Daemon> {
    let in_process = DAEMON.lock().await;
    let lock = std::env::temp_dir().join("pollen-tests-libvirtd.lock");
    let file = std::fs::File::options().create(true).truncate(false).write(true).open(&lock).expect("the lock file");
    let file = tokio::task::spawn_blocking(move || file.lock().map(|()| file)).await.unwrap().expect("lock libvirtd");
    let guard = Daemon { _in_process: in_process, _across_processes: file };
    if Connect::open(Some(URI)).is_ok() {
        return Some(guard);
    }
    let message = "libvirtd does not answer on qemu:///system; run `scripts/hypervisor.sh start` (`make setup` does)";
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
    eprintln!("skipped: {message}");
    None
}

fn script(command: &str) {
    let status = Command::new(repo().join("scripts/hypervisor.sh")).arg(command).status().expect("hypervisor.sh runs");
    assert!(status.success(), "scripts/hypervisor.sh {command} failed");
}

/// Domains booted for one test, destroyed when it ends (even when it fails).
struct Booted {
    domains: Vec<QemuDomain>,
    _dir: tempfile::TempDir,
}

impl Booted {
    fn new(prefix: &str, count: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let connection = Connect::open(Some(URI)).unwrap();
        let domains: Vec<QemuDomain> = (1..=count).map(|i| QemuDomain::new(prefix, i, dir.path())).collect();
        for domain in &domains {
            if let Ok(old) = Domain::lookup_by_name(&connection, &domain.name) {
                let _ = old.destroy();
            }
            domain.prepare().unwrap();
            Domain::create_xml(&connection, &domain.to_xml(), 0)
                .unwrap_or_else(|e| panic!("cannot boot {}: {e}", domain.name));
        }
        Self { domains, _dir: dir }
    }
}

impl Drop for Booted {
    fn drop(&mut self) {
        if let Ok(connection) = Connect::open(Some(URI)) {
            for domain in &self.domains {
                if let Ok(running) = Domain::lookup_by_name(&connection, &domain.name) {
                    let _ = running.destroy();
                }
            }
        }
    }
}

fn agent(workspace: &Workspace, extra: &str) -> Agent {
    workspace.polling_agent(&format!("  libvirt_uri: {URI}\n{extra}{}", grants(&COMPUTE_PLUGINS)), "meters: ['*']")
}

/// `(meter, resource id) -> volume` of one cycle.
async fn cycle(agent: &Agent) -> (HashMap<(String, String), f64>, usize) {
    let output = run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources).await;
    let samples = output.samples[0]
        .iter()
        .map(|s| {
            let meter = agent.registry.meter(s.meter).unwrap().name.clone();
            ((meter, agent.registry.resource(s.resource).unwrap().id.to_string()), s.volume)
        })
        .collect();
    (samples, output.unreadable_domains)
}

/// `virsh domstats --raw NAME` as key/value pairs.
fn domstats(name: &str) -> HashMap<String, u64> {
    let output = Command::new("virsh").args(["-c", URI, "domstats", "--raw", name]).output().unwrap();
    assert!(output.status.success(), "virsh domstats {name}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.trim().split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn real_domains_report_what_virsh_domstats_reports() {
    let Some(_daemon) = daemon().await else { return };
    let booted = Booted::new("pollen-it-values", 2);
    for domain in &booted.domains {
        let readable = || {
            ["balloon.rss", "block.0.rd.reqs", "net.0.rx.bytes"].iter().all(|k| domstats(&domain.name).contains_key(*k))
        };
        wait_until(&format!("libvirt's statistics of {}", domain.name), readable, || {
            format!("{:?}", domstats(&domain.name))
        });
    }
    let workspace = Workspace::new(&COMPUTE_PLUGINS.map(builtin));
    let agent = agent(&workspace, "");

    let before: Vec<_> = booted.domains.iter().map(|d| domstats(&d.name)).collect();
    let (samples, unreadable) = cycle(&agent).await;
    let after: Vec<_> = booted.domains.iter().map(|d| domstats(&d.name)).collect();
    assert_eq!(unreadable, 0);
    assert_eq!(agent.hypervisor.per_domain_reads(), 0, "QEMU's bulk read has everything: no per-domain calls");

    for ((domain, before), after) in booted.domains.iter().zip(&before).zip(&after) {
        let get = |meter: &str, id: &str| {
            *samples.get(&(meter.to_string(), id.to_string())).unwrap_or_else(|| panic!("no {meter} for {id}"))
        };
        let within = |meter: &str, id: &str, key: &str, scale: f64| {
            let polled = get(meter, id);
            let (low, high) = (before[key] as f64 / scale, after[key] as f64 / scale);
            assert!(
                low <= polled && polled <= high,
                "{meter} of {id}: {polled} not within domstats {key} {low}..={high}"
            );
        };
        let id = domain.uuid.as_str();
        assert_eq!(get("power.state", id), before["state.state"] as f64);
        assert_eq!(get("vcpus", id), before["vcpu.current"] as f64);
        assert_eq!(get("memory", id), before["balloon.current"] as f64 / 1024.0);
        assert_eq!(get("disk.root.size", id), 1.0);
        // cpu: the vCPUs' run + wait time, as Ceilometer prefers.
        let vcpu_time = |stats: &HashMap<String, u64>| {
            stats.get("vcpu.0.time").copied().unwrap_or(0) + stats.get("vcpu.0.wait").copied().unwrap_or(0)
        };
        let cpu = get("cpu", id);
        assert!(vcpu_time(before) as f64 <= cpu && cpu <= vcpu_time(after) as f64, "cpu {cpu}");
        let rss = get("memory.resident", id) * 1024.0;
        // QEMU's resident memory is a gauge: it moves both ways, by a megabyte or so
        // between two reads on a busy machine, so the polled value (a third read) may
        // lie outside them. 5 % of slack; the exact conversion is checked against the
        // test driver's fixed values (compute.rs).
        let (a, b) = (before["balloon.rss"] as f64, after["balloon.rss"] as f64);
        let slack = a.max(b) * 0.05;
        assert!(
            a.min(b) - slack <= rss && rss <= a.max(b) + slack,
            "memory.resident {rss} KiB vs domstats {a}, {b} (± {slack})"
        );

        let disk = format!("{id}-vda");
        within("disk.device.read.requests", &disk, "block.0.rd.reqs", 1.0);
        within("disk.device.read.bytes", &disk, "block.0.rd.bytes", 1.0);
        within("disk.device.write.requests", &disk, "block.0.wr.reqs", 1.0);
        within("disk.device.read.latency", &disk, "block.0.rd.times", 1.0);
        assert_eq!(get("disk.device.capacity", &disk), before["block.0.capacity"] as f64);
        assert_eq!(get("disk.device.capacity", &disk), 16.0 * 1024.0 * 1024.0);

        let vnic = format!("{}-{id}-{}", domain.name, domain.tap);
        within("network.incoming.bytes", &vnic, "net.0.rx.bytes", 1.0);
        within("network.incoming.packets", &vnic, "net.0.rx.pkts", 1.0);
        within("network.outgoing.bytes", &vnic, "net.0.tx.bytes", 1.0);
        assert_eq!(get("network.incoming.bytes.delta", &vnic), 0.0, "first poll");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_domain_destroyed_mid_cycle_costs_only_its_own_samples() {
    let Some(_daemon) = daemon().await else { return };
    let booted = Booted::new("pollen-it-destroy", 2);
    let (doomed, survivor) = (&booted.domains[0], &booted.domains[1]);
    let hypervisor = Arc::new(Hypervisor::new(URI));

    // The cycle lists both; the first is destroyed before the statistics are read.
    let snapshot = hypervisor.cycle();
    assert!(snapshot.domains().unwrap().iter().any(|d| d.uuid == doomed.uuid));
    let connection = Connect::open(Some(URI)).unwrap();
    Domain::lookup_by_name(&connection, &doomed.name).unwrap().destroy().unwrap();
    snapshot.prefetch(&[&doomed.uuid, &survivor.uuid]).unwrap();
    let error = snapshot.stats(&doomed.uuid).map(|_| ()).unwrap_err();
    assert!(matches!(error, HypervisorError::NoSuchDomain(_)), "{error}");
    assert!(snapshot.stats(&survivor.uuid).is_ok(), "the other domain is read as usual");
    let unreadable = snapshot.unreadable();
    assert_eq!(unreadable.len(), 1);
    assert_eq!(unreadable[0].0, doomed.uuid);

    // A whole cycle after it: no failure, the survivor's samples.
    let workspace = Workspace::new(&COMPUTE_PLUGINS.map(builtin));
    let agent = agent(&workspace, "");
    let (samples, _) = cycle(&agent).await;
    assert!(samples.contains_key(&("cpu".to_string(), survivor.uuid.clone())));
    assert!(!samples.keys().any(|(_, id)| id.contains(&doomed.uuid)));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_reconnects_after_libvirtd_restarts() {
    let Some(_daemon) = daemon().await else { return };
    let (_booted, _workspace, agent, id) = one_domain_polled("pollen-it-restart", "").await;

    script("restart");
    samples_come_back(&agent, &id, "libvirtd restarted").await;
}

/// One booted domain and an agent (with `extra` agent settings) that polls it; the
/// first cycle is checked to have its `cpu` sample. Returns the domain's UUID last.
async fn one_domain_polled(prefix: &str, extra: &str) -> (Booted, Workspace, Agent, String) {
    let booted = Booted::new(prefix, 1);
    let id = booted.domains[0].uuid.clone();
    let workspace = Workspace::new(&COMPUTE_PLUGINS.map(builtin));
    let agent = agent(&workspace, extra);
    assert!(has_cpu(&cycle(&agent).await.0, &id));
    (booted, workspace, agent, id)
}

/// Whether a cycle's samples include the domain's `cpu`.
fn has_cpu(samples: &HashMap<(String, String), f64>, id: &str) -> bool {
    samples.contains_key(&("cpu".to_string(), id.to_string()))
}

/// Runs cycles until the domain's `cpu` sample is there again (within the tests'
/// safety net).
async fn samples_come_back(agent: &Agent, id: &str, after: &str) {
    let started = Instant::now();
    let mut cycles = 0;
    loop {
        cycles += 1;
        if has_cpu(&cycle(agent).await.0, id) {
            return;
        }
        assert!(started.elapsed() < SAFETY_NET, "no samples {SAFETY_NET:?} after {after} ({cycles} cycles)");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// SIGCONTs libvirtd when dropped, so a failing test never leaves it frozen.
struct Frozen(u32);

impl Frozen {
    fn libvirtd() -> Self {
        let pid = String::from_utf8(Command::new("pgrep").args(["-x", "libvirtd"]).output().unwrap().stdout).unwrap();
        let pid: u32 = pid.lines().next().expect("libvirtd runs").trim().parse().unwrap();
        assert!(Command::new("kill").args(["-STOP", &pid.to_string()]).status().unwrap().success());
        Self(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.0.to_string()]).status();
    }
}

/// What a plugin waits on libvirt is not its own running time: a libvirtd that
/// answers only after three seconds holds the discoverer up for three times its
/// `call_timeout`, and the cycle still gets its samples.
#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_waiting_on_libvirtd_longer_than_its_own_deadline_goes_on() {
    let Some(_daemon) = daemon().await else { return };
    let (_booted, _workspace, agent, id) =
        one_domain_polled("pollen-it-slow", "  call_timeout: 1\n  libvirt_timeout: 20\n").await;

    let frozen = Frozen::libvirtd();
    let thaw = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(3));
        drop(frozen);
    });
    let started = Instant::now();
    let (samples, _) = cycle(&agent).await;
    let took = started.elapsed();
    thaw.join().unwrap();
    assert!(took >= Duration::from_secs(3), "the cycle waited for libvirtd to answer: {took:?}");
    assert!(has_cpu(&samples, &id), "the discoverer was not stopped for waiting on libvirtd");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_libvirtd_times_out_and_the_agent_recovers() {
    let Some(_daemon) = daemon().await else { return };
    let (_booted, _workspace, agent, id) = one_domain_polled("pollen-it-freeze", "  libvirt_timeout: 0.5\n").await;

    let frozen = Frozen::libvirtd();
    for round in 0..2 {
        let started = Instant::now();
        let (samples, _) = tokio::time::timeout(SAFETY_NET, cycle(&agent))
            .await
            .expect("a cycle against a frozen libvirtd still ends");
        // The first cycle waits for libvirt_timeout, the second not even that (the
        // connection is being re-opened); neither for ever. The upper bound is loose (a
        // loaded machine), the lower one exact.
        let took = started.elapsed();
        let least = if round == 0 { Duration::from_millis(500) } else { Duration::ZERO };
        assert!(took >= least && took < Duration::from_secs(30), "cycle {round} took {took:?}");
        assert!(!has_cpu(&samples, &id), "nothing is read from a frozen libvirtd");
    }
    drop(frozen);
    samples_come_back(&agent, &id, "libvirtd was thawed").await;
}
