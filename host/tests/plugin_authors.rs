//! A plugin author's path, as the README gives it: `pollen plugin new` for each kind
//! and language, the project built as its README says, `pollen plugin test` with the
//! arguments `plugin new` prints; the repository's Python pollster in the agent; a
//! Python exception reported as itself.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

fn pollen(args: &[&str], cwd: &Path) -> Output {
    pollen_command().args(args).current_dir(cwd).output().expect("pollen runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// componentize-py, as `make setup` installs it (`scripts/python-plugins.sh`); in CI
/// its absence fails the test.
fn componentize_py() -> Option<PathBuf> {
    let path = PathBuf::from("/var/lib/pollen-python/venv/bin/componentize-py");
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var("CI").is_err(),
        "CI: no componentize-py (`scripts/python-plugins.sh install`, in `make setup`)"
    );
    eprintln!("skipped: no componentize-py at {} (`make setup`)", path.display());
    None
}

/// Runs `pollen plugin new` in `dir` and returns the two commands it says to run
/// next: the build, and the `pollen plugin test` arguments.
fn new_project(dir: &Path, name: &str, kind: &str, language: &str) -> (String, Vec<String>) {
    let repo = repo();
    let output =
        pollen(&["plugin", "new", name, "--kind", kind, "--lang", language, "--sdk", repo.to_str().unwrap()], dir);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    let next = lines.iter().position(|l| *l == "next:").expect("next steps");
    assert_eq!(lines[next + 1], format!("cd {name}"));
    let test = lines[next + 3].strip_prefix("pollen ").expect("a pollen command").split(' ').map(String::from);
    (lines[next + 2].to_string(), test.collect())
}

/// Runs a project's build command as an author would, in its folder.
fn build(project: &Path, command: &str, env: &[(&str, &Path)]) {
    let mut words = command.split(' ');
    let mut build = Command::new(words.next().unwrap());
    build.args(words).current_dir(project);
    for (key, value) in env {
        build.env(key, value);
    }
    let output = build.output().expect("the build runs");
    assert!(
        output.status.success(),
        "`{command}` in {}: {}{}",
        project.display(),
        text(&output.stdout),
        text(&output.stderr)
    );
}

/// `plugin test` with the arguments `plugin new` printed: some sample comes out.
fn test_gives_samples(project: &Path, arguments: &[String]) -> Vec<serde_json::Value> {
    let dist = repo().join("plugins/dist");
    let mut args: Vec<&str> = arguments.iter().map(String::as_str).collect();
    args.extend(["--plugin-dir", dist.to_str().unwrap()]);
    let output = pollen(&args, project);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "pollen {}: {stderr}", args.join(" "));
    let samples = json_lines(&text(&output.stdout));
    assert!(!samples.is_empty(), "{stderr}");
    samples
}

#[test]
fn a_new_rust_plugin_of_each_kind_builds_and_gives_samples() {
    let _ = builtin("local_instances");
    let dir = tempfile::tempdir().unwrap();
    // One target folder for the three (and kept between runs): the SDK's
    // dependencies are compiled once.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"))
        .join("plugin-new-projects");
    for (kind, name) in [("pollster", "my_meter"), ("discoverer", "my_finder"), ("transformer", "my_scale")] {
        let started = Instant::now();
        let (build_command, test) = new_project(dir.path(), name, kind, "rust");
        let project = dir.path().join(name);
        assert_eq!(build_command, "cargo build --release");
        // Offline: everything it needs is fetched already (the workspace's lock).
        build(&project, &format!("{build_command} --offline"), &[("CARGO_TARGET_DIR", &target)]);
        let built = target.join(format!("wasm32-wasip2/release/{name}.wasm"));
        assert!(built.is_file(), "{}", built.display());
        // The artifact is where the printed command looks for it.
        let local = project.join(format!("target/wasm32-wasip2/release/{name}.wasm"));
        std::fs::create_dir_all(local.parent().unwrap()).unwrap();
        std::fs::copy(&built, &local).unwrap();
        let samples = test_gives_samples(&project, &test);
        eprintln!("rust {kind}: new → samples in {:.1} s", started.elapsed().as_secs_f64());
        check_samples(kind, name, &samples);
    }
}

#[test]
fn a_new_python_plugin_of_each_kind_builds_and_gives_samples() {
    let Some(componentize) = componentize_py() else { return };
    let _ = builtin("local_instances");
    let dir = tempfile::tempdir().unwrap();
    for (kind, name) in [("pollster", "py_meter"), ("discoverer", "py_finder"), ("transformer", "py_scale")] {
        let started = Instant::now();
        let (build_command, test) = new_project(dir.path(), name, kind, "python");
        let project = dir.path().join(name);
        assert_eq!(build_command, "./build.sh");
        build(&project, &build_command, &[("COMPONENTIZE_PY", &componentize)]);
        let samples = test_gives_samples(&project, &test);
        eprintln!("python {kind}: new → samples in {:.1} s", started.elapsed().as_secs_f64());
        check_samples(kind, name, &samples);
    }

    // An exception in Python code reaches the log as itself: type, message, line.
    let project = dir.path().join("py_meter");
    let app = std::fs::read_to_string(project.join("app.py")).unwrap();
    let failing = app.replace(
        "    def poll(self, resources):\n",
        "    def poll(self, resources):\n        raise KeyError(\"no such counter\")\n",
    );
    assert_ne!(app, failing, "the template's poll is where the test expects it");
    std::fs::write(project.join("app.py"), failing).unwrap();
    build(&project, "./build.sh", &[("COMPONENTIZE_PY", &componentize)]);
    let output = pollen(&["plugin", "test", "py_meter.wasm", "--grant", "hypervisor"], &project);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("KeyError: 'no such counter' (at app.py:"), "{stderr}");
    assert!(!stderr.contains("RUST_BACKTRACE") && !stderr.contains("wasm trap"), "{stderr}");
}

/// What each template makes of the test driver's one domain.
fn check_samples(kind: &str, name: &str, samples: &[serde_json::Value]) {
    assert_eq!(samples.len(), 1, "the test driver's one domain: {samples:?}");
    let sample = &samples[0];
    match kind {
        // Its memory, 2 GiB in the test driver.
        "pollster" => assert_eq!((sample["name"].as_str(), sample["volume"].as_f64()), (Some(name), Some(2048.0))),
        // `cpu` on its resources, with the metadata it reported (only `display_name`).
        "discoverer" => {
            assert_eq!(sample["name"], "cpu");
            assert_eq!(sample["resource_metadata"]["display_name"], "test");
            assert!(sample["resource_metadata"].get("instance_host").is_none(), "its resources, not local_instances'");
        }
        // `cpu` doubled (`--param factor=2`): the test driver's CPU time is ~1.8e18 ns.
        "transformer" => {
            assert_eq!(sample["name"], "cpu");
            assert!(sample["volume"].as_f64().unwrap() > 3.0e18, "{sample}");
        }
        other => unreachable!("{other}"),
    }
}

/// The repository's Python pollster (`plugins/python/domain_states`, `make
/// python-plugins`): a host-level meter, polled by the agent beside the built-ins with
/// one grant written.
#[test]
fn the_python_pollster_runs_in_the_agent_with_one_grant() {
    let python = repo().join("plugins/dist-python/domain_states.wasm");
    assert!(python.is_file(), "{} is missing: run `make python-plugins` (`make test` does)", python.display());
    let workspace = Workspace::new(&[builtin("local_instances"), builtin("cpu"), python]);
    // Only the new plugin's grant: the built-ins have theirs by default.
    workspace.write_pipeline(
        "  plugins:\n    domain_states:\n      grants: [hypervisor]\n",
        "sources:\n  - name: all\n    interval: 60\n    meters: [cpu, 'host.*']\n    sinks: [out]\nsinks:\n  - name: out\n    publishers: ['stdout://']\n",
    );
    let output = pollen(&["poll", "--once"], workspace.path());
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let samples = json_lines(&text(&output.stdout));
    let volume = |meter: &str| {
        samples.iter().find(|s| s["name"] == meter).map(|s| (s["volume"].as_f64(), s["resource_id"].clone()))
    };
    let host = gethostname();
    assert_eq!(volume("host.domains"), Some((Some(1.0), serde_json::json!(host))), "{stderr}");
    assert_eq!(volume("host.domains.running"), Some((Some(1.0), serde_json::json!(host))), "{stderr}");
    assert!(volume("cpu").is_some(), "the built-ins poll beside it: {stderr}");
}

fn gethostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string()
}

/// A large component compiling for the first time does not hold up the others: the
/// agent starts without it after `compile_wait`, says so, and adds it by a reload of
/// its own once it is compiled; a second start reads it from the cache.
#[test]
fn a_pollster_still_compiling_joins_once_compiled_without_holding_up_the_others() {
    let python = repo().join("plugins/dist-python/domain_states.wasm");
    assert!(python.is_file(), "{} is missing: run `make python-plugins`", python.display());
    // A cache of its own: cold, whatever the other tests compiled.
    let workspace = Workspace::with_private_cache(&[builtin("local_instances"), builtin("cpu"), python]);
    let out = workspace.path().join("out.jsonl");
    workspace.write_pipeline(
        "  compile_wait: 0.2\n  plugins:\n    domain_states:\n      grants: [hypervisor]\n",
        &format!(
            "sources:\n  - name: all\n    interval: 1\n    meters: [cpu, 'host.*']\n    sinks: [out]\nsinks:\n  - name: out\n    publishers: ['file://{}']\n",
            out.display()
        ),
    );
    let mut agent = Running::start(&workspace, &[], out.clone());
    agent.wait_for_log("still compiling: left out until it is ready", 1);
    agent.wait_for("the built-ins' samples", |samples| samples.iter().any(|s| s["name"] == "cpu"));
    agent.wait_for_log("the plugins compiled in the background are ready: reloading to add them", 1);
    agent.wait_for("the Python plugin's samples after it joined", |samples| {
        samples.iter().any(|s| s["name"] == "host.domains")
    });
    let first_python = agent.samples().iter().position(|s| s["name"] == "host.domains").unwrap();
    let first_cpu = agent.samples().iter().position(|s| s["name"] == "cpu").unwrap();
    assert!(first_cpu < first_python, "the built-ins polled before the Python plugin was compiled");
    let stderr = agent.stop();
    assert!(stderr.contains("configuration reloaded plugins=3"), "{stderr}");

    // Warm: all three from the first cycle, nothing left out.
    std::fs::remove_file(&out).unwrap();
    let mut agent = Running::start(&workspace, &[], out);
    agent.wait_for("every meter in one start", |samples| {
        samples.iter().any(|s| s["name"] == "host.domains") && samples.iter().any(|s| s["name"] == "cpu")
    });
    let stderr = agent.stop();
    assert!(stderr.contains("pollen started plugins=3") && !stderr.contains("still compiling"), "{stderr}");
}
