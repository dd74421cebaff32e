//! `cargo bench -p pollen-host --bench coordination`: what sharing the work through
//! Redis costs (issue 18; targets: coordination at most 5 % of a cycle's CPU, a dead
//! agent's share taken over within `membership_timeout` + 1 s of the next cycle).
//!
//! - the hash ring: building it for 3 members and deciding 10,000 resources' owners,
//!   what every cycle of a coordinated agent does per group;
//! - a heartbeat: one round trip to the local Redis (127.0.0.1:6379), with the client's
//!   CPU, averaged over 200;
//! - end to end: three `pollen run` agents (this build) sharing a 10,000-domain
//!   test-driver node (`cpu`, interval `POLLEN_COORDINATION_INTERVAL`, default 20 s),
//!   each one's CPU per cycle over three cycles after a warm-up, and what the ring and
//!   the heartbeats take of it; then one killed: how long until the others poll
//!   without it (their `members=2` lines), and whether that is within
//!   `membership_timeout` (5 s here) + 1 s.

mod shared;

use pollen_host::coordination::{Coordinator, HashRing};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const DOMAINS: usize = 10_000;
const MEMBERSHIP_TIMEOUT: f64 = 5.0;
const HEARTBEAT: f64 = 1.0;

fn interval() -> u64 {
    std::env::var("POLLEN_COORDINATION_INTERVAL").ok().and_then(|v| v.parse().ok()).unwrap_or(20)
}

fn process_cpu() -> f64 {
    shared::cpu_seconds(std::process::id())
}

/// One agent: its process, and its log lines as they come.
struct Agent {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
}

fn agent(dir: &std::path::Path, node: &std::path::Path, prefix: &str, index: usize) -> Agent {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let plugins = dir.join(format!("plugins-{index}"));
    std::fs::create_dir_all(&plugins).unwrap();
    for name in ["local_instances", "cpu"] {
        std::fs::copy(repo.join(format!("plugins/dist/{name}.wasm")), plugins.join(format!("{name}.wasm"))).unwrap();
    }
    let config = dir.join(format!("agent-{index}.yaml"));
    std::fs::write(
        &config,
        format!(
            "agent:\n  libvirt_uri: test://{node}\n  plugin_dir: {plugins}\n  cache_dir: {cache}\n  coordination:\n    backend_url: redis://127.0.0.1:6379\n    group_prefix: {prefix}\n    heartbeat: {HEARTBEAT}\n    membership_timeout: {MEMBERSHIP_TIMEOUT}\n  plugins:\n    local_instances: {{grants: [hypervisor]}}\n    cpu: {{grants: [hypervisor]}}\nsources:\n  - name: compute\n    interval: {interval}\n    meters: [cpu]\n    sinks: [out]\nsinks:\n  - name: out\n    publishers: ['file://{out}']\n",
            node = node.display(),
            plugins = plugins.display(),
            cache = dir.join("cache").display(),
            interval = interval(),
            out = dir.join(format!("out-{index}.jsonl")).display(),
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pollen"))
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (send, lines) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = send.send(line);
        }
    });
    Agent { child, lines }
}

impl Agent {
    /// Waits for a log line holding `needle`; its time.
    fn wait_for(&self, needle: &str, patience: Duration) -> Option<Instant> {
        let started = Instant::now();
        loop {
            let line = self.lines.recv_timeout(patience.saturating_sub(started.elapsed())).ok()?;
            if line.contains(needle) {
                return Some(Instant::now());
            }
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // The ring, per cycle and group.
    let members: Vec<String> = (0..3).map(|i| format!("host-{i}-1234-abcdef{i:02}")).collect();
    let ids: Vec<String> = (0..DOMAINS).map(|i| uuid::Uuid::from_u128(i as u128 * 7919).to_string()).collect();
    let rounds = 20;
    let started = Instant::now();
    let mut mine = 0;
    for _ in 0..rounds {
        let ring = HashRing::new(&members);
        mine += ids.iter().filter(|id| ring.owner(id) == Some(members[0].as_str())).count();
    }
    let ring_s = started.elapsed().as_secs_f64() / f64::from(rounds);
    println!(
        "coordination ring: 3 members, {DOMAINS} resources: {:.2} ms a cycle (this agent's share {:.1} %)",
        ring_s * 1000.0,
        mine as f64 * 100.0 / (DOMAINS * rounds as usize) as f64
    );

    if std::net::TcpStream::connect("127.0.0.1:6379").is_err() {
        println!("coordination: the rest skipped (no Redis on 127.0.0.1:6379)");
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let prefix = format!("pollen-bench-{}", uuid::Uuid::new_v4().simple());
    let settings = pollen_host::config::CoordinationSettings {
        group_prefix: prefix.clone(),
        ..pollen_host::config::CoordinationSettings::with_backend("redis://127.0.0.1:6379".into())
    };
    let (heartbeat_s, heartbeat_cpu) = runtime.block_on(async {
        let coordinator = Coordinator::start(&settings).unwrap();
        let groups: std::collections::BTreeSet<String> = ["local_instances".to_string()].into();
        coordinator.join(groups.clone()).await;
        let (cpu, started) = (process_cpu(), Instant::now());
        for _ in 0..200 {
            coordinator.join(groups.clone()).await;
        }
        let figures = (started.elapsed().as_secs_f64() / 200.0, (process_cpu() - cpu) / 200.0);
        coordinator.leave().await;
        figures
    });
    println!(
        "coordination heartbeat: {:.2} ms a round trip, {:.3} ms of the client's CPU",
        heartbeat_s * 1000.0,
        heartbeat_cpu * 1000.0
    );

    // End to end.
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("node.xml");
    pollen_testkit::NodeSpec { stopped_every: 0, ..pollen_testkit::NodeSpec::with_domains(DOMAINS) }
        .write(&node)
        .unwrap();
    let patience = Duration::from_secs(interval() * 6 + 300);
    let agents: Vec<Agent> = (0..3).map(|i| agent(dir.path(), &node, &prefix, i)).collect();
    for agent in &agents {
        agent.wait_for("members=3 ", patience).expect("three members");
    }
    // A warm-up cycle after all three joined, then three.
    for agent in &agents {
        agent.wait_for("cycle done", patience).expect("a cycle");
    }
    let before: Vec<f64> = agents.iter().map(|a| shared::cpu_seconds(a.child.id())).collect();
    for agent in &agents {
        for _ in 0..3 {
            agent.wait_for("cycle done", patience).expect("a cycle");
        }
    }
    let beats_per_cycle = interval() as f64 / HEARTBEAT;
    for (index, agent) in agents.iter().enumerate() {
        let cpu = (shared::cpu_seconds(agent.child.id()) - before[index]) / 3.0;
        let coordination = ring_s + beats_per_cycle * heartbeat_cpu;
        println!(
            "coordination agent {index}: {:.3} CPU s a cycle (a third of {DOMAINS} domains); ring + {beats_per_cycle:.0} heartbeats {:.4} s = {:.2} % of it (target <= 5 %)",
            cpu,
            coordination,
            coordination * 100.0 / cpu
        );
    }
    // One killed: the others' next membership.
    let mut agents = agents;
    let mut killed = agents.pop().unwrap();
    let _ = killed.child.kill();
    let at = Instant::now();
    for agent in &agents {
        match agent.wait_for("members=2 ", patience) {
            Some(seen) => {
                let taken = seen.duration_since(at).as_secs_f64();
                let bound = MEMBERSHIP_TIMEOUT + 1.0;
                println!(
                    "coordination takeover: the dead agent's share is the others' after {taken:.2} s ({}; membership_timeout {MEMBERSHIP_TIMEOUT} s + 1 s), polled from their next cycle",
                    if taken <= bound { "within" } else { "NOT within" }
                );
            }
            None => println!("coordination takeover: not seen"),
        }
    }
    for agent in agents {
        shared::stop(agent.child);
    }
    let _ = killed.child.wait();
}
