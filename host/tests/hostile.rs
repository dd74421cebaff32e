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

/// A pollster that sleeps in `poll` (a blocking WASI call, where epoch interruption
/// never fires) is stopped at its deadline, and the cycle's other samples come out.
#[tokio::test(flavor = "multi_thread")]
async fn a_pollster_sleeping_in_wasi_is_stopped_at_its_deadline_and_the_cycle_goes_on() {
    let workspace = Workspace::new(&[builtin("local_instances"), builtin("cpu"), hostile("sleeper")]);
    let agent_extra = format!(
        "{}    sleeper:\n      grants: [hypervisor]\n      call_timeout: 0.5\n",
        grants(&["local_instances", "cpu"])
    );
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
    let workspace = Workspace::new(&[builtin("local_instances"), builtin("cpu"), hostile("sleeper")]);
    workspace.write_pipeline(
        &format!(
            "{}    sleeper:\n      grants: [hypervisor]\n      call_timeout: 0.5\n",
            grants(&["local_instances", "cpu"])
        ),
        &stdout_source("meters: ['*']"),
    );
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

/// A transformer that sleeps on every batch and flush neither stalls polling nor
/// holds up SIGTERM past its deadline.
#[test]
fn sigterm_returns_despite_a_sleeping_transformer() {
    let workspace = Workspace::new(&[builtin("local_instances"), builtin("cpu"), hostile("sleepy_transformer")]);
    let raw = workspace.path().join("raw.jsonl");
    let held = workspace.path().join("held.jsonl");
    workspace.write_pipeline(
        &format!("{}    sleepy_transformer:\n      call_timeout: 0.5\n", grants(&["local_instances", "cpu"])),
        &format!(
            "sources:\n  - name: compute\n    interval: 1\n    meters: [cpu]\n    sinks: [raw, sleepy]\nsinks:\n  - name: raw\n    publishers: ['file://{}']\n  - name: sleepy\n    transformers:\n      - name: sleepy_transformer\n    publishers: ['file://{}']\n",
            raw.display(),
            held.display()
        ),
    );
    let mut agent = Running::start(&workspace, &[], raw);
    agent.wait_for("raw samples of two cycles", |s| s.len() >= 2);
    agent.wait_for_log("plugin `sleepy_transformer` ran past its deadline", 1);
    let started = Instant::now();
    let log = agent.stop();
    let took = started.elapsed();
    assert!(took < LOOSE, "SIGTERM took {took:?}: {log}");
    assert!(log.contains("pollen stopped"), "{log}");
}

/// A reload that brings a plugin sleeping in `describe` ends (refused, the running
/// pipeline kept), and SIGTERM is still obeyed afterwards.
#[test]
fn a_reload_loading_a_sleeping_plugin_ends_and_sigterm_still_works() {
    let workspace = Workspace::new(&[builtin("local_instances"), builtin("cpu")]);
    let out = workspace.path().join("samples.jsonl");
    let sources = format!(
        "sources:\n  - name: compute\n    interval: 1\n    meters: [cpu]\n    sinks: [out]\nsinks:\n  - name: out\n    publishers: ['file://{}']\n",
        out.display()
    );
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
