//! Every compute meter, polled from a generated test-driver node of 60 domains
//! (`pollen_testkit::NodeSpec`) by the built-in plugins, checked against what libvirt
//! itself reports for each domain: name, type, unit, resource id, metadata and value.

mod common;

use common::*;
use pollen_host::pipeline::{cycle::run_cycle, cycle::stream_cycle, Agent};
use pollen_host::sample::MeterType;
use pollen_testkit::{DomainSpec, NodeSpec};
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, HashMap};
use virt::connect::Connect;
use virt::domain::Domain;

const COMPUTE_PLUGINS: [&str; 7] = ["local_instances", "cpu", "memory", "instance", "disk", "network", "perf"];

/// One polled sample, resolved.
#[derive(Debug, Clone)]
struct Polled {
    meter: String,
    kind: MeterType,
    unit: String,
    resource_id: String,
    user_id: Option<String>,
    project_id: Option<String>,
    metadata: Map<String, Value>,
    volume: f64,
}

/// An agent polling every compute meter from `node_uri`.
fn compute_agent(workspace: &Workspace, node_uri: &str, include_stopped: bool) -> Agent {
    let agent_extra = format!(
        "  libvirt_uri: {node_uri}\n{}    local_instances:\n      grants: [hypervisor]\n      params: {{include_stopped: '{include_stopped}', host: compute-1}}\n",
        grants(&COMPUTE_PLUGINS[1..])
    );
    workspace.polling_agent(&agent_extra, "meters: ['*']")
}

/// Polls every compute meter `cycles` times from `node_uri` and resolves the samples.
async fn poll(workspace: &Workspace, node_uri: &str, include_stopped: bool, cycles: usize) -> Vec<Vec<Polled>> {
    let agent = compute_agent(workspace, node_uri, include_stopped);
    let mut out = Vec::new();
    for cycle in 0..cycles {
        let output = run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources).await;
        assert!(output.failures.is_empty(), "{:?}", output.failures);
        assert_eq!(output.malformed, 0);
        if cycle > 0 {
            assert_eq!(output.changed_resources, 0, "nothing changed: every instance is reported by id");
        }
        let resolved = output.samples[0]
            .iter()
            .map(|s| {
                let meter = agent.registry.meter(s.meter).unwrap();
                let resource = agent.registry.resource(s.resource).unwrap();
                Polled {
                    meter: meter.name.clone(),
                    kind: meter.kind,
                    unit: meter.unit.clone(),
                    resource_id: resource.id.to_string(),
                    user_id: resource.user_id().map(str::to_string),
                    project_id: resource.project_id().map(str::to_string),
                    metadata: resource.merged_metadata(),
                    volume: s.volume,
                }
            })
            .collect();
        out.push(resolved);
    }
    out
}

/// What libvirt reports for one domain, read with the `virt` crate directly.
struct Reported {
    info: virt::domain::DomainInfo,
    memory: HashMap<u32, u64>,
    blocks: HashMap<String, (virt::domain::BlockStats, virt::domain::BlockInfo)>,
    vnics: HashMap<String, virt::domain::InterfaceStats>,
}

fn report(connection: &Connect, spec: &DomainSpec) -> Reported {
    let domain = Domain::lookup_by_uuid_string(connection, &spec.uuid).unwrap();
    let info = domain.get_info().unwrap();
    let active = !spec.stopped;
    let memory =
        if active { domain.memory_stats(0).unwrap().iter().map(|s| (s.tag, s.val)).collect() } else { HashMap::new() };
    let blocks = spec
        .disks
        .iter()
        .map(|d| {
            let stats = if active { domain.get_block_stats(d).unwrap() } else { zero_block_stats() };
            (d.clone(), (stats, domain.get_block_info(d, 0).unwrap()))
        })
        .collect();
    let vnics = if active {
        spec.vnics.iter().map(|(tap, _)| (tap.clone(), domain.interface_stats(tap).unwrap())).collect()
    } else {
        HashMap::new()
    };
    Reported { info, memory, blocks, vnics }
}

fn zero_block_stats() -> virt::domain::BlockStats {
    virt::domain::BlockStats { rd_req: 0, rd_bytes: 0, wr_req: 0, wr_bytes: 0, errs: 0 }
}

/// `before <= polled <= after`: the test driver's counters grow with the clock, so a
/// counter polled between two reads of libvirt lies between them.
fn between(meter: &str, id: &str, polled: f64, before: i64, after: i64) {
    assert!(
        before as f64 <= polled && polled <= after as f64,
        "{meter} of {id}: {polled} not within libvirt's {before}..={after}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_compute_meter_matches_libvirt_on_sixty_domains() {
    let workspace = Workspace::new(&COMPUTE_PLUGINS.map(builtin));
    let spec = NodeSpec::with_domains(60);
    let node = workspace.path().join("node.xml");
    spec.write(&node).unwrap();
    let uri = format!("test://{}", node.display());
    let connection = Connect::open(Some(&uri)).unwrap();
    let domains = spec.domain_specs();
    assert!(domains.iter().any(|d| d.stopped) && domains.iter().any(|d| !d.nova));

    let before: HashMap<String, Reported> = domains.iter().map(|d| (d.uuid.clone(), report(&connection, d))).collect();
    let mut cycles = poll(&workspace, &uri, true, 2).await;
    let after: HashMap<String, Reported> = domains.iter().map(|d| (d.uuid.clone(), report(&connection, d))).collect();
    let second = cycles.pop().unwrap();
    let samples = cycles.pop().unwrap();

    // Names, types and units: Ceilometer 27's.
    let oracle = ceilometer_compute();
    let kinds: HashMap<&str, (MeterType, &str)> =
        oracle.meters.iter().map(|m| (m.name.as_str(), (m.kind, m.unit.as_str()))).collect();
    for sample in &samples {
        let (kind, unit) =
            kinds.get(sample.meter.as_str()).unwrap_or_else(|| panic!("unexpected meter {}", sample.meter));
        assert_eq!((sample.kind, sample.unit.as_str()), (*kind, *unit), "{}", sample.meter);
    }

    let find = |meter: &str, id: &str| -> Option<&Polled> {
        let mut found = samples.iter().filter(|s| s.meter == meter && s.resource_id == id);
        let first = found.next();
        assert!(found.next().is_none(), "one {meter} sample for {id}");
        first
    };
    let get = |meter: &str, id: &str| find(meter, id).unwrap_or_else(|| panic!("no {meter} sample for {id}"));

    let mut expected_samples = 0;
    for d in &domains {
        let (b, a) = (&before[&d.uuid], &after[&d.uuid]);
        let id = d.uuid.as_str();

        // Per instance, running or not.
        assert_eq!(get("power.state", id).volume, if d.stopped { 5.0 } else { 1.0 }, "{id}");
        assert_eq!(get("vcpus", id).volume, f64::from(a.info.nr_virt_cpu));
        assert_eq!(get("vcpus", id).volume, f64::from(d.vcpus));
        let balloon = a.memory.get(&virt::sys::VIR_DOMAIN_MEMORY_STAT_ACTUAL_BALLOON).copied().unwrap_or(a.info.memory);
        assert_eq!(get("memory", id).volume, balloon as f64 / 1024.0);
        expected_samples += 3;
        if d.nova {
            // Ceilometer's `RootSizePollster`: the flavor's disk less its ephemeral disk.
            assert_eq!(get("disk.root.size", id).volume, f64::from(d.flavor_disks.0 - d.flavor_disks.1));
            assert_eq!(get("disk.ephemeral.size", id).volume, f64::from(d.flavor_disks.1));
            expected_samples += 2;
        } else {
            assert!(find("disk.root.size", id).is_none(), "no flavor without Nova metadata");
        }

        // Instance metadata and owner on every sample of the instance.
        let instance = get("vcpus", id);
        let meta = &instance.metadata;
        assert_eq!(meta["name"], d.name.as_str());
        assert_eq!(meta["instance_id"], id);
        assert_eq!(meta["instance_host"], "compute-1");
        // Ceilometer's guesses of Nova's vm state and status from libvirt's state.
        let (state, status) = oracle.state_of(get("power.state", id).volume as u32);
        assert_eq!((meta["state"].as_str(), meta["status"].as_str()), (Some(state), Some(status)), "{id}");
        assert_eq!(status, if d.stopped { "stopped" } else { "active" });
        if d.nova {
            assert_eq!(
                (instance.user_id.as_deref(), instance.project_id.as_deref()),
                (Some(&*d.owner.0), Some(&*d.owner.1))
            );
            assert_eq!(meta["display_name"], format!("vm-{}", d.name));
            assert_eq!(meta["instance_type"], format!("m1.gen{}", d.vcpus));
            assert_eq!(
                meta["flavor"],
                json!({"id": d.vcpus.to_string(), "name": format!("m1.gen{}", d.vcpus), "vcpus": d.vcpus,
                       "ram": d.memory_kib / 1024, "disk": d.flavor_disks.0, "ephemeral": d.flavor_disks.1, "swap": 0})
            );
            assert_eq!(meta["image_ref"], "9a8b7c6d-0000-4000-8000-000000000001");
            assert_eq!(
                (meta["disk_gb"].clone(), meta["root_gb"].clone(), meta["ephemeral_gb"].clone()),
                (json!(d.flavor_disks.0), json!(d.flavor_disks.0 - d.flavor_disks.1), json!(d.flavor_disks.1))
            );
            assert_eq!(meta["memory_mb"], d.memory_kib / 1024);
            assert!(meta["host"].as_str().is_some_and(|h| h.len() == 56), "host is sha224(project + host)");
        } else {
            assert_eq!((instance.user_id.as_deref(), meta["display_name"].as_str()), (None, Some(d.name.as_str())));
            assert!(meta.get("flavor").is_none());
        }
        assert_eq!((meta["architecture"].as_str(), meta["os_type"].as_str()), (Some("x86_64"), Some("hvm")));

        // Disk sizes, running or not.
        for (disk, (_, info)) in &a.blocks {
            let disk_id = format!("{id}-{disk}");
            for (meter, value) in [
                ("disk.device.capacity", info.capacity),
                ("disk.device.allocation", info.allocation),
                ("disk.device.usage", info.physical),
            ] {
                let sample = get(meter, &disk_id);
                assert_eq!(sample.volume, value as f64, "{meter} of {disk_id}");
                assert_eq!(sample.metadata["disk_name"], disk.as_str());
                assert_eq!(sample.metadata["instance_id"], id, "per-disk samples carry the instance's metadata");
                expected_samples += 1;
            }
        }

        if d.stopped {
            for meter in ["cpu", "memory.usage", "disk.device.read.bytes", "network.incoming.bytes"] {
                assert!(
                    samples.iter().all(|s| s.meter != meter || !s.resource_id.starts_with(id)),
                    "{meter} of stopped {id}"
                );
            }
            continue;
        }

        // CPU, memory.
        let cpu = get("cpu", id);
        between("cpu", id, cpu.volume, b.info.cpu_time as i64, a.info.cpu_time as i64);
        assert_eq!(cpu.metadata["cpu_number"], d.vcpus);
        let kib = |tag| a.memory.get(&tag).map(|v| *v as f64 / 1024.0);
        assert_eq!(Some(get("memory.available", id).volume), kib(virt::sys::VIR_DOMAIN_MEMORY_STAT_AVAILABLE));
        let usable = a.memory[&virt::sys::VIR_DOMAIN_MEMORY_STAT_USABLE];
        let available = a.memory[&virt::sys::VIR_DOMAIN_MEMORY_STAT_AVAILABLE];
        assert_eq!(get("memory.usage", id).volume, (available - usable) as f64 / 1024.0);
        assert_eq!(Some(get("memory.resident", id).volume), kib(virt::sys::VIR_DOMAIN_MEMORY_STAT_RSS));
        assert_eq!(Some(get("memory.swap.in", id).volume), kib(virt::sys::VIR_DOMAIN_MEMORY_STAT_SWAP_IN));
        assert_eq!(Some(get("memory.swap.out", id).volume), kib(virt::sys::VIR_DOMAIN_MEMORY_STAT_SWAP_OUT));
        expected_samples += 6;

        // Disk counters.
        for disk in &d.disks {
            let disk_id = format!("{id}-{disk}");
            let (bs, as_) = (&b.blocks[disk].0, &a.blocks[disk].0);
            for (meter, before, after) in [
                ("disk.device.read.requests", bs.rd_req, as_.rd_req),
                ("disk.device.write.requests", bs.wr_req, as_.wr_req),
                ("disk.device.read.bytes", bs.rd_bytes, as_.rd_bytes),
                ("disk.device.write.bytes", bs.wr_bytes, as_.wr_bytes),
            ] {
                let sample = get(meter, &disk_id);
                between(meter, &disk_id, sample.volume, before, after);
                assert_eq!(sample.metadata["disk_name"], disk.as_str());
                expected_samples += 1;
            }
            // The test driver reports no latency: no sample rather than a made-up one.
            assert!(find("disk.device.read.latency", &disk_id).is_none());
        }

        // vNICs.
        for (tap, mac) in &d.vnics {
            // Named by its filter reference, as Ceilometer names a vNIC that has one.
            let fref = format!("nova-instance-{}-{}", d.name, mac.replace(':', ""));
            let vnic_id = fref.clone();
            let (bn, an) = (&b.vnics[tap], &a.vnics[tap]);
            for (meter, before, after) in [
                ("network.incoming.bytes", bn.rx_bytes, an.rx_bytes),
                ("network.outgoing.bytes", bn.tx_bytes, an.tx_bytes),
                ("network.incoming.packets", bn.rx_packets, an.rx_packets),
                ("network.outgoing.packets", bn.tx_packets, an.tx_packets),
                ("network.incoming.packets.drop", bn.rx_drop, an.rx_drop),
                ("network.outgoing.packets.drop", bn.tx_drop, an.tx_drop),
                ("network.incoming.packets.error", bn.rx_errs, an.rx_errs),
                ("network.outgoing.packets.error", bn.tx_errs, an.tx_errs),
            ] {
                let sample = get(meter, &vnic_id);
                between(meter, &vnic_id, sample.volume, before, after);
                expected_samples += 1;
            }
            let sample = get("network.incoming.bytes", &vnic_id);
            assert_eq!(
                (sample.metadata["name"].as_str(), sample.metadata["vnic_name"].as_str()),
                (Some(&**tap), Some(fref.as_str()))
            );
            assert_eq!(sample.metadata["mac"], mac.as_str());
            assert_eq!(sample.metadata["fref"], fref.as_str());
            assert!(sample.metadata["parameters"]["IP"].as_str().is_some_and(|ip| ip.starts_with("10.0.")));
            assert_eq!(sample.metadata["instance_id"], id);
            // Deltas: 0 on the first poll, then the growth since it.
            assert_eq!(get("network.incoming.bytes.delta", &vnic_id).volume, 0.0);
            assert_eq!(get("network.outgoing.bytes.delta", &vnic_id).volume, 0.0);
            let later =
                |meter: &str| second.iter().find(|s| s.meter == meter && s.resource_id == vnic_id).unwrap().volume;
            assert_eq!(
                later("network.incoming.bytes.delta"),
                later("network.incoming.bytes") - sample.volume,
                "the delta is against the previous poll"
            );
            expected_samples += 2;
        }
    }
    // perf is not enabled on the test driver: no perf samples.
    assert!(samples.iter().all(|s| !s.meter.starts_with("perf.")));
    assert_eq!(samples.len(), expected_samples, "no sample beyond those checked");

    // The second cycle's resources were reported unchanged by the discoverer (by id
    // alone): the samples carry the same owners and metadata as the first cycle's.
    assert_eq!(second.len(), samples.len());
    let identity = |s: &Polled| {
        (s.meter.clone(), s.resource_id.clone(), s.user_id.clone(), s.project_id.clone(), s.metadata.clone())
    };
    let mut first: Vec<_> = samples.iter().map(identity).collect();
    let mut again: Vec<_> = second.iter().map(identity).collect();
    first.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    again.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    assert!(first == again, "the second cycle's samples describe the same resources");
}

#[tokio::test(flavor = "multi_thread")]
async fn stopped_instances_are_left_out_by_default() {
    let workspace = Workspace::new(&COMPUTE_PLUGINS.map(builtin));
    let spec = NodeSpec::with_domains(20);
    let node = workspace.path().join("node.xml");
    spec.write(&node).unwrap();
    let samples = poll(&workspace, &format!("test://{}", node.display()), false, 1).await.pop().unwrap();
    for d in spec.domain_specs() {
        let polled = samples.iter().any(|s| s.resource_id.contains(&d.uuid));
        assert_eq!(polled, !d.stopped, "{} stopped={}", d.name, d.stopped);
    }
}

/// A workspace with the compute plugins and a node of 600 running domains with Nova
/// metadata, in more chunks than one.
fn large_host() -> (Workspace, NodeSpec, std::path::PathBuf) {
    let workspace = Workspace::new(&COMPUTE_PLUGINS.map(builtin));
    let spec = NodeSpec { domains: 600, stopped_every: 0, plain_every: 0 };
    let node = workspace.path().join("node.xml");
    spec.write(&node).unwrap();
    (workspace, spec, node)
}

/// Every compute meter against Ceilometer 27's own source (the oracle table,
/// `tests/data/ceilometer/compute-meters.tsv`): the plugins describe exactly the meters
/// Ceilometer's libvirt inspector can serve, with its types and units, and every
/// sample of a Nova instance has its resource id and exactly its metadata keys.
#[tokio::test(flavor = "multi_thread")]
async fn every_compute_meter_is_ceilometer_27_s() {
    let Oracle { meters: oracle, instance_keys, .. } = ceilometer_compute();
    let workspace = Workspace::new(&COMPUTE_PLUGINS.map(builtin));
    let spec = NodeSpec { plain_every: 0, stopped_every: 0, ..NodeSpec::with_domains(12) };
    let node = workspace.path().join("node.xml");
    spec.write(&node).unwrap();
    let uri = format!("test://{}", node.display());

    let agent = compute_agent(&workspace, &uri, false);
    let described: Vec<(String, MeterType, String)> = agent
        .plugins
        .pollsters()
        .flat_map(|p| p.info.meters.iter().map(|m| (m.meter.name.clone(), m.meter.kind, m.meter.unit.clone())))
        .collect();
    let mut served: Vec<(String, MeterType, String)> =
        oracle.iter().filter(|m| m.on_libvirt).map(|m| (m.name.clone(), m.kind, m.unit.clone())).collect();
    let mut described_sorted = described.clone();
    served.sort_by(|a, b| a.0.cmp(&b.0));
    described_sorted.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(described_sorted, served, "the meters, types and units of Ceilometer 27 on libvirt");

    let samples = poll(&workspace, &uri, false, 2).await.pop().unwrap();
    let always: BTreeSet<&str> = instance_keys.iter().filter(|k| k.always).map(|k| k.key.as_str()).collect();
    let optional: BTreeSet<&str> = instance_keys.iter().filter(|k| !k.always).map(|k| k.key.as_str()).collect();
    let domains: HashMap<String, DomainSpec> = spec.domain_specs().into_iter().map(|d| (d.uuid.clone(), d)).collect();
    let mut seen = BTreeSet::new();
    for sample in &samples {
        let row = oracle.iter().find(|m| m.name == sample.meter).expect("a meter of the table");
        let uuid = sample.metadata["instance_id"].as_str().expect("instance_id");
        let domain = &domains[uuid];
        let text = |key: &str| sample.metadata[key].as_str().unwrap_or_default().to_string();
        let expected_id = match row.resource_id.as_str() {
            "instance.id" => uuid.to_string(),
            "f'{instance.id}-{stats.device}'" => format!("{uuid}-{}", text("disk_name")),
            "stats.fref | f'{instance_name}-{instance.id}-{stats.name}'" => match sample.metadata["fref"].as_str() {
                Some(fref) => fref.to_string(),
                None => format!("{}-{uuid}-{}", domain.name, text("name")),
            },
            other => panic!(
                "{}: Ceilometer names its resources `{other}`, which this test does not know ({})",
                row.name, row.source
            ),
        };
        assert_eq!(sample.resource_id, expected_id, "{} ({})", row.name, row.source);

        let keys: BTreeSet<&str> = sample.metadata.keys().map(String::as_str).collect();
        let expected: BTreeSet<&str> = always.iter().copied().chain(row.added.iter().map(String::as_str)).collect();
        let extra: Vec<&&str> = keys.difference(&expected).filter(|k| !optional.contains(**k)).collect();
        let missing: Vec<&&str> = expected.difference(&keys).collect();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "{} ({}): extra {extra:?}, missing {missing:?}",
            row.name,
            row.source
        );
        assert_eq!(sample.metadata["image_ref_url"], Value::Null, "images known from libvirt have no links");
        assert_eq!(sample.metadata["task_state"], "", "no task state from libvirt");
        seen.insert(row.name.as_str());
    }
    // The test driver has no perf events and no block latencies; every other meter
    // Ceilometer serves is polled.
    let unpolled: Vec<&str> = served.iter().map(|m| m.0.as_str()).filter(|m| !seen.contains(m)).collect();
    assert!(unpolled.iter().all(|m| m.starts_with("perf.") || m.ends_with(".latency")), "not polled: {unpolled:?}");
}

/// A large host is polled in several calls per pollster (100 instances each): every
/// sample still lands on its own domain.
#[tokio::test(flavor = "multi_thread")]
async fn a_large_host_is_polled_in_chunks_without_mixing_domains_up() {
    let (workspace, spec, node) = large_host();
    let samples = poll(&workspace, &format!("test://{}", node.display()), false, 1).await.pop().unwrap();
    for d in spec.domain_specs() {
        let vcpus = samples.iter().find(|s| s.meter == "vcpus" && s.resource_id == d.uuid).expect("vcpus");
        assert_eq!(vcpus.volume, f64::from(d.vcpus), "{}", d.name);
        assert_eq!(vcpus.metadata["name"], d.name.as_str());
        let root = samples.iter().find(|s| s.meter == "disk.root.size" && s.resource_id == d.uuid).expect("root");
        assert_eq!(root.volume, f64::from(d.flavor_disks.0 - d.flavor_disks.1), "{}", d.name);
    }
}

/// A large host's samples are handed over chunk by chunk as the cycle goes, each
/// domain's samples whole in one chunk.
#[tokio::test(flavor = "multi_thread")]
async fn a_large_host_s_samples_are_handed_over_chunk_by_chunk() {
    let (workspace, _, node) = large_host();
    let agent = compute_agent(&workspace, &format!("test://{}", node.display()), false);
    let mut chunks = Vec::new();
    let keep = |chunk: Vec<Vec<pollen_host::sample::Sample>>| {
        chunks.push(chunk.into_iter().flatten().collect::<Vec<_>>());
        std::future::ready(())
    };
    let output = stream_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources, keep).await;
    assert!(output.failures.is_empty() && output.samples.is_empty());
    let instances: Vec<BTreeSet<String>> = chunks
        .iter()
        .map(|chunk| {
            chunk
                .iter()
                .map(|s| agent.registry.resource(s.resource).unwrap().metadata_text("instance_id").unwrap())
                .collect()
        })
        .collect();
    assert_eq!(instances.iter().map(BTreeSet::len).collect::<Vec<_>>(), [100; 6], "chunks of 100 instances");
    let all: BTreeSet<&String> = instances.iter().flatten().collect();
    assert_eq!(all.len(), 600, "no instance's samples are split between chunks");
}

/// Through `libvirtd` (`test+unix://`) each domain is read with per-domain calls that
/// are kept in flight together on the one connection (`hypervisor/lanes.rs`): every
/// domain is still read, each reading lands on its own domain, and what does not move
/// with time (sizes, memory, vCPUs, states, metadata) is what the in-process driver
/// reads of the same node file.
#[tokio::test(flavor = "multi_thread")]
async fn a_large_host_through_libvirtd_is_polled_as_in_process() {
    let (workspace, _, node) = large_host();
    let remote = format!("test+unix://{}", node.display());
    if Connect::open(Some(&remote)).is_err() {
        let message = "libvirtd does not answer on test+unix://; run `scripts/hypervisor.sh start` (`make setup` does)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
        eprintln!("skipped: {message}");
        return;
    }
    let in_process = poll(&workspace, &format!("test://{}", node.display()), false, 1).await.pop().unwrap();
    let through_daemon = poll(&workspace, &remote, false, 1).await.pop().unwrap();
    let keyed = |samples: Vec<Polled>| -> HashMap<(String, String), Polled> {
        samples.into_iter().map(|s| ((s.meter.clone(), s.resource_id.clone()), s)).collect()
    };
    let (in_process, through_daemon) = (keyed(in_process), keyed(through_daemon));
    let keys = |samples: &HashMap<(String, String), Polled>| samples.keys().cloned().collect::<BTreeSet<_>>();
    assert_eq!(keys(&through_daemon), keys(&in_process), "the same meters of the same resources");
    assert!(in_process.len() > 600 * 20, "every domain polled: {} samples", in_process.len());
    let steady = [
        "vcpus",
        "memory",
        "power.state",
        "disk.root.size",
        "disk.ephemeral.size",
        "disk.device.capacity",
        "disk.device.allocation",
        "disk.device.usage",
    ];
    for (key, local) in &in_process {
        let remote = &through_daemon[key];
        assert_eq!(remote.metadata, local.metadata, "{key:?} metadata");
        assert_eq!((&remote.user_id, &remote.project_id), (&local.user_id, &local.project_id), "{key:?}");
        if steady.contains(&key.0.as_str()) {
            assert_eq!(remote.volume, local.volume, "{key:?}");
        }
    }
}
