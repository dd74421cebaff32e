//! Several agents sharing the work through the real Redis of this machine (issue 18):
//! `pollen run` processes on the same pipeline split a node's 300 domains, each polled
//! by exactly one of them in every cycle; one killed, the others take its share
//! within `membership_timeout`; a fourth joining moves about a quarter; one stopping
//! cleanly hands over at once.

mod common;

use common::*;
use pollen_testkit::NodeSpec;
use std::collections::{BTreeMap, BTreeSet};

const DOMAINS: usize = 300;
/// Seconds between cycles.
const INTERVAL: u64 = 2;

fn redis_is_up() -> bool {
    let up = std::net::TcpStream::connect("127.0.0.1:6379").is_ok();
    if !up {
        assert!(std::env::var("CI").is_err(), "CI: Redis is down on 127.0.0.1:6379");
        eprintln!("skipped: Redis is down on 127.0.0.1:6379");
    }
    up
}

/// A test-driver node of [`DOMAINS`] running domains: its folder, its file, and its
/// domains' ids.
fn node() -> (tempfile::TempDir, std::path::PathBuf, BTreeSet<String>) {
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("node.xml");
    let spec = NodeSpec { stopped_every: 0, ..NodeSpec::with_domains(DOMAINS) };
    spec.write(&node).unwrap();
    let domains = spec.domain_specs().iter().map(|d| d.uuid.clone()).collect();
    (dir, node, domains)
}

/// The `agent.coordination` lines of a test: Redis on `port`, groups under `prefix`,
/// a heartbeat every half second, members gone after 3 s.
fn coordinated(prefix: &str, port: u16) -> String {
    format!(
        "  coordination:\n    backend_url: redis://127.0.0.1:{port}\n    group_prefix: {prefix}\n    heartbeat: 0.5\n    membership_timeout: 3\n"
    )
}

/// One agent of the group: its workspace and its process.
struct Member {
    _workspace: Workspace,
    agent: Running,
}

/// Starts an agent polling `cpu` on the node's domains into its own file, coordinated
/// through Redis under `prefix`.
fn member(node: &std::path::Path, prefix: &str) -> Member {
    member_of(node, prefix, 6379)
}

/// The same through the Redis on `port`.
fn member_of(node: &std::path::Path, prefix: &str, port: u16) -> Member {
    let agent = format!(
        "  libvirt_uri: test://{}\n{}{}",
        node.display(),
        coordinated(prefix, port),
        grants(&["local_instances", "cpu"])
    );
    let sources = format!("  - name: compute\n    interval: {INTERVAL}\n    meters: [cpu]\n    sinks: [out]\n");
    start_member(&[builtin("local_instances"), builtin("cpu")], &agent, &sources)
}

/// Starts an agent of `plugins` with `agent` lines and `sources` (which send to the
/// sink `out`), whose one file publisher is the agent's samples.
fn start_member(plugins: &[std::path::PathBuf], agent: &str, sources: &str) -> Member {
    let workspace = Workspace::new(plugins);
    let out = workspace.path().join("samples.jsonl");
    let rest = format!("sources:\n{sources}sinks:\n  - name: out\n    publishers: ['file://{}']\n", out.display());
    workspace.write_pipeline(agent, &rest);
    let agent = Running::start(&workspace, &[], out);
    Member { _workspace: workspace, agent }
}

/// The samples each cycle published, in order, from the agent's `cycle done` lines.
fn published_per_cycle(agent: &Running) -> Vec<usize> {
    agent
        .log()
        .lines()
        .filter(|line| line.contains("cycle done"))
        .filter_map(|line| line.split_whitespace().find_map(|field| field.strip_prefix("samples=")?.parse().ok()))
        .collect()
}

/// The resources the agent's `cycle`-th cycle (from 0) polled: its samples, which
/// its one file publisher wrote in order after those of the cycles before.
fn cycle_share(agent: &mut Running, cycle: usize) -> BTreeSet<String> {
    agent.wait_for_log("cycle done", cycle + 1);
    let counts = published_per_cycle(agent);
    let (from, to) = (counts[..cycle].iter().sum::<usize>(), counts[..=cycle].iter().sum::<usize>());
    agent.wait("the cycle's samples written", |agent| agent.samples().len() >= to);
    agent.samples()[from..to].iter().map(|s| s["resource_id"].as_str().unwrap().to_string()).collect()
}

/// How many times an agent logged that its group has `count` members.
fn seen(member: &Member, count: usize) -> usize {
    member.agent.logged(&format!("members={count} "))
}

/// Waits until each agent logged once more that its group has `count` members (it had
/// `before` such lines), then for two more complete cycles of each; returns the
/// second, per agent (the first may have begun before the change).
fn settled(members: &mut [&mut Member], count: usize, before: &[usize]) -> Vec<BTreeSet<String>> {
    let needle = format!("members={count} ");
    for (member, before) in members.iter_mut().zip(before) {
        member.agent.wait_for_log(&needle, before + 1);
    }
    settled_cycles(members)
}

/// The shares of one cycle: each domain polled by exactly one agent.
fn check_partition(shares: &[BTreeSet<String>], domains: &BTreeSet<String>) {
    let mut owners: BTreeMap<&String, usize> = BTreeMap::new();
    for share in shares {
        for id in share {
            *owners.entry(id).or_default() += 1;
        }
    }
    let twice: Vec<_> = owners.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "polled by more than one agent: {twice:?}");
    let polled: BTreeSet<String> = owners.keys().map(|id| id.to_string()).collect();
    let missing: Vec<_> = domains.difference(&polled).collect();
    assert!(missing.is_empty(), "polled by none: {missing:?}");
    for share in shares {
        let even = domains.len() / shares.len();
        assert!(
            share.len() * 2 > even && share.len() < even * 2,
            "uneven shares: {:?}",
            shares.iter().map(BTreeSet::len).collect::<Vec<_>>()
        );
    }
}

#[test]
fn agents_share_a_node_s_domains_and_take_over_a_dead_one() {
    if !redis_is_up() {
        return;
    }
    let (_dir, node, domains) = node();
    assert_eq!(domains.len(), DOMAINS);
    let prefix = format!("pollen-test-{}", uuid::Uuid::new_v4().simple());

    let (mut a, mut b, mut c) = (member(&node, &prefix), member(&node, &prefix), member(&node, &prefix));
    let three = settled(&mut [&mut a, &mut b, &mut c], 3, &[0, 0, 0]);
    check_partition(&three, &domains);

    // A fourth joins: it takes about a quarter, and nothing moves between the others.
    let mut d = member(&node, &prefix);
    let four = settled(&mut [&mut a, &mut b, &mut c, &mut d], 4, &[0, 0, 0, 0]);
    check_partition(&four, &domains);
    let moved: usize = three.iter().zip(&four).map(|(before, after)| before.difference(after).count()).sum();
    assert_eq!(moved, four[3].len(), "only what the new member took moved");
    assert!(moved * 100 <= DOMAINS * 40, "{moved} of {DOMAINS} moved to the fourth agent");

    // One killed: the others see it gone within membership_timeout, then share all.
    let before = [seen(&a, 3), seen(&b, 3), seen(&c, 3)];
    d.agent.signal("KILL");
    let killed = std::time::Instant::now();
    for (member, before) in [&mut a, &mut b, &mut c].into_iter().zip(before) {
        member.agent.wait_for_log("members=3 ", before + 1);
    }
    // Within membership_timeout (3 s) and a heartbeat, unless the machine is loaded.
    eprintln!("a killed agent was seen gone after {:?}", killed.elapsed());
    let after_kill = settled_cycles(&mut [&mut a, &mut b, &mut c]);
    check_partition(&after_kill, &domains);
    // The three keep what they had: a killed member's share goes back to its owners.
    assert_eq!(after_kill, three, "the shares before the fourth joined");

    // One stopped cleanly: it leaves at once.
    let stopped = std::time::Instant::now();
    let log = c.agent.stop();
    assert!(log.contains("left the partition groups"), "{log}");
    let two = settled(&mut [&mut a, &mut b], 2, &[0, 0]);
    check_partition(&two, &domains);
    let handover = stopped.elapsed();
    a.agent.stop();
    b.agent.stop();
    eprintln!("handover after a clean stop (with two cycles to see it): {handover:?}");
}

/// Redis lost and back: the agents keep the last membership they read (each polls its
/// share: no gaps, no duplicates while nobody joins or dies), log the loss, and go on
/// coordinating once it is back.
#[test]
fn a_lost_redis_keeps_the_last_membership_and_the_agents_resume() {
    if !redis_is_up() {
        return;
    }
    let (_dir, node, domains) = node();
    let port = free_port();
    let redis = OwnRedis::start(port);
    let prefix = "pollen-test-lost";
    let (mut a, mut b) = (member_of(&node, prefix, port), member_of(&node, prefix, port));
    let before = settled(&mut [&mut a, &mut b], 2, &[0, 0]);
    check_partition(&before, &domains);

    redis.stop();
    for member in [&mut a, &mut b] {
        member.agent.wait_for_log("coordination backend unreachable", 1);
    }
    let lost = settled_cycles(&mut [&mut a, &mut b]);
    assert_eq!(lost, before, "each keeps its share while Redis is away");

    let redis = OwnRedis::start(port);
    // Back: the heartbeats succeed again (each re-joins the emptied groups).
    for member in [&mut a, &mut b] {
        member.agent.wait_for_log("coordination backend reachable again", 1);
    }
    let after = settled_cycles(&mut [&mut a, &mut b]);
    check_partition(&after, &domains);
    let log_a = a.agent.stop();
    let log_b = b.agent.stop();
    redis.stop();
    assert!(log_a.contains("left the partition groups") && log_b.contains("left the partition groups"));
}

/// The resources of each agent's second cycle from now (the first may have begun
/// before whatever changed).
fn settled_cycles(members: &mut [&mut Member]) -> Vec<BTreeSet<String>> {
    // A cycle may have begun before the change: the one after it is whole.
    let next: Vec<usize> = members.iter().map(|m| m.agent.logged("cycle done") + 1).collect();
    members.iter_mut().zip(next).map(|(member, cycle)| cycle_share(&mut member.agent, cycle)).collect()
}

/// Volumes a test made, deleted when it ends, however it ends (their status reset
/// first, for those a test put in `error`).
struct Volumes<'a> {
    runtime: &'a tokio::runtime::Runtime,
    cloud: &'a Cloud,
    base: String,
    ids: Vec<String>,
}

impl Drop for Volumes<'_> {
    fn drop(&mut self) {
        for id in &self.ids {
            let reset = serde_json::json!({"os-reset_status": {"status": "available"}});
            let url = format!("{}/volumes/{id}", self.base);
            self.runtime.block_on(async {
                let _ = self
                    .cloud
                    .http
                    .post(format!("{url}/action"))
                    .header("x-auth-token", &self.cloud.token)
                    .json(&reset)
                    .send()
                    .await;
                self.cloud.delete(url).await;
            });
        }
    }
}

/// Central agents on Cinder: three share every project's volumes (each volume polled
/// by exactly one agent in a cycle); a volume whose status changes stays with its
/// agent; one agent killed, the two others poll all.
#[test]
fn central_agents_share_cinder_s_volumes_and_a_status_change_moves_nothing() {
    if !redis_is_up() || !openstack_is_up() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cloud = runtime.block_on(Cloud::connect());
    let base = format!("{CINDER}/v3/{}", cloud.project);
    let mut ours = Volumes { runtime: &runtime, cloud: &cloud, base: base.clone(), ids: Vec::new() };
    for _ in 0..6 {
        let id = runtime.block_on(cloud.volume(&format!("pollen-coord-{}", uuid::Uuid::new_v4().simple()), 1));
        ours.ids.push(id);
    }
    for id in &ours.ids {
        assert_eq!(runtime.block_on(cloud.settled(format!("{base}/volumes/{id}"), "volume")), "available");
    }
    let listed = runtime.block_on(cloud.get(format!("{base}/volumes/detail?all_tenants=True")));
    let volumes: BTreeSet<String> =
        listed["volumes"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap().to_string()).collect();

    let prefix = format!("pollen-test-{}", uuid::Uuid::new_v4().simple());
    let central = |prefix: &str| {
        let agent = format!("{}{}", coordinated(prefix, 6379), with_account(None, &granted(&["cinder_volumes"])));
        let sources =
            format!("  - name: central\n    interval: {INTERVAL}\n    meters: [volume.size]\n    sinks: [out]\n");
        start_member(&[central("cinder_volumes"), central("volume_size")], &agent, &sources)
    };
    let (mut a, mut b, mut c) = (central(&prefix), central(&prefix), central(&prefix));
    let three = settled(&mut [&mut a, &mut b, &mut c], 3, &[0, 0, 0]);
    let polled: BTreeSet<String> = three.iter().flatten().cloned().collect();
    let mut owners: BTreeMap<&String, usize> = BTreeMap::new();
    for id in three.iter().flatten() {
        *owners.entry(id).or_default() += 1;
    }
    assert!(owners.values().all(|n| *n == 1), "a volume polled twice: {three:?}");
    assert_eq!(polled, volumes, "every volume polled");

    // A status change: the volume's owner stays.
    let changed = &ours.ids[0];
    let owner = three.iter().position(|share| share.contains(changed)).unwrap();
    runtime.block_on(
        cloud.send(
            cloud
                .http
                .post(format!("{base}/volumes/{changed}/action"))
                .json(&serde_json::json!({"os-reset_status": {"status": "error"}})),
        ),
    );
    let after = settled_cycles(&mut [&mut a, &mut b, &mut c]);
    assert!(after[owner].contains(changed), "the volume moved when its status changed");
    assert_eq!(after, three, "nothing moved");

    let before = [seen(&a, 2), seen(&b, 2)];
    c.agent.signal("KILL");
    let two = settled(&mut [&mut a, &mut b], 2, &before);
    let polled: BTreeSet<String> = two.iter().flatten().cloned().collect();
    a.agent.stop();
    b.agent.stop();
    assert_eq!(polled, volumes, "the two survivors poll every volume");
    assert!(two[0].is_disjoint(&two[1]));
}

/// Static resources are split by the same ring (Ceilometer's agents each poll them
/// all); a source that says `partitioned: false` is polled whole by every agent.
#[test]
fn static_resources_are_shared_and_an_unpartitioned_source_is_not() {
    if !redis_is_up() {
        return;
    }
    let prefix = format!("pollen-test-{}", uuid::Uuid::new_v4().simple());
    let shared: Vec<String> = (0..40).map(|i| format!("shared-{i:02}")).collect();
    let whole: Vec<String> = (0..5).map(|i| format!("whole-{i}")).collect();
    let start = || {
        let agent = format!("{}{}", coordinated(&prefix, 6379), grants(&["local_instances"]));
        let list = |ids: &[String]| ids.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(", ");
        let sources = format!(
            "  - name: shared\n    interval: {INTERVAL}\n    meters: [test.liar]\n    resources: [{}]\n    sinks: [out]\n  - name: whole\n    interval: {INTERVAL}\n    meters: [test.liar]\n    resources: [{}]\n    partitioned: false\n    sinks: [out]\n",
            list(&shared),
            list(&whole)
        );
        start_member(&[builtin("local_instances"), hostile("liar")], &agent, &sources)
    };
    let (mut a, mut b) = (start(), start());
    let shares = settled(&mut [&mut a, &mut b], 2, &[0, 0]);
    a.agent.stop();
    b.agent.stop();
    let of = |share: &BTreeSet<String>, prefix: &str| -> BTreeSet<String> {
        share.iter().filter(|id| id.starts_with(prefix)).cloned().collect()
    };
    let (a_shared, b_shared) = (of(&shares[0], "shared-"), of(&shares[1], "shared-"));
    assert!(a_shared.is_disjoint(&b_shared), "a static resource polled twice: {a_shared:?} {b_shared:?}");
    let all: BTreeSet<String> = a_shared.union(&b_shared).cloned().collect();
    assert_eq!(all, shared.iter().cloned().collect(), "every static resource polled");
    assert!(!a_shared.is_empty() && !b_shared.is_empty(), "both take a share");
    let whole: BTreeSet<String> = whole.into_iter().collect();
    assert_eq!(of(&shares[0], "whole-"), whole, "the unpartitioned source, whole");
    assert_eq!(of(&shares[1], "whole-"), whole);
}
