//! The sandbox: what the host refuses to load, and what it survives at run time.

mod common;

use common::*;
use pollen_host::config;
use pollen_host::pipeline::{cycle::run_cycle, Agent, BuildError};
use pollen_host::plugin::{load_file, CacheOutcome, LoadError, PluginEngine, PluginError};
use pollen_host::registry::Registry;
use pollen_host::sample::{Meter, MeterType, Resource, Sample};
use std::path::Path;
use std::sync::Arc;

fn agent_settings(workspace: &Workspace, agent_extra: &str) -> config::Agent {
    let path = workspace.write_pipeline(agent_extra, "");
    config::load(&path).expect("valid pipeline").agent
}

fn load(workspace: &Workspace, agent_extra: &str, file: &Path) -> Result<pollen_host::plugin::Plugin, LoadError> {
    let agent = agent_settings(workspace, agent_extra);
    let engine = PluginEngine::new(agent.cache_dir()).expect("engine");
    load_file(&engine, file, &agent, &Arc::new(Registry::new()))
}

#[test]
fn a_core_module_is_refused_by_name() {
    let workspace = Workspace::new(&[]);
    let file = workspace.plugin_dir().join("core.wasm");
    // The smallest core module: magic and version 1, no sections.
    std::fs::write(&file, b"\0asm\x01\0\0\0").unwrap();
    let error = load(&workspace, "", &file).err().expect("refused");
    assert!(matches!(error, LoadError::CoreModule { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains("core.wasm") && message.contains("wasm32-wasip2"), "{message}");
}

#[test]
fn a_file_that_is_not_webassembly_is_refused_by_name() {
    let workspace = Workspace::new(&[]);
    let file = workspace.plugin_dir().join("notes.wasm");
    std::fs::write(&file, "not wasm at all").unwrap();
    let error = load(&workspace, "", &file).err().expect("refused");
    assert!(matches!(error, LoadError::NotWasm { .. }), "{error}");
    assert!(error.to_string().contains("notes.wasm"));
}

#[test]
fn a_component_of_an_unknown_world_is_refused() {
    let workspace = Workspace::new(&[]);
    let error = load(&workspace, "", &hostile("unknown_world")).err().expect("refused");
    let message = error.to_string();
    assert!(matches!(error, LoadError::UnknownWorld { .. }), "{message}");
    assert!(message.contains("unknown_world.wasm") && message.contains("`add`"), "{message}");
    assert!(message.contains("pollen:plugin/pollster@0.2.0"), "{message}");
}

#[test]
fn a_transformer_never_reaches_the_hypervisor_even_when_granted() {
    let workspace = Workspace::new(&[]);
    let error = load(&workspace, &grants(&["nosy_transformer"]), &hostile("nosy_transformer")).err().expect("refused");
    let message = error.to_string();
    assert!(matches!(error, LoadError::Forbidden { .. }), "{message}");
    assert!(message.contains("nosy_transformer.wasm"), "{message}");
    assert!(message.contains("a transformer may not import `pollen:plugin/hypervisor@0.2.0`"), "{message}");
}

#[test]
fn the_hypervisor_must_be_granted_by_the_pipeline() {
    let workspace = Workspace::new(&[]);
    // A plugin of the operator's own is granted nothing unless the pipeline says so.
    let own = workspace.path().join("my_cpu.wasm");
    std::fs::copy(builtin("cpu"), &own).unwrap();
    let error = load(&workspace, "", &own).err().expect("refused");
    let message = error.to_string();
    assert!(matches!(error, LoadError::NotGranted { .. }), "{message}");
    assert!(message.contains("my_cpu.wasm") && message.contains("agent.plugins.my_cpu"), "{message}");
    assert!(load(&workspace, &grants(&["my_cpu"]), &own).is_ok());
    // A built-in has its default grant, which the pipeline can take away.
    assert!(load(&workspace, "", &builtin("cpu")).is_ok());
    let error = load(&workspace, "  plugins:\n    cpu:\n      grants: []\n", &builtin("cpu")).err().expect("refused");
    assert!(matches!(error, LoadError::NotGranted { .. }), "{error}");
}

#[test]
fn a_second_load_reads_the_compiled_cache_instead_of_compiling() {
    let workspace = Workspace::with_private_cache(&[]);
    let first = load(&workspace, &grants(&["cpu"]), &builtin("cpu")).expect("loads");
    assert_eq!(first.info.cache, CacheOutcome::Compiled);
    let cached: Vec<_> = std::fs::read_dir(workspace.path().join("cache"))
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().path().extension().is_some_and(|ext| ext == "cwasm"))
        .collect();
    assert_eq!(cached.len(), 1, "one precompiled component in the cache");
    // A new engine, as on a second start of the agent.
    let second = load(&workspace, &grants(&["cpu"]), &builtin("cpu")).expect("loads");
    assert_eq!(second.info.cache, CacheOutcome::Hit);
    assert_eq!(second.info.meters.len(), 1);
}

/// Agents starting together on one cache (as the tests do) compile a plugin once:
/// the others wait for that compilation and read its result.
#[test]
fn agents_sharing_a_cache_compile_each_plugin_once() {
    let workspace = Workspace::with_private_cache(&[]);
    let agent = agent_settings(&workspace, &grants(&["local_instances"]));
    let outcomes: Vec<CacheOutcome> = std::thread::scope(|scope| {
        let loads: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    // An engine each, as agents of their own.
                    let engine = PluginEngine::new(agent.cache_dir()).expect("engine");
                    load_file(&engine, &builtin("local_instances"), &agent, &Arc::new(Registry::new()))
                })
            })
            .collect();
        loads.into_iter().map(|load| load.join().unwrap().expect("loads").info.cache).collect()
    });
    let compiled = outcomes.iter().filter(|o| **o == CacheOutcome::Compiled).count();
    assert_eq!(compiled, 1, "one compilation, three reads of it: {outcomes:?}");
}

#[test]
fn a_corrupt_cache_entry_is_compiled_again() {
    let workspace = Workspace::with_private_cache(&[]);
    load(&workspace, &grants(&["cpu"]), &builtin("cpu")).expect("loads");
    for entry in std::fs::read_dir(workspace.path().join("cache")).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    let again = load(&workspace, &grants(&["cpu"]), &builtin("cpu")).expect("loads despite the bad cache file");
    assert_eq!(again.info.cache, CacheOutcome::Compiled);
}

#[test]
fn the_agent_refuses_to_start_on_a_refused_plugin_and_names_it() {
    let workspace = Workspace::new(&[builtin("cpu"), hostile("unknown_world")]);
    let path = workspace.write_pipeline(&grants(&["cpu"]), "");
    let error = Agent::build(config::load(&path).unwrap()).err().expect("refused");
    assert!(matches!(&error, BuildError::Plugins(errors, _) if errors.len() == 1), "{error}");
    assert!(error.to_string().contains("unknown_world.wasm"));
}

/// A plugin that keeps the host busy on its behalf (asking for a domain's XML
/// without end) spends its time mostly in host calls, which its own deadline does not
/// count: its wall-time deadline stops it, and the error names that deadline.
#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_looping_on_host_calls_is_stopped_by_its_wall_deadline() {
    let workspace = Workspace::new(&[builtin("local_instances"), hostile("spin_forever")]);
    let agent_extra = format!(
        "{}    spin_forever:\n      grants: [hypervisor]\n      call_timeout: 0.5\n      call_wall_timeout: 0.5\n      params: {{on: host}}\n",
        grants(&["local_instances"])
    );
    let agent = workspace.polling_agent(&agent_extra, "meters: ['*']");
    let started = std::time::Instant::now();
    let output = run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources).await;
    // Stopped at its 0.5 s deadline, not before; the upper bound is loose (a loaded machine).
    let took = started.elapsed();
    assert!(took >= std::time::Duration::from_millis(500) && took < SAFETY_NET / 10, "the cycle took {took:?}");
    match output.failures.as_slice() {
        [failure @ PluginError::WallDeadline { plugin, timeout }] => {
            assert_eq!((plugin.as_str(), *timeout), ("spin_forever", std::time::Duration::from_millis(500)));
            assert!(failure.to_string().contains("call_wall_timeout"), "{failure}");
        }
        other => panic!("expected spin_forever's wall deadline alone, got {other:?}"),
    }
}

/// Every hostile plugin at once, beside the built-in ones: each failure is reported
/// with its plugin's name, and every other plugin's samples still come out, cycle
/// after cycle.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_plugins_cost_only_their_own_samples() {
    let workspace = Workspace::new(&[
        builtin("local_instances"),
        builtin("cpu"),
        builtin("memory"),
        hostile("spin_forever"),
        hostile("grow_forever"),
        hostile("trap"),
        hostile("liar"),
    ]);
    let agent_extra = format!(
        "{}    spin_forever:\n      grants: [hypervisor]\n      call_timeout: 0.3\n    grow_forever:\n      memory_limit_mib: 16\n",
        grants(&["local_instances", "cpu", "memory", "trap", "liar"])
    );
    let agent = workspace.polling_agent(&agent_extra, "meters: ['*']");

    for cycle in 0..2 {
        let started = std::time::Instant::now();
        let output = run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources).await;
        let elapsed = started.elapsed();
        // spin_forever runs until its 0.3 s deadline; nothing waits much longer than that
        // (the upper bound is loose: a loaded machine).
        assert!(
            elapsed >= std::time::Duration::from_millis(300) && elapsed < SAFETY_NET / 10,
            "cycle {cycle} took {elapsed:?}"
        );

        let failure = |plugin: &str| {
            output
                .failures
                .iter()
                .find(|f| f.to_string().contains(&format!("`{plugin}`")))
                .unwrap_or_else(|| panic!("cycle {cycle}: no failure for {plugin} in {:?}", output.failures))
                .clone()
        };
        assert!(matches!(failure("spin_forever"), PluginError::Deadline { .. }));
        assert!(matches!(failure("grow_forever"), PluginError::MemoryLimit { limit_mib: 16, .. }));
        match failure("trap") {
            PluginError::Trap { message, .. } => {
                assert!(message.contains("unreachable"), "{message}");
                assert!(message.contains("test plugin panics on purpose"), "the panic message is kept: {message}");
            }
            other => panic!("trap: {other}"),
        }
        assert_eq!(output.failures.len(), 3, "{:?}", output.failures);
        assert_eq!(output.malformed, 3, "the liar's three bad samples are refused");

        let names: Vec<String> =
            output.samples[0].iter().map(|s| agent.registry.meter(s.meter).unwrap().name.clone()).collect();
        for meter in ["cpu", "memory.usage", "test.liar"] {
            assert_eq!(names.iter().filter(|n| *n == meter).count(), 1, "cycle {cycle}: {meter} in {names:?}");
        }
    }
}

/// A discoverer reports unchanged resources by id and the host fills in the rest; an id
/// it never reported is refused, and its instance is made anew (which then reports in
/// full). A report outside `discover` is ignored.
#[tokio::test(flavor = "multi_thread")]
async fn a_discoverer_reports_unchanged_resources_by_id_and_cannot_invent_them() {
    let workspace = Workspace::new(&[hostile("liar_discoverer"), hostile("liar")]);
    let agent = workspace
        .polling_agent(&grants(&["liar_discoverer", "liar"]), "meters: [test.liar]\n    discovery: [liar_instances]");
    // The liar pollster adds three malformed samples per call; the discoverer's lie,
    // one more on its second call. Without a fresh instance the third call would lie
    // again.
    for (cycle, malformed, changed) in [(1, 3, 2), (2, 4, 0), (3, 3, 2)] {
        let output = run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources).await;
        assert!(output.failures.is_empty(), "cycle {cycle}: {:?}", output.failures);
        assert_eq!(output.malformed, malformed, "cycle {cycle}");
        assert_eq!(output.changed_resources, changed, "cycle {cycle}");
        let resources: Vec<Arc<Resource>> =
            output.samples[0].iter().map(|s| agent.registry.resource(s.resource).unwrap()).collect();
        let ids: std::collections::BTreeSet<&str> = resources.iter().map(|r| &*r.id).collect();
        assert_eq!(ids, ["vm-a", "vm-b"].into(), "cycle {cycle}: the ghost is never polled");
        for resource in &resources {
            // Reported in full by the first call of each instance.
            assert_eq!(resource.metadata_value("call"), Some(serde_json::json!(1)), "cycle {cycle}");
        }
    }
    assert!(
        (0..100).all(|handle| agent.registry.resource(handle).is_none_or(|r| &*r.id != "vm-outside")),
        "a report outside `discover` is ignored"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pollsters_report_what_libvirt_reports_with_nova_metadata() {
    let workspace = Workspace::new(&[builtin("local_instances"), builtin("cpu"), builtin("memory")]);
    let agent_extra = format!("  libvirt_uri: {}\n{}", nova_node_uri(), grants(&["local_instances", "cpu", "memory"]));
    let agent = workspace.polling_agent(&agent_extra, "meters: [cpu, memory.usage]");
    let output = run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources).await;
    assert!(output.failures.is_empty(), "{:?}", output.failures);

    // What libvirt itself says, through the same real connection type.
    let connection = virt::connect::Connect::open(Some(&nova_node_uri())).unwrap();
    let web = virt::domain::Domain::lookup_by_name(&connection, "instance-00000001").unwrap();
    let info = web.get_info().unwrap();
    let web_uuid = web.get_uuid_string().unwrap();

    let find = |meter: &str, resource_id: &str| -> (Sample, Arc<Resource>) {
        let sample = output.samples[0]
            .iter()
            .find(|s| {
                agent.registry.meter(s.meter).unwrap().name == meter
                    && agent.registry.resource(s.resource).unwrap().id.as_ref() == resource_id
            })
            .unwrap_or_else(|| panic!("no {meter} sample for {resource_id}"));
        (*sample, agent.registry.resource(sample.resource).unwrap())
    };

    let (cpu, resource) = find("cpu", &web_uuid);
    let cpu_meter: Arc<Meter> = agent.registry.meter(cpu.meter).unwrap();
    assert_eq!((cpu_meter.kind, cpu_meter.unit.as_str()), (MeterType::Cumulative, "ns"));
    // The test driver's CPU time is the wall clock: the sample was read just before.
    let read_before = info.cpu_time as f64;
    assert!(
        cpu.volume <= read_before && read_before - cpu.volume < 5e9,
        "cpu {} vs libvirt {}",
        cpu.volume,
        read_before
    );
    assert_eq!(resource.metadata_value("cpu_number"), Some(serde_json::json!(info.nr_virt_cpu)));
    assert_eq!(resource.user_id(), Some("a1b2c3d4e5f60718293a4b5c6d7e8f90"));
    assert_eq!(resource.project_id(), Some("0f9e8d7c6b5a49382716f5e4d3c2b1a0"));
    assert_eq!(resource.metadata_value("display_name"), Some(serde_json::json!("web-1")));
    assert_eq!(resource.metadata_value("name"), Some(serde_json::json!("instance-00000001")));
    assert_eq!(resource.metadata_value("instance_type"), Some(serde_json::json!("m1.small")));
    assert_eq!(resource.metadata_value("flavor").unwrap()["ram"], 2048);
    assert_eq!(resource.metadata_value("image_ref"), Some(serde_json::json!("9a8b7c6d-0000-4000-8000-000000000001")));

    let (memory, _) = find("memory.usage", &web_uuid);
    let memory_meter = agent.registry.meter(memory.meter).unwrap();
    assert_eq!((memory_meter.kind, memory_meter.unit.as_str()), (MeterType::Gauge, "MiB"));
    let stats = web.memory_stats(0).unwrap();
    let kib = |tag| stats.iter().find(|s| s.tag == tag).unwrap().val as f64;
    let expected =
        (kib(virt::sys::VIR_DOMAIN_MEMORY_STAT_AVAILABLE) - kib(virt::sys::VIR_DOMAIN_MEMORY_STAT_USABLE)) / 1024.0;
    assert_eq!(memory.volume, expected);

    // A domain without Nova metadata is polled under its libvirt UUID and name.
    let (_, plain) = find("cpu", "66666666-7777-8888-9999-000000000000");
    assert_eq!(plain.user_id(), None);
    assert_eq!(plain.metadata_value("display_name"), Some(serde_json::json!("plain")));
    // A shut-off domain is not polled by default.
    assert!(!output.samples[0].iter().any(|s| agent.registry.resource(s.resource).unwrap().id.starts_with("99999999")));
}

#[test]
fn a_transformer_keeps_its_state_between_calls() {
    let workspace = Workspace::new(&[]);
    let agent = agent_settings(&workspace, "  plugins:\n    echo_transformer:\n      params: {factor: 10}\n");
    let engine = PluginEngine::new(agent.cache_dir()).unwrap();
    let registry = Arc::new(Registry::new());
    let echo = load_file(&engine, &hostile("echo_transformer"), &agent, &registry).expect("loads");
    assert_eq!(echo.info.kind.to_string(), "transformer");

    let cpu = registry.intern_meter(Meter { name: "cpu".into(), kind: MeterType::Cumulative, unit: "ns".into() });
    let vm = registry.intern_resource(Resource::bare("vm-1"));
    let batch: Vec<Sample> =
        (1..=3).map(|i| Sample { meter: cpu, resource: vm, volume: i as f64, timestamp: i }).collect();
    let out = echo.transform(&batch).expect("transforms");
    assert_eq!(out.iter().map(|s| s.volume).collect::<Vec<_>>(), vec![10.0, 20.0, 30.0]);
    let scaled = registry.meter(out[0].meter).unwrap();
    assert_eq!((scaled.name.as_str(), scaled.unit.as_str()), ("cpu.scaled", "ns"));
    assert_eq!(out[2].timestamp, 3);

    echo.transform(&batch[..2]).expect("transforms");
    let flushed = echo.flush(false).expect("flushes");
    assert_eq!(flushed[0].volume, 5.0, "the instance kept its count across calls");
}

/// A plugin gets no files, no environment, no arguments, no network and a frozen
/// clock, even when it asks through the standard library.
#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_reaches_no_files_environment_network_or_clock() {
    let workspace = Workspace::new(&[builtin("local_instances"), hostile("prober")]);
    let agent = workspace.polling_agent(&grants(&["local_instances", "prober"]), "meters: ['probe.*']");
    let output = run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources).await;
    assert!(output.failures.is_empty(), "{:?}", output.failures);
    let probes: std::collections::BTreeMap<String, f64> =
        output.samples[0].iter().map(|s| (agent.registry.meter(s.meter).unwrap().name.clone(), s.volume)).collect();
    assert_eq!(probes.len(), 6, "{probes:?}");
    for denied in ["probe.read_root", "probe.read_file", "probe.env", "probe.args", "probe.tcp"] {
        assert_eq!(probes[denied], 0.0, "{denied} must be denied: {probes:?}");
    }
    assert_eq!(probes["probe.clock"], 0.0, "the plugin's clock is frozen at the epoch");
}

/// A pollster whose meter names no discoverer is called once per cycle, with no
/// resources, and its samples are on the resources it names (owner and metadata as
/// it gave them, the same id the same resource from cycle to cycle); what it names
/// over the host's bounds, or samples at an index it named nothing at, is refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_pollster_without_a_discoverer_is_called_once_and_names_its_resources() {
    let workspace = Workspace::new(&[builtin("local_instances"), builtin("cpu"), hostile("namer")]);
    let agent = workspace.polling_agent(&grants(&["local_instances", "cpu"]), "meters: ['*']");
    let mut host_handles = Vec::new();
    for cycle in 1..=2 {
        let output = run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources).await;
        assert!(output.failures.is_empty(), "cycle {cycle}: {:?}", output.failures);
        let named: Vec<_> = output.samples[0]
            .iter()
            .filter(|s| agent.registry.meter(s.meter).unwrap().name == "test.named")
            .map(|s| (agent.registry.resource(s.resource).unwrap(), s.volume, s.resource))
            .collect();
        let described: Vec<(String, f64)> = named.iter().map(|(r, v, _)| (r.id.to_string(), *v)).collect();
        let this_host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string();
        assert_eq!(
            described,
            [("host-1".to_string(), 1.0), (format!("call-{cycle}"), f64::from(cycle)), (this_host, 7.0)],
            "cycle {cycle}"
        );
        let (host, _, handle) = &named[0];
        assert_eq!(host.project_id(), Some("p1"));
        assert_eq!(host.merged_metadata()["kind"], "host");
        host_handles.push(*handle);
        assert_eq!(output.refusals.of("namer"), 1, "the sample at an unnamed index is refused");
        assert!(
            output.samples[0].iter().any(|s| agent.registry.meter(s.meter).unwrap().name == "cpu"),
            "the discovered resources' pollsters run beside it"
        );
    }
    assert_eq!(host_handles[0], host_handles[1], "the same id names the same resource from cycle to cycle");
}
