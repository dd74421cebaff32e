//! The `pollen` binary, end to end: what an operator types and sees.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Output;
use std::time::Instant;

fn pollen(args: &[&str], cwd: &Path) -> Output {
    pollen_command().args(args).current_dir(cwd).output().expect("pollen runs")
}

fn builtin_workspace() -> Workspace {
    Workspace::new(&[builtin("local_instances"), builtin("cpu"), builtin("memory")])
}

const COMPUTE: &str =
    "sources:\n  - name: compute\n    interval: 1\n    meters: [cpu, memory.usage]\n    sinks: [out]\n";

#[test]
fn poll_once_prints_samples_as_json_lines_and_logs_on_stderr() {
    let workspace = builtin_workspace();
    workspace.write_pipeline(
        &grants(&["local_instances", "cpu", "memory"]),
        &format!("{COMPUTE}sinks:\n  - name: out\n    publishers: ['stdout://']\n"),
    );
    let output = pollen(&["poll", "--once", "--config", "pipeline.yaml"], workspace.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let samples = json_lines(&String::from_utf8_lossy(&output.stdout));
    assert_eq!(samples.len(), 2, "one cpu and one memory.usage sample for the test driver's one domain");
    let cpu = samples.iter().find(|s| s["name"] == "cpu").expect("cpu");
    assert_eq!(cpu["type"], "cumulative");
    assert_eq!(cpu["unit"], "ns");
    assert_eq!(cpu["resource_id"], "6695eb01-f6a4-8304-79aa-97f2502e193f");
    assert_eq!(cpu["resource_metadata"]["cpu_number"], 2);
    let memory = samples.iter().find(|s| s["name"] == "memory.usage").expect("memory.usage");
    assert_eq!(
        (memory["type"].as_str(), memory["unit"].as_str(), memory["volume"].as_f64()),
        (Some("gauge"), Some("MiB"), Some(1024.0))
    );
    for key in ["user_id", "project_id", "timestamp", "resource_metadata", "source", "id", "monotonic_time"] {
        assert!(cpu.get(key).is_some(), "missing {key}");
    }
    assert!(stderr.contains("poll done"), "logs go to stderr: {stderr}");
}

#[test]
fn libvirt_uri_overrides_the_pipeline() {
    let workspace = builtin_workspace();
    workspace.write_pipeline(
        &grants(&["local_instances", "cpu", "memory"]),
        &format!("{COMPUTE}sinks:\n  - name: out\n    publishers: ['stdout://']\n"),
    );
    let uri = nova_node_uri();
    let output = pollen(&["poll", "--once", "--libvirt-uri", &uri], workspace.path());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let samples = json_lines(&String::from_utf8_lossy(&output.stdout));
    let web = samples
        .iter()
        .find(|s| s["name"] == "cpu" && s["resource_id"] == "11111111-2222-3333-4444-555555555555")
        .expect("the node file's Nova instance");
    assert_eq!(web["user_id"], "a1b2c3d4e5f60718293a4b5c6d7e8f90");
    assert_eq!(web["resource_metadata"]["display_name"], "web-1");
    assert_eq!(web["resource_metadata"]["flavor"]["name"], "m1.small");
}

#[test]
fn run_publishes_to_a_file_until_sigterm_then_exits_zero() {
    let workspace = builtin_workspace();
    let out = workspace.path().join("out/samples.jsonl");
    workspace.write_pipeline(
        &grants(&["local_instances", "cpu", "memory"]),
        &format!("{COMPUTE}sinks:\n  - name: out\n    publishers: ['file://{}']\n", out.display()),
    );
    let mut agent = Running::start(&workspace, &[], out.clone());
    // Two cycles (interval 1 s) give four samples.
    agent.wait_for("four samples", |s| s.len() >= 4);
    let log = agent.stop();
    assert!(log.contains("SIGTERM received") && log.contains("pollen stopped"), "{log}");

    let samples = json_lines(&std::fs::read_to_string(&out).unwrap());
    assert!(samples.len() >= 4);
    assert!(samples.iter().all(|s| s["name"] == "cpu" || s["name"] == "memory.usage"));
}

#[test]
fn start_jitter_delays_the_first_cycle() {
    let workspace = builtin_workspace();
    let out = workspace.path().join("out/samples.jsonl");
    workspace.write_pipeline(
        &format!("  start_jitter: 600\n{}", grants(&["local_instances", "cpu", "memory"])),
        &format!("{COMPUTE}sinks:\n  - name: out\n    publishers: ['file://{}']\n", out.display()),
    );
    let mut agent = Running::start(&workspace, &[], out.clone());
    agent.wait_for_log("delay_ms=", 1);
    let delayed_at = Instant::now();
    let log = agent.log();
    let delay_ms: u64 = log.split("delay_ms=").nth(1).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap();
    assert!(delay_ms <= 600_000);
    // Up to 600 s of jitter: most likely none of it has passed when the agent stops.
    agent.wait_for_log("polling task started", 1);
    let log = agent.stop();
    if u128::from(delay_ms) > delayed_at.elapsed().as_millis() {
        assert!(!out.exists() || std::fs::read_to_string(&out).unwrap().is_empty(), "polled before its delay");
        assert!(log.contains("cycles=0"), "{log}");
    }
}

#[test]
fn bad_yaml_is_reported_with_line_and_column_and_exit_78() {
    let workspace = Workspace::new(&[]);
    std::fs::write(
        workspace.path().join("pipeline.yaml"),
        "sources:\n  - name: a\n    meters: [cpu]\n\tsinks: [out]\n",
    )
    .unwrap();
    let output = pollen(&["validate"], workspace.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("pipeline.yaml:4:1: found character that cannot start any token"),
        "line and column: {stderr}"
    );
}

#[test]
fn every_configuration_problem_is_listed_at_once() {
    let workspace = builtin_workspace();
    workspace.write_pipeline(
        "  call_timeout: 0\n  plugins:\n    cpu:\n      call_timeout: 5\n      call_wall_timeout: 1\n",
        "sources:\n  - name: a\n    meters: [cpu]\n    sinks: [nowhere]\nsinks:\n  - name: out\n    publishers: ['kafka://broker']\n",
    );
    let output = pollen(&["run"], workspace.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("5 problems"), "{stderr}");
    assert!(
        stderr.contains("agent.plugins.cpu.call_wall_timeout: must be at least the plugin's call_timeout (5s)"),
        "{stderr}"
    );
    assert!(stderr.contains("no source sends to sink `out`"), "{stderr}");
    assert!(stderr.contains("agent.call_timeout"), "{stderr}");
    assert!(stderr.contains("unknown sink `nowhere`"), "{stderr}");
    assert!(!stderr.contains("did you mean `out`"), "no suggestion for a name that is not a typo: {stderr}");
    assert!(stderr.contains("unknown scheme `kafka`"), "{stderr}");
}

#[test]
fn an_unknown_key_is_an_error_with_its_place() {
    let workspace = Workspace::new(&[]);
    workspace.write_pipeline("  plugin_dri: x\n", "");
    let output = pollen(&["validate"], workspace.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("unknown field `plugin_dri`") && stderr.contains("pipeline.yaml:4:"), "{stderr}");
    assert!(stderr.contains("(did you mean `plugin_dir`?)"), "{stderr}");
}

#[test]
fn validate_accepts_the_shipped_pipeline() {
    let output = pollen(&["validate", "--config", "pipeline.yaml"], &repo());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("valid (13 plugins"));
}

fn inspect(plugin: &Path) -> Value {
    let output = pollen(&["plugins", "inspect", plugin.to_str().unwrap(), "--json"], &repo());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("JSON")
}

fn imports(info: &Value) -> Vec<String> {
    info["imports"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn inspect_tells_the_truth_about_each_builtin_plugin() {
    let cpu = inspect(&builtin("cpu"));
    assert_eq!(cpu["kind"], "pollster");
    assert_eq!(cpu["world"], "pollen:plugin/pollster-plugin@0.2.0");
    assert_eq!(cpu["contract"], "pollen:plugin@0.2.0");
    assert_eq!(
        cpu["meters"],
        serde_json::json!([{"name": "cpu", "type": "cumulative", "unit": "ns", "default_discoverer": "local_instances"}])
    );
    assert!(imports(&cpu).contains(&"pollen:plugin/hypervisor@0.2.0".to_string()));
    let granted =
        cpu["imports"].as_array().unwrap().iter().find(|i| i["name"] == "pollen:plugin/hypervisor@0.2.0").unwrap();
    assert_eq!(granted["verdict"], "granted", "the shipped pipeline grants it");
    assert_eq!(cpu["loads"], true);

    let memory = inspect(&builtin("memory"));
    assert_eq!(memory["meters"][1]["name"], "memory.usage");
    assert_eq!(memory["meters"][1]["type"], "gauge");
    assert_eq!(memory["meters"][1]["unit"], "MiB");
    assert_eq!(memory["meters"][3]["name"], "memory.swap.in");
    assert_eq!(memory["meters"][3]["type"], "cumulative");

    let discoverer = inspect(&builtin("local_instances"));
    assert_eq!(discoverer["kind"], "discoverer");
    assert_eq!(discoverer["discoverer"], "local_instances");
    assert_eq!(discoverer["meters"], serde_json::json!([]));
    for info in [&cpu, &memory, &discoverer] {
        assert!(
            !imports(info).iter().any(|i| i.starts_with("pollen:plugin/samples")),
            "only transformers import samples"
        );
    }
}

/// `inspect` judges every import — allowed, granted, ungranted, refused — from the
/// component's outline, and says how to allow what can be allowed.
#[test]
fn inspect_marks_every_import_allowed_granted_ungranted_or_refused() {
    let workspace = Workspace::new(&[builtin("cpu"), hostile("nosy_transformer")]);
    std::fs::copy(builtin("memory"), workspace.plugin_dir().join("my_memory.wasm")).unwrap();
    let judge = |file: &str, config: &str| {
        let output = pollen(&["plugins", "inspect", file, "--json", "--config", config], workspace.path());
        let info: Value = serde_json::from_slice(&output.stdout).expect("JSON");
        let verdicts: Vec<(String, String)> = info["imports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| (i["name"].as_str().unwrap().to_string(), i["verdict"].as_str().unwrap().to_string()))
            .collect();
        (output.status.code(), info, verdicts)
    };
    let verdict_of = |verdicts: &[(String, String)], import: &str| {
        verdicts.iter().find(|(name, _)| name == import).map(|(_, verdict)| verdict.clone())
    };
    // No grants written: the built-in is granted by default, the operator's own is not.
    workspace.write_pipeline("", "");
    let (code, info, verdicts) = judge("plugins/cpu.wasm", "pipeline.yaml");
    assert_eq!((code, &info["loads"]), (Some(0), &Value::Bool(true)));
    assert_eq!(verdict_of(&verdicts, "pollen:plugin/hypervisor@0.2.0").as_deref(), Some("granted"));
    assert_eq!(verdict_of(&verdicts, "pollen:plugin/log@0.2.0").as_deref(), Some("allowed"));
    let (code, info, verdicts) = judge("plugins/my_memory.wasm", "pipeline.yaml");
    assert_eq!((code, &info["loads"]), (Some(78), &Value::Bool(false)));
    let hypervisor = info["imports"].as_array().unwrap().iter().find(|i| i["name"] == "pollen:plugin/hypervisor@0.2.0");
    assert_eq!(verdict_of(&verdicts, "pollen:plugin/hypervisor@0.2.0").as_deref(), Some("ungranted"));
    assert!(
        hypervisor.unwrap()["detail"]
            .as_str()
            .unwrap()
            .contains("add `grants: [hypervisor]` under agent.plugins.my_memory"),
        "{info}"
    );
    assert_eq!(info["meters"][1]["name"], "memory.usage", "its meters are shown all the same");
    // An operator narrows a built-in's grants by writing them.
    workspace
        .write_pipeline("  plugins:\n    cpu:\n      grants: []\n    my_memory:\n      grants: [hypervisor]\n", "");
    let (code, _, verdicts) = judge("plugins/cpu.wasm", "pipeline.yaml");
    assert_eq!(
        (code, verdict_of(&verdicts, "pollen:plugin/hypervisor@0.2.0").as_deref()),
        (Some(78), Some("ungranted"))
    );
    let (code, _, _) = judge("plugins/my_memory.wasm", "pipeline.yaml");
    assert_eq!(code, Some(0));
    // Never allowed to its kind, whatever is granted: refused, with why.
    let (code, info, verdicts) = judge("plugins/nosy_transformer.wasm", "pipeline.yaml");
    assert_eq!(code, Some(78));
    assert_eq!(verdict_of(&verdicts, "pollen:plugin/hypervisor@0.2.0").as_deref(), Some("refused"), "{info}");
    assert_eq!(verdict_of(&verdicts, "pollen:plugin/types@0.2.0").as_deref(), Some("allowed"), "{info}");
    let output = pollen(&["plugins", "inspect", "plugins/nosy_transformer.wasm"], workspace.path());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("refused: transformers never reach the hypervisor"), "{stdout}");
}

#[test]
fn plugins_list_shows_each_plugin_and_why_one_is_refused() {
    let workspace = Workspace::new(&[builtin("cpu"), builtin("local_instances"), hostile("nosy_transformer")]);
    workspace.write_pipeline(&grants(&["cpu", "local_instances"]), "");
    let output = pollen(&["plugins", "list"], workspace.path());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(78), "{stdout}");
    assert!(stdout.contains("cpu") && stdout.contains("pollster"), "{stdout}");
    assert!(stdout.contains("discoverer local_instances"), "{stdout}");
    assert!(stdout.contains("refused:") && stdout.contains("nosy_transformer.wasm"), "{stdout}");
}

#[test]
fn plugins_say_which_settings_they_are_shown_with() {
    let workspace = Workspace::new(&[builtin("cpu")]);
    let output = pollen(&["plugins", "list", "--plugin-dir", "plugins"], workspace.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no pipeline file (no pipeline.yaml here, no --config)"), "{stderr}");
    let output = pollen(&["plugins", "inspect", "plugins/cpu.wasm", "--config", "missing.yaml"], workspace.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "a pipeline file named and missing is an error: {stderr}");
    assert!(stderr.contains("missing.yaml"), "{stderr}");
    workspace.write_pipeline(&grants(&["cpu"]), "");
    let output = pollen(&["plugins", "list"], workspace.path());
    assert!(!String::from_utf8_lossy(&output.stderr).contains("no pipeline file"), "pipeline.yaml is read");
}

#[test]
fn names_no_plugin_answers_to_stop_validate_with_a_did_you_mean() {
    let workspace = builtin_workspace();
    let source = "sources:\n  - name: compute\n    interval: 60\n    meters: [cpu]\n    discovery: [local_instance]\n    sinks: [out]\n\
                  sinks:\n  - name: out\n    publishers: ['file:///dev/null']\n";
    let mut extra = grants(&["local_instances", "cpu", "memory"]);
    extra.push_str("    cpuu:\n      params: {a: 1}\n");
    workspace.write_pipeline(&extra, source);
    let output = pollen(&["validate"], workspace.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("sources[0].discovery[0]: no plugin provides the discoverer `local_instance` (did you mean `local_instances`?)"),
        "{stderr}"
    );
    assert!(stderr.contains("agent.plugins.cpuu: names no plugin in plugins (did you mean `cpu`?)"), "{stderr}");

    // A meter whose plugin defaults to a discoverer the folder lacks.
    let without = Workspace::new(&[builtin("cpu")]);
    without.write_pipeline(&grants(&["cpu"]), &source.replace("    discovery: [local_instance]\n", ""));
    let output = pollen(&["validate"], without.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("sources[0].meters: the meter `cpu` (plugin `cpu`) is discovered by `local_instances`, which no plugin provides"),
        "{stderr}"
    );
}

#[test]
fn poll_once_says_which_meter_no_plugin_provides_and_fails() {
    let workspace = builtin_workspace();
    let misspelt = COMPUTE.replace("meters: [cpu, memory.usage]", "meters: [cpuu, memory.usage]");
    workspace.write_pipeline(
        &grants(&["local_instances", "cpu", "memory"]),
        &format!("{misspelt}sinks:\n  - name: out\n    publishers: ['stdout://']\n"),
    );
    let output = pollen(&["poll", "--once", "--config", "pipeline.yaml"], workspace.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no loaded plugin provides the meter `cpuu` (did you mean `cpu`?)"), "{stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).is_empty(), "memory.usage is still polled and printed");
}

/// `pollen plugin test`: one plugin, no pipeline file, its samples and problems.
#[test]
fn plugin_test_runs_one_plugin_alone_and_says_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let dist = repo().join("plugins/dist");
    let run = |file: &Path, extra: &[&str]| {
        let mut args = vec!["plugin", "test", file.to_str().unwrap(), "--plugin-dir", dist.to_str().unwrap()];
        args.extend_from_slice(extra);
        pollen(&args, dir.path())
    };
    let output = run(&builtin("cpu"), &["--grant", "hypervisor"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let samples = json_lines(&String::from_utf8_lossy(&output.stdout));
    assert_eq!(samples.len(), 1, "the test driver's one domain: {stderr}");
    assert_eq!(samples[0]["name"], "cpu");

    let output = run(&builtin("cpu"), &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("hypervisor"), "the missing grant is named: {stderr}");

    let output = run(&hostile("liar"), &["--param", "swap=false"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "refused samples fail the test: {stderr}");
    assert!(stderr.contains("malformed samples refused"), "{stderr}");

    // A discoverer is tested under a built-in pollster, on its resources.
    let output = run(&builtin("local_instances"), &["--grant", "hypervisor", "--meter", "memory.usage"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let samples = json_lines(&String::from_utf8_lossy(&output.stdout));
    assert_eq!(samples.len(), 1, "{stderr}");
    assert_eq!(samples[0]["name"], "memory.usage");

    // A transformer is tested on a built-in pollster's samples, over the cycles asked.
    let output = run(
        &builtin("rate_of_change"),
        &["--meter", "cpu", "--cycles", "2", "--param", "target.name=cpu_util", "--param", "target.unit=%"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let samples = json_lines(&String::from_utf8_lossy(&output.stdout));
    assert_eq!(samples.len(), 1, "a rate from the second cycle: {stderr}");
    assert_eq!(samples[0]["name"], "cpu_util");
    assert_eq!(samples[0]["unit"], "%");
}

/// Ceilometer's files, from `tests/data/ceilometer`.
fn ceilometer(name: &str) -> std::path::PathBuf {
    repo().join("tests/data/ceilometer").join(name)
}

#[test]
fn ceilometers_shipped_files_load_as_they_are() {
    let dist = repo().join("plugins/dist");
    for (polling, pipeline, gnocchi_sinks) in [
        (Some("polling.yaml"), "pipeline.yaml", 1),
        (Some("polling_all.yaml"), "pipeline.yaml", 1),
        (None, "pipeline_with_transformers.yaml", 5),
        (Some("polling.yaml"), "pipeline_with_transformers.yaml", 5),
    ] {
        let mut args = vec!["validate".to_string(), "--plugin-dir".into(), dist.display().to_string()];
        if let Some(polling) = polling {
            args.extend(["--polling".into(), ceilometer(polling).display().to_string()]);
        }
        args.extend(["--pipeline".into(), ceilometer(pipeline).display().to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();

        // Ceilometer finds Gnocchi in Keystone's catalog: without credentials, each
        // `gnocchi://` says so.
        let output = pollen_command().args(&args).current_dir(repo()).env_remove("OS_AUTH_URL").output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(78), "{pipeline}: {stderr}");
        assert!(stderr.contains(&format!("{gnocchi_sinks} problem")), "{pipeline}: {stderr}");
        assert_eq!(stderr.matches("publisher `gnocchi://`: names no Gnocchi").count(), gnocchi_sinks, "{stderr}");

        // With Keystone credentials in the environment (as ceilometer.conf gives
        // them), the same files are valid unchanged.
        let output = pollen_command()
            .args(&args)
            .current_dir(repo())
            .envs([
                ("OS_AUTH_URL", "http://keystone.example:5000/v3"),
                ("OS_USERNAME", "ceilometer"),
                ("OS_PASSWORD", "secret"),
                ("OS_PROJECT_NAME", "service"),
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{pipeline}: {}", String::from_utf8_lossy(&output.stderr));
        assert!(stdout.contains("valid (13 plugins"), "{stdout}");
        if polling == Some("polling.yaml") {
            assert!(stdout.contains("no loaded plugin provides `hardware.cpu.util`"), "{stdout}");
        }
        if polling.is_some() && pipeline.contains("transformers") {
            assert!(stdout.contains("sources[1].interval: ignored"), "{stdout}");
        }
    }
}

#[test]
fn ceilometer_files_run_with_their_transformers() {
    let workspace = Workspace::new(&[]);
    let out = workspace.path().join("samples.jsonl");
    std::fs::write(
        workspace.path().join("polling.yaml"),
        "---\nsources:\n    - name: some_pollsters\n      interval: 1\n      meters:\n        - cpu\n        - memory.usage\n",
    )
    .unwrap();
    let pipeline = std::fs::read_to_string(ceilometer("pipeline_with_transformers.yaml"))
        .unwrap()
        .replace("gnocchi://", &format!("file://{}", out.display()));
    std::fs::write(workspace.path().join("pipeline.yaml"), pipeline).unwrap();
    let dist = repo().join("plugins/dist");
    let mut command = pollen_command();
    command
        .args(["run", "--polling", "polling.yaml", "--pipeline", "pipeline.yaml", "--log", "info", "--plugin-dir"])
        .arg(&dist)
        .current_dir(workspace.path());
    let mut agent = Running::spawn(command, out.clone());
    let has = |samples: &[Value], name: &str| samples.iter().any(|s| s["name"] == name);
    agent.wait_for("cpu_util and cpu.delta", |s| has(s, "cpu_util") && has(s, "cpu.delta"));
    agent.stop();
    let samples = json_lines(&std::fs::read_to_string(&out).unwrap());
    let cpu_util = samples.iter().find(|s| s["name"] == "cpu_util").unwrap();
    assert_eq!((cpu_util["unit"].as_str(), cpu_util["type"].as_str()), (Some("%"), Some("gauge")));
    let value = cpu_util["volume"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&value), "{value}");
    // memory.usage is polled but no pipeline source but meter_source takes it: raw only.
    assert!(samples.iter().any(|s| s["name"] == "memory.usage"));
    assert!(!samples.iter().any(|s| s["name"].as_str().is_some_and(|n| n.starts_with("memory.usage."))));
}

fn file_sink(out: &Path) -> String {
    format!("sinks:\n  - name: out\n    publishers: ['file://{}']\n", out.display())
}

#[test]
fn sighup_reload_adds_and_removes_plugins_while_running() {
    let workspace = Workspace::new(&[builtin("local_instances"), builtin("cpu")]);
    let out = workspace.path().join("samples.jsonl");
    let all = "sources:\n  - name: compute\n    interval: 1\n    meters: ['*']\n    sinks: [out]\n";
    workspace.write_pipeline(&grants(&["local_instances", "cpu"]), &format!("{all}{}", file_sink(&out)));
    let mut agent = Running::start(&workspace, &[], out);
    agent.wait_for("cpu samples", |s| s.iter().any(|s| s["name"] == "cpu"));

    // A new plugin, granted in the new configuration: loaded without a restart.
    workspace.add_plugin(&builtin("memory"));
    workspace
        .write_pipeline(&grants(&["local_instances", "cpu", "memory"]), &format!("{all}{}", file_sink(&agent.out)));
    agent.signal("HUP");
    agent.wait_for("memory.usage samples", |s| s.iter().any(|s| s["name"] == "memory.usage"));

    // A removed plugin: unloaded, its meter no longer polled. The old tasks stop
    // before the reload is logged: whatever was polled after that is the new pipeline's.
    std::fs::remove_file(workspace.plugin_dir().join("cpu.wasm")).unwrap();
    agent.signal("HUP");
    agent.wait_for_log("configuration reloaded plugins=2", 1);
    let reloaded = pollen_host::sample::iso8601(pollen_host::sample::now_ns());
    let after = |s: &[Value], name: &str| {
        s.iter().filter(|s| s["name"] == name && s["timestamp"].as_str().unwrap() > reloaded.as_str()).count()
    };
    agent.wait_for("memory.usage of two cycles after the reload", |s| after(s, "memory.usage") >= 2);
    assert_eq!(after(&agent.samples(), "cpu"), 0, "cpu is still polled after its plugin was removed");
    let stderr = agent.stop();
    assert!(stderr.contains("configuration reloaded plugins=3"), "{stderr}");
    assert!(stderr.contains("configuration reloaded plugins=2"), "{stderr}");
    assert!(stderr.contains("reloads=2"), "{stderr}");
}

#[test]
fn an_invalid_reload_keeps_the_running_pipeline() {
    let workspace = builtin_workspace();
    let out = workspace.path().join("samples.jsonl");
    workspace.write_pipeline(&grants(&["local_instances", "cpu", "memory"]), &format!("{COMPUTE}{}", file_sink(&out)));
    let mut agent = Running::start(&workspace, &[], out);
    agent.wait_for("samples", |s| !s.is_empty());
    std::fs::write(workspace.path().join("pipeline.yaml"), "sources:\n  - name: [broken\n").unwrap();
    agent.signal("HUP");
    agent.wait_for_log("the new configuration is refused", 1);
    let cycles = agent.logged("cycle done");
    agent.wait_for_log("cycle done", cycles + 2);
    let before = agent.samples().len();
    agent.wait_for("more samples after the refused reload", |s| s.len() > before);
    let stderr = agent.stop();
    assert!(stderr.contains("the new configuration is refused; the running one is kept"), "{stderr}");
    assert!(stderr.contains("pipeline.yaml:2:"), "the error says where: {stderr}");
    assert!(stderr.contains("reloads=0"), "{stderr}");
}

#[test]
fn watch_reloads_when_the_pipeline_file_changes() {
    let workspace = builtin_workspace();
    let out = workspace.path().join("samples.jsonl");
    let grants = grants(&["local_instances", "cpu", "memory"]);
    let only_cpu = "sources:\n  - name: compute\n    interval: 1\n    meters: [cpu]\n    sinks: [out]\n";
    workspace.write_pipeline(&grants, &format!("{only_cpu}{}", file_sink(&out)));
    let mut agent = Running::start(&workspace, &["--watch"], out);
    agent.wait_for("cpu samples", |s| s.iter().any(|s| s["name"] == "cpu"));
    assert_eq!(agent.count("memory.usage"), 0);
    workspace.write_pipeline(&grants, &format!("{COMPUTE}{}", file_sink(&agent.out)));
    agent.wait_for("memory.usage after the file changed", |s| s.iter().any(|s| s["name"] == "memory.usage"));
    let stderr = agent.stop();
    assert!(stderr.contains("configuration or plugin files changed"), "{stderr}");
}

#[test]
fn sigterm_flushes_what_transformers_hold() {
    let workspace = Workspace::new(&[builtin("local_instances"), builtin("cpu"), builtin("accumulator")]);
    let raw = workspace.path().join("raw.jsonl");
    let held = workspace.path().join("held.jsonl");
    workspace.write_pipeline(
        &grants(&["local_instances", "cpu"]),
        &cpu_raw_and_through(&raw, &held, "      - name: accumulator\n        parameters: {size: 1000}\n"),
    );
    let mut agent = Running::start(&workspace, &[], raw);
    agent.wait_for("two cycles", |s| s.len() >= 2);
    assert_eq!(std::fs::read_to_string(&held).unwrap_or_default().lines().count(), 0, "held back below size");
    agent.stop();
    let raw_count = std::fs::read_to_string(workspace.path().join("raw.jsonl")).unwrap().lines().count();
    let held_samples = json_lines(&std::fs::read_to_string(&held).expect("flushed at shutdown"));
    assert_eq!(held_samples.len(), raw_count, "everything the accumulator held went out at SIGTERM");
}

#[test]
fn validate_reports_refused_plugins_and_bad_transformers_at_once_with_exit_78() {
    let workspace = Workspace::new(&[builtin("local_instances"), builtin("cpu"), builtin("rate_of_change")]);
    // Built-in plugins are granted what they need by default; one of the operator's
    // own is granted nothing unless the pipeline says so.
    std::fs::copy(builtin("memory"), workspace.plugin_dir().join("my_memory.wasm")).unwrap();
    workspace.write_pipeline(
        &grants(&["local_instances", "cpu"]),
        "sources:\n  - name: cpu\n    meters: [cpu]\n    sinks: [util]\nsinks:\n  - name: util\n    transformers:\n      - name: rate_of_change\n        parameters:\n          target: {name: cpu_util, scale: '100 / (resource_metadata.cpu_number or'}\n      - name: unit_convresion\n    publishers: ['stdout://']\n",
    );
    let output = pollen(&["validate"], workspace.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("1 plugin file was refused") && stderr.contains("my_memory.wasm"), "{stderr}");
    assert!(stderr.contains("2 problems"), "every problem at once: {stderr}");
    assert!(
        stderr.contains("sinks[0].transformers[0] (rate_of_change)") && stderr.contains("`target.scale`"),
        "{stderr}"
    );
    assert!(stderr.contains("sinks[0].transformers[1]: no transformer plugin `unit_convresion`"), "{stderr}");
}

/// `--log-format json`: every line on stderr is one JSON object, and a plugin's failure
/// carries its plugin and meter as fields of their own, for log shippers to index.
#[test]
fn json_logs_are_one_object_a_line_with_the_plugin_and_meter_as_fields() {
    let workspace = Workspace::new(&[builtin("local_instances"), builtin("cpu"), hostile("trap")]);
    workspace.write_pipeline(&grants(&["local_instances", "cpu"]), &stdout_source("meters: ['*']"));
    let output = pollen(&["--log-format", "json", "poll", "--once"], workspace.path());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "the trap plugin failed: {stderr}");
    let lines: Vec<Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON object ({e}): {line}")))
        .collect();
    assert!(lines
        .iter()
        .all(|l| l["timestamp"].is_string() && l["level"].is_string() && l["fields"]["message"].is_string()));
    let failed = lines
        .iter()
        .find(|l| l["fields"]["message"].as_str().is_some_and(|m| m.starts_with("poll failed")))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert_eq!(failed["level"], "ERROR");
    assert_eq!(failed["fields"]["plugin"], "trap");
    assert_eq!(failed["fields"]["calls"], 1);
    assert!(
        failed["fields"]["first"].as_str().unwrap_or_default().contains("test plugin panics on purpose"),
        "{failed}"
    );
    assert!(lines.iter().any(|l| l["fields"]["message"] == "poll done"), "{stderr}");
}
