//! Hostile plugins that go around the deadlines, the memory limit and the host's
//! bounds (issue 14): each test fails on an agent that lets the attack through.
//! Every bound asserted from below is exact; from above it is loose (a loaded
//! machine), but far below what the attack would cost unchecked.

mod common;

use common::*;
use pollen_host::config;
use pollen_host::pipeline::cycle::run_cycle;
use pollen_host::plugin::{load_file, LoadError, PluginEngine, PluginError};
use pollen_host::registry::Registry;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a call that must stop at its deadline may take at most, on a loaded machine.
const LOOSE: Duration = Duration::from_secs(30);

/// A workspace with `local_instances`, `cpu` and the hostile plugin `name`, and the
/// `agent` lines that grant the first two the hypervisor and give `name` these
/// settings (YAML lines under `agent.plugins.<name>`).
fn beside_cpu(name: &str, settings: &str) -> (Workspace, String) {
    let workspace = Workspace::new(&[builtin("local_instances"), builtin("cpu"), hostile(name)]);
    (workspace, format!("{}    {name}:\n{settings}", grants(&["local_instances", "cpu"])))
}

/// A pollster that sleeps in `poll` (a blocking WASI call, where epoch interruption
/// never fires) is stopped at its deadline, and the cycle's other samples come out.
#[tokio::test(flavor = "multi_thread")]
async fn a_pollster_sleeping_in_wasi_is_stopped_at_its_deadline_and_the_cycle_goes_on() {
    let (workspace, agent_extra) = beside_cpu("sleeper", "      grants: [hypervisor]\n      call_timeout: 0.5\n");
    let agent = workspace.polling_agent(&agent_extra, "meters: ['*']");
    for cycle in 0..2 {
        let started = Instant::now();
        let output = run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources).await;
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(500) && took < LOOSE, "cycle {cycle} took {took:?}");
        match output.failures.as_slice() {
            [PluginError::Deadline { plugin, .. }] => assert_eq!(plugin, "sleeper"),
            other => panic!("cycle {cycle}: expected the sleeper's deadline alone, got {other:?}"),
        }
        let is_cpu = |s: &&pollen_host::sample::Sample| agent.registry.meter(s.meter).is_some_and(|m| m.name == "cpu");
        assert!(output.samples[0].iter().any(|s| is_cpu(&s)), "cycle {cycle}: cpu samples still come out");
    }
}

/// A plugin that sleeps already in `describe` is refused at load, within its deadline.
#[test]
fn a_plugin_sleeping_in_describe_is_refused_at_load_within_its_deadline() {
    let workspace = Workspace::new(&[]);
    let path = workspace.write_pipeline(
        "  plugins:\n    sleeper:\n      grants: [hypervisor]\n      call_timeout: 0.5\n      params: {in: describe}\n",
        "",
    );
    let agent = config::load(&path).expect("pipeline").agent;
    let engine = PluginEngine::new(agent.cache_dir()).expect("engine");
    let started = Instant::now();
    let error = load_file(&engine, &hostile("sleeper"), &agent, &Arc::new(Registry::new())).err().expect("refused");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(500) && took < LOOSE, "loading took {took:?}");
    assert!(matches!(&error, LoadError::Describe { source: PluginError::Deadline { .. }, .. }), "{error}");
    assert!(error.to_string().contains("sleeper.wasm"), "{error}");
}

/// `poll --once` returns, with the other plugins' samples, whatever a plugin blocks on.
#[test]
fn poll_once_returns_despite_a_sleeping_pollster() {
    let (workspace, agent_extra) = beside_cpu("sleeper", "      grants: [hypervisor]\n      call_timeout: 0.5\n");
    workspace.write_pipeline(&agent_extra, &stdout_source("meters: ['*']"));
    let started = Instant::now();
    let output = pollen_command().args(["poll", "--once"]).current_dir(workspace.path()).output().expect("pollen runs");
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(took < LOOSE, "poll --once took {took:?}");
    assert_eq!(output.status.code(), Some(1), "a plugin failed: {stderr}");
    assert!(stderr.contains("plugin `sleeper` ran past its deadline"), "{stderr}");
    let samples = json_lines(&String::from_utf8_lossy(&output.stdout));
    assert!(samples.iter().any(|s| s["name"] == "cpu"), "cpu samples still printed: {stderr}");
}

/// A pollster that traps on every chunk of a large host (500 domains, five chunks):
/// one log line for the cycle, with how many calls failed and the first error, not one
/// per chunk.
#[test]
fn a_pollster_failing_in_every_chunk_makes_one_log_line() {
    let workspace = Workspace::new(&[builtin("local_instances"), builtin("cpu"), hostile("trap")]);
    let node = workspace.path().join("node.xml");
    pollen_testkit::NodeSpec { stopped_every: 0, ..pollen_testkit::NodeSpec::with_domains(500) }.write(&node).unwrap();
    let settings = format!("  libvirt_uri: test://{}\n{}", node.display(), grants(&["local_instances", "cpu"]));
    workspace.write_pipeline(&settings, &stdout_source("meters: ['*']"));
    let output = pollen_command().args(["poll", "--once"]).current_dir(workspace.path()).output().expect("pollen runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "a plugin failed: {stderr}");
    let failed: Vec<&str> = stderr.lines().filter(|l| l.contains("poll failed")).collect();
    assert_eq!(failed.len(), 1, "one line for the cycle: {stderr}");
    assert!(failed[0].contains("plugin=trap") && failed[0].contains("calls=5"), "{}", failed[0]);
    assert!(failed[0].contains("test plugin panics on purpose"), "the first error: {}", failed[0]);
    assert!(!failed[0].contains("RUST_BACKTRACE"), "no hint a plugin cannot follow: {}", failed[0]);
    let cpu = json_lines(&String::from_utf8_lossy(&output.stdout)).iter().filter(|s| s["name"] == "cpu").count();
    assert_eq!(cpu, 500, "cpu's samples of every chunk: {stderr}");
}

/// A transformer that sleeps on every batch and flush neither stalls polling nor
/// holds up SIGTERM past its deadline.
#[test]
fn sigterm_returns_despite_a_sleeping_transformer() {
    let workspace = Workspace::new(&[builtin("local_instances"), builtin("cpu"), hostile("sleepy_transformer")]);
    let raw = workspace.path().join("raw.jsonl");
    let held = workspace.path().join("held.jsonl");
    workspace.write_pipeline(
        &format!("{}    sleepy_transformer:\n      call_timeout: 0.5\n", grants(&["local_instances", "cpu"])),
        &cpu_raw_and_through(&raw, &held, "      - name: sleepy_transformer\n"),
    );
    let mut agent = Running::start(&workspace, &[], raw);
    agent.wait_for("raw samples of two cycles", |s| s.len() >= 2);
    agent.wait_for_log("plugin `sleepy_transformer` ran past its deadline", 1);
    let log = stop_promptly(agent);
    assert!(log.contains("pollen stopped"), "{log}");
}

/// `sources` and `sinks` polling `cpu` every second into the file `out`.
fn cpu_every_second_into(out: &std::path::Path) -> String {
    format!(
        "sources:\n  - name: compute\n    interval: 1\n    meters: [cpu]\n    sinks: [out]\nsinks:\n  - name: out\n    publishers: ['file://{}']\n",
        out.display()
    )
}

/// SIGTERM, which must be obeyed within [`LOOSE`] whatever a plugin does; the log.
fn stop_promptly(agent: Running) -> String {
    let started = Instant::now();
    let log = agent.stop();
    let took = started.elapsed();
    assert!(took < LOOSE, "SIGTERM took {took:?}: {log}");
    log
}

/// A reload that brings a plugin sleeping in `describe` ends (refused, the running
/// pipeline kept), and SIGTERM is still obeyed afterwards.
#[test]
fn a_reload_loading_a_sleeping_plugin_ends_and_sigterm_still_works() {
    let workspace = Workspace::new(&[builtin("local_instances"), builtin("cpu")]);
    let out = workspace.path().join("samples.jsonl");
    let sources = cpu_every_second_into(&out);
    workspace.write_pipeline(&grants(&["local_instances", "cpu"]), &sources);
    let mut agent = Running::start(&workspace, &[], out);
    agent.wait_for("cpu samples", |s| !s.is_empty());
    workspace.add_plugin(&hostile("sleeper"));
    workspace.write_pipeline(
        &format!(
            "{}    sleeper:\n      grants: [hypervisor]\n      call_timeout: 0.5\n      params: {{in: describe}}\n",
            grants(&["local_instances", "cpu"])
        ),
        &sources,
    );
    agent.signal("HUP");
    agent.wait_for_log("the new configuration is refused", 1);
    let before = agent.samples().len();
    agent.wait_for("samples after the refused reload", |s| s.len() > before);
    let log = agent.stop();
    assert!(log.contains("sleeper.wasm"), "the refusal names the file: {log}");
}

/// A plugin flooding the log with 64 KiB lines that try to forge agent lines, and
/// returning 100,000 malformed samples: its lines are rate-limited, cut and escaped,
/// what was held back is counted, and the refusals make one line, not 100,000.
#[test]
fn a_plugin_flooding_the_log_is_rate_limited_escaped_and_summed_up() {
    let workspace = Workspace::new(&[builtin("local_instances"), hostile("log_flood")]);
    workspace.write_pipeline(
        &format!("{}    log_flood:\n      call_timeout: 20\n", grants(&["local_instances"])),
        &stdout_source("meters: ['*']"),
    );
    let output = pollen_command().args(["poll", "--once"]).current_dir(workspace.path()).output().expect("pollen runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    // 20,000 lines of 64 KiB (1.3 GB) unchecked; 200 lines (a burst of 20 a second for
    // ten seconds) of at most 2 KiB each, plus the agent's own lines, checked.
    assert!(stderr.len() < 1024 * 1024, "{} bytes of log", stderr.len());
    assert!(stderr.lines().all(|line| !line.starts_with("2026-12-01T00:00:00.000000Z")), "a forged line got through");
    assert!(
        stderr.contains("flood\\n2026-12-01T00:00:00.000000Z ERROR"),
        "the newline is escaped: {}",
        &stderr[..2000.min(stderr.len())]
    );
    assert!(stderr.contains("bytes cut)"), "long lines are cut");
    let held_back: u64 = stderr
        .lines()
        .filter(|l| l.contains("plugin log lines held back"))
        .filter_map(|l| l.split("suppressed=").nth(1)?.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    assert!(held_back >= 20_000 - 400, "{held_back} lines counted as held back");
    let refusals: Vec<&str> = stderr.lines().filter(|l| l.contains("malformed samples refused")).collect();
    assert_eq!(refusals.len(), 1, "one line for the cycle: {refusals:?}");
    assert!(refusals[0].contains("refused=100000") && refusals[0].contains("meter index 7"), "{}", refusals[0]);
}

/// What a plugin writes to stdout (Python's `print`) and stderr reaches the agent's
/// log, line by line after `stdout:` or `stderr:`, through the plugin's rate limit.
#[test]
fn a_plugin_s_stdout_and_stderr_reach_the_log() {
    let workspace = Workspace::new(&[builtin("local_instances"), hostile("log_flood")]);
    workspace.write_pipeline(
        &format!("{}    log_flood:\n      params: {{lines: 0, samples: 1}}\n", grants(&["local_instances"])),
        &stdout_source("meters: ['*']"),
    );
    let output = pollen_command().args(["poll", "--once"]).current_dir(workspace.path()).output().expect("pollen runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines = |needle: &str| stderr.lines().filter(|l| l.contains(needle) && l.contains("log_flood")).count();
    assert_eq!(lines("stdout: stdout flood"), 4, "{stderr}");
    assert!(lines("stderr: stderr flood") >= 1, "{stderr}");
    assert!(stderr.lines().all(|line| !line.starts_with("2026-12-01T00:00:00.000000Z")), "a forged line got through");
}

fn load_refused(workspace: &Workspace, agent_extra: &str, file: &std::path::Path) -> LoadError {
    let path = workspace.write_pipeline(agent_extra, "");
    let agent = config::load(&path).expect("pipeline").agent;
    let engine = PluginEngine::new(agent.cache_dir()).expect("engine");
    load_file(&engine, file, &agent, &Arc::new(Registry::new())).err().expect("refused")
}

/// A gigabyte of zeros named `.wasm` is refused on its first 8 bytes: it is never read
/// whole (1 GiB of resident memory, unchecked).
#[test]
fn a_gigabyte_of_zeros_is_refused_on_its_header_without_being_read() {
    let workspace = Workspace::new(&[]);
    let file = workspace.plugin_dir().join("zeros.wasm");
    std::fs::File::create(&file).unwrap().set_len(1 << 30).unwrap(); // sparse: no disk used
    workspace.write_pipeline("  max_plugin_mib: 4096\n", "");
    let (code, _, stderr, peak) = pollen_measured(&["validate"], workspace.path());
    assert_eq!(code, Some(78), "{stderr}");
    assert!(stderr.contains("zeros.wasm: not a WebAssembly file"), "{stderr}");
    assert!(peak < AGENT_PEAK, "pollen validate peaked at {} MiB", peak >> 20);
}

/// A file larger than `max_plugin_mib` is refused by its size, naming the setting.
#[test]
fn a_plugin_larger_than_the_cap_is_refused_by_its_size() {
    let workspace = Workspace::new(&[]);
    let file = workspace.plugin_dir().join("huge.wasm");
    let mut bytes = pollen_testkit::component_with_a_function_of(1024);
    bytes.resize(3 << 20, 0);
    std::fs::write(&file, bytes).unwrap();
    let error = load_refused(&workspace, "  max_plugin_mib: 2\n", &file);
    assert!(matches!(error, LoadError::TooLarge { .. }), "{error}");
    assert!(error.to_string().contains("huge.wasm") && error.to_string().contains("agent.max_plugin_mib"), "{error}");
}

/// A component with one function of 4 MB (52 s and 433 MiB of compiling, unchecked)
/// is refused on its outline, before anything is compiled.
#[test]
fn a_component_with_a_huge_function_is_refused_before_compiling() {
    let workspace = Workspace::with_private_cache(&[]);
    let file = workspace.plugin_dir().join("bomb.wasm");
    std::fs::write(&file, pollen_testkit::component_with_a_function_of(4 << 20)).unwrap();
    let error = load_refused(&workspace, "", &file);
    assert!(matches!(error, LoadError::FunctionTooLarge { .. }), "{error}");
    assert!(error.to_string().contains("agent.max_function_kib"), "{error}");
    let compiled = std::fs::read_dir(workspace.path().join("cache")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(compiled, 0, "nothing was compiled");
}

/// Compiling has a deadline of its own: past `load_timeout` the plugin is refused
/// (in-process, as here, the compiler's thread finishes on its own; the agent does not
/// wait for it).
#[test]
fn compiling_past_the_load_timeout_is_refused() {
    let workspace = Workspace::with_private_cache(&[]);
    let file = workspace.plugin_dir().join("slow.wasm");
    // Within the function cap raised for the test, and far more than 10 ms of
    // cranelift's time (a third of a million additions).
    std::fs::write(&file, pollen_testkit::component_with_a_function_of(1 << 20)).unwrap();
    let started = Instant::now();
    let error = load_refused(&workspace, "  max_function_kib: 4096\n  load_timeout: 0.01\n", &file);
    let took = started.elapsed();
    assert!(matches!(error, LoadError::CompileTimeout { .. }), "{error}");
    assert!(error.to_string().contains("agent.load_timeout"), "{error}");
    assert!(took >= Duration::from_millis(10) && took < LOOSE, "loading took {took:?}");
}

/// The largest plugin the loader's caps let through to the compiler (64 functions
/// of 255 KiB: 88 s and 690 MiB of cranelift, unchecked) is refused once its compiler
/// passes its memory budget, at once; `pollen` and its compiler stay under it.
#[test]
fn compiling_past_the_memory_budget_is_refused_at_once() {
    let workspace = Workspace::with_private_cache(&[]);
    std::fs::write(workspace.plugin_dir().join("bomb.wasm"), pollen_testkit::component_with_functions(64, 255 << 10))
        .unwrap();
    workspace.write_pipeline("  compile_memory_mib: 128\n  load_timeout: 600\n", "");
    let started = Instant::now();
    let (code, _, stderr, peak) = pollen_measured(&["validate"], workspace.path());
    let took = started.elapsed();
    assert_eq!(code, Some(78), "{stderr}");
    assert!(stderr.contains("bomb.wasm: compiling needed more than 128 MiB (`agent.compile_memory_mib`)"), "{stderr}");
    assert!(took < LOOSE, "refused after {took:?}");
    assert!(peak < (128 + 64) << 20, "peak {} MiB", peak >> 20);
}

/// Past its deadline a plugin's compiler is killed, not left to run: after a reload
/// refused it, nothing of it runs in or beside the agent.
#[test]
fn a_compiler_past_its_deadline_is_killed() {
    let workspace = Workspace::with_private_cache(&[builtin("local_instances"), builtin("cpu")]);
    let out = workspace.path().join("samples.jsonl");
    let sources = cpu_every_second_into(&out);
    let settings = format!(
        "  max_function_kib: 8192\n  compile_memory_mib: 4096\n  load_timeout: 1\n{}",
        grants(&["local_instances", "cpu"])
    );
    workspace.write_pipeline(&settings, &sources);
    let mut agent = Running::start(&workspace, &[], out);
    agent.wait_for("cpu samples", |s| !s.is_empty());
    let bomb = workspace.plugin_dir().join("bomb.wasm");
    std::fs::write(&bomb, pollen_testkit::component_with_a_function_of(4 << 20)).unwrap();
    agent.signal("HUP");
    agent.wait_for_log("compiling took longer than 1s", 1);
    let threads: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", agent.id()))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .collect();
    assert!(!threads.iter().any(|t| t.trim() == "pollen-compile"), "a compiler thread still runs: {threads:?}");
    let compilers: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|p| std::fs::read(p.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("compile-plugin") && c.contains(&*bomb.to_string_lossy()))
        .collect();
    assert!(compilers.is_empty(), "the compiler still runs: {compilers:?}");
    assert_eq!(agent.logged("the new configuration is refused; the running one is kept"), 1, "{}", agent.log());
    stop_promptly(agent);
}

/// A pollster asking for the statistics of ever new made-up domains with 64 KiB ids:
/// nothing is stored for them (1.5 GiB in 12 s, unchecked), and answering them is the
/// plugin's own time, so `call_timeout` stops it (not the 60 s wall deadline).
#[test]
fn made_up_domain_ids_cost_the_host_nothing_and_the_plugin_its_own_time() {
    let (workspace, agent_extra) = beside_cpu(
        "spin_forever",
        "      grants: [hypervisor]\n      call_timeout: 1\n      params: {on: bogus-stats}\n",
    );
    workspace.write_pipeline(&agent_extra, &stdout_source("meters: ['*']"));
    let started = Instant::now();
    let (code, stdout, stderr, peak) = pollen_measured(&["poll", "--once"], workspace.path());
    let took = started.elapsed();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("plugin `spin_forever` ran past its deadline of 1s (its own running time"), "{stderr}");
    assert!(stdout.contains("\"name\":\"cpu\""), "the other samples: {stderr}");
    assert!(took >= Duration::from_secs(1) && took < LOOSE, "poll --once took {took:?}");
    assert!(peak < AGENT_PEAK, "pollen poll --once peaked at {} MiB", peak >> 20);
}

/// Most memory a `pollen` run against a hostile plugin may reach (its debug build
/// holds about 60 MiB to begin with); the attacks reach from 351 MiB to gigabytes.
const AGENT_PEAK: u64 = 128 << 20;

/// A discoverer reporting a million resources in one call (351 MiB in a second,
/// unchecked) gets the first 50,000 kept, the rest counted; one reporting ids or
/// metadata of megabytes gets none of them kept.
#[tokio::test(flavor = "multi_thread")]
async fn a_discoverer_flooding_the_host_with_resources_is_bounded() {
    use pollen_host::caps::bounds::MAX_DISCOVERED;
    for (params, kept) in [
        ("{count: 1000000}", MAX_DISCOVERED),
        ("{count: 50, id_bytes: 10000000}", 0),
        ("{count: 50, metadata_bytes: 1000000}", 0),
    ] {
        let workspace = Workspace::new(&[hostile("flood_discoverer"), builtin("cpu")]);
        let agent_extra =
            format!("{}    flood_discoverer:\n      call_timeout: 30\n      params: {params}\n", grants(&["cpu"]));
        let agent = workspace.polling_agent(&agent_extra, "meters: [cpu]\n    discovery: [flood]");
        run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources).await;
        let (_, resources) = agent.registry.len();
        assert_eq!(resources, kept, "{params}");
        if kept == MAX_DISCOVERED {
            let (code, _, stderr, peak) = pollen_measured(&["poll", "--once"], workspace.path());
            assert!(code.is_some(), "{stderr}");
            assert!(
                stderr.contains("over the host's bounds") && stderr.contains("more than 50000 resources"),
                "{stderr}"
            );
            assert!(peak < AGENT_PEAK, "pollen poll --once peaked at {} MiB", peak >> 20);
        }
    }
}

/// A transformer making a new meter for every sample (meters are never forgotten:
/// 940 MiB in 10 s, unchecked) gets 1024 of them; its further samples are refused.
/// Names and units of a megabyte are refused outright.
#[test]
fn a_transformer_making_meters_without_end_is_bounded() {
    use pollen_host::caps::bounds::MAX_MADE_METERS;
    use pollen_host::sample::{Meter, MeterType, Resource, Sample};
    for (long, made) in [(false, MAX_MADE_METERS), (true, 0)] {
        let workspace = Workspace::new(&[hostile("meter_maker")]);
        let path = workspace.write_pipeline(
            "",
            &through_transformers(&format!("      - name: meter_maker\n        parameters: {{long: {long}}}\n")),
        );
        let agent = pollen_host::pipeline::Agent::build(config::load(&path).unwrap()).expect("agent");
        let registry = agent.registry.clone();
        let cpu = registry.intern_meter(Meter { name: "cpu".into(), kind: MeterType::Cumulative, unit: "ns".into() });
        let vm = registry.intern_resource(Resource::bare("vm-1"));
        let (meters_before, _) = registry.len();
        let mut published = 0;
        for round in 0..3 {
            let batch = (0..1000)
                .map(|i| Sample { meter: cpu, resource: vm, volume: 1.0, timestamp: round * 1000 + i })
                .collect();
            published += agent.chains["out"].run(batch, &registry).samples.len();
        }
        let (meters_after, _) = registry.len();
        assert_eq!(meters_after - meters_before, made, "long names: {long}");
        assert_eq!(published, made, "long names: {long}: only samples on meters it could make go on");
    }
}

/// A transformer putting its samples on resources it was never given (other
/// instances': silent misattribution of billing data), and reading their owners: every
/// such sample is refused and counted, every such read answered with nothing.
#[test]
fn a_transformer_cannot_touch_resources_it_was_not_given() {
    use pollen_host::sample::{Metadata, Meter, MeterType, Owner, Resource, Sample};
    let workspace = Workspace::new(&[hostile("thief_transformer")]);
    let path = workspace.write_pipeline("", &through_transformers("      - name: thief_transformer\n"));
    let agent = pollen_host::pipeline::Agent::build(config::load(&path).unwrap()).expect("agent");
    let registry = agent.registry.clone();
    let cpu = registry.intern_meter(Meter { name: "cpu".into(), kind: MeterType::Cumulative, unit: "ns".into() });
    let owned = |id: &str, user: &str| Resource { owner: Owner::of(Some(user), Some("p")), ..Resource::bare(id) };
    let mine = registry.intern_resource(owned("vm-mine", "me"));
    for other in 0..8 {
        registry.intern_resource(Resource { metadata: Metadata::default(), ..owned(&format!("vm-{other}"), "victim") });
    }
    let output =
        agent.chains["out"].run(vec![Sample { meter: cpu, resource: mine, volume: 5.0, timestamp: 1 }], &registry);
    let on_mine: Vec<(u32, f64)> = output.samples.iter().map(|s| (s.resource, s.volume)).collect();
    assert_eq!(on_mine, [(mine, 5.0), (mine, 0.0)], "only its own resource; no read of another's worked");
    assert_eq!(output.malformed, 8, "the eight copies on other resources are refused and counted");
}

/// A pollster putting an instance's sample on another instance's id (its owner and
/// metadata would be swapped): refused, counted, and the other instance keeps its
/// owner in every sample.
#[tokio::test(flavor = "multi_thread")]
async fn a_pollster_cannot_put_samples_on_another_instance_s_resource() {
    let (workspace, plugins) = beside_cpu("liar", "      params: {swap: true}\n");
    let agent = workspace.polling_agent(&format!("  libvirt_uri: {}\n{plugins}", nova_node_uri()), "meters: ['*']");
    let output = run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources).await;
    let instances = agent.registry.len().1;
    let given = output.samples[0]
        .iter()
        .filter(|s| agent.registry.meter(s.meter).is_some_and(|m| m.name == "test.liar"))
        .count();
    assert_eq!(output.refusals.of("liar"), 3 + given, "the three lies and every swap: {:?}", output.refusals);
    // The resource it was not given is named in its own terms (not as the host's
    // internal index, once 4294967295).
    assert_eq!(
        output.refusals.first("liar"),
        Some(&*format!("resource index {} but it was given {given} resources (indices 0 to {})", given + 5, given - 1)),
    );
    let owners: std::collections::BTreeMap<String, Option<String>> = output.samples[0]
        .iter()
        .filter(|s| agent.registry.meter(s.meter).is_some_and(|m| m.name == "cpu"))
        .map(|s| {
            let r = agent.registry.resource(s.resource).unwrap();
            (r.id.to_string(), r.user_id().map(str::to_string))
        })
        .collect();
    for sample in &output.samples[0] {
        let resource = agent.registry.resource(sample.resource).unwrap();
        if let Some(owner) = owners.get(&*resource.id) {
            assert_eq!(&resource.user_id().map(str::to_string), owner, "{} keeps its owner", resource.id);
        }
    }
    assert!(instances >= 2, "the node has several instances");
}

/// A discoverer reporting a real domain's id as its own, with an owner of its
/// choosing (`thief`): its resource is its own, another resource. The domain's
/// samples from `local_instances` keep their owner; only what the operator polls
/// through the impostor's discovery carries the impostor's owner.
#[tokio::test(flavor = "multi_thread")]
async fn a_discoverer_cannot_take_over_another_discoverer_s_resource() {
    const DOMAIN: &str = "11111111-2222-3333-4444-555555555555";
    let workspace = Workspace::new(&[builtin("local_instances"), builtin("cpu"), hostile("liar_discoverer")]);
    let settings = format!(
        "  libvirt_uri: {}\n{}    liar_discoverer:\n      params: {{impersonate: '{DOMAIN}'}}\n",
        nova_node_uri(),
        grants(&["local_instances", "cpu"])
    );
    let sources = "sources:\n  - name: real\n    interval: 60\n    meters: [cpu]\n    sinks: [out]\n  \
                   - name: impostor\n    interval: 60\n    meters: [cpu]\n    discovery: [liar_instances]\n    sinks: [out]\n\
                   sinks:\n  - name: out\n    publishers: ['stdout://']\n";
    let path = workspace.write_pipeline(&settings, sources);
    let agent = pollen_host::pipeline::Agent::build(config::load(&path).unwrap()).expect("agent");
    for cycle in 0..2 {
        let output = run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources).await;
        let owners = |source: usize| -> Vec<(Option<String>, Option<String>)> {
            output.samples[source]
                .iter()
                .map(|s| agent.registry.resource(s.resource).unwrap())
                .filter(|r| &*r.id == DOMAIN)
                .map(|r| (r.user_id().map(str::to_string), r.metadata_text("display_name")))
                .collect()
        };
        let (real, stolen) = (owners(0), owners(1));
        assert_eq!(real.len(), 1, "cycle {cycle}: one cpu sample of the domain from local_instances");
        assert_eq!(real[0].0.as_deref(), Some("a1b2c3d4e5f60718293a4b5c6d7e8f90"), "cycle {cycle}: {real:?}");
        assert_ne!(real[0].1.as_deref(), Some("stolen"), "cycle {cycle}: the real domain keeps its metadata");
        assert_eq!(stolen, [(Some("thief".to_string()), Some("stolen".to_string()))], "cycle {cycle}");
    }
}

/// SIGTERM while a reload is compiling a plugin that takes a minute to compile: the
/// agent stops at once, the reload abandoned.
#[test]
fn sigterm_during_a_slow_reload_stops_the_agent_at_once() {
    let workspace = Workspace::with_private_cache(&[builtin("local_instances"), builtin("cpu")]);
    let out = workspace.path().join("samples.jsonl");
    let sources = cpu_every_second_into(&out);
    let settings = format!("  max_function_kib: 8192\n  load_timeout: 600\n{}", grants(&["local_instances", "cpu"]));
    workspace.write_pipeline(&settings, &sources);
    let mut agent = Running::start(&workspace, &[], out);
    agent.wait_for("cpu samples", |s| !s.is_empty());
    // Four megabytes of additions: about a minute of cranelift's time.
    std::fs::write(workspace.plugin_dir().join("bomb.wasm"), pollen_testkit::component_with_a_function_of(4 << 20))
        .unwrap();
    agent.signal("HUP");
    agent.wait_for_log("reloading the configuration", 1);
    let log = stop_promptly(agent);
    assert!(log.contains("the reload is abandoned"), "{log}");
}

/// The `cpu` plugin with a dozen more core instances, each with a memory of 8 MiB:
/// each under its 64 MiB limit, 96 MiB together (846 MiB under a 64 MiB limit,
/// unchecked). The budget is the instance's, all memories together: it is refused.
#[test]
fn a_plugin_spreading_its_memory_over_many_memories_is_held_to_one_budget() {
    let workspace = Workspace::with_private_cache(&[]);
    let file = workspace.plugin_dir().join("cpu.wasm");
    let bloated = pollen_testkit::with_extra_memories(&std::fs::read(builtin("cpu")).unwrap(), 12, 8);
    std::fs::write(&file, bloated).unwrap();
    let error = load_refused(&workspace, &grants(&["cpu"]), &file);
    assert!(matches!(&error, LoadError::Describe { source: PluginError::MemoryLimit { .. }, .. }), "{error}");
    // Within a budget that fits them all, the same plugin loads and works.
    let agent_extra = format!("{}    cpu:\n      grants: [hypervisor]\n      memory_limit_mib: 256\n", "  plugins:\n");
    let path = workspace.write_pipeline(&agent_extra, "");
    let agent = config::load(&path).expect("pipeline").agent;
    let engine = PluginEngine::new(agent.cache_dir()).expect("engine");
    let plugin = load_file(&engine, &file, &agent, &Arc::new(Registry::new())).expect("loads within 256 MiB");
    assert_eq!(plugin.info.meters[0].meter.name, "cpu");
}
