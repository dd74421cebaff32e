//! Start-up with a large component in the plugin folder: `pollen run` on the test
//! driver with the seven compute built-ins and the repository's Python pollster
//! (`plugins/dist-python/domain_states.wasm`, 19 MB), from a cold compile cache and
//! from a warm one; beside it, the same cold start waiting for every plugin
//! (`compile_wait` past the compile, as before compiles went to the background) and
//! the built-ins alone. Figures: seconds from spawn to the first cycle's samples of the
//! built-ins (`cpu`) and of the Python plugin (`host.domains`).
//!
//! `cargo bench -p pollen-host --bench startup` (after `make plugins python-plugins`).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const COMPUTE: [&str; 7] = ["local_instances", "cpu", "memory", "instance", "disk", "network", "perf"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Start {
    started: f64,
    builtins: f64,
    python: Option<f64>,
}

/// One `pollen run` until `host.domains` (or only `cpu`, without the Python plugin)
/// is in its output; seconds from spawn.
fn start(folder: &Path, compile_wait: f64, python: bool) -> Start {
    let out = folder.join("out.jsonl");
    let _ = std::fs::remove_file(&out);
    let pipeline = folder.join("pipeline.yaml");
    std::fs::write(
        &pipeline,
        format!(
            "agent:\n  plugin_dir: plugins\n  cache_dir: cache\n  compile_wait: {compile_wait}\n{}\
             sources:\n  - name: all\n    interval: 1\n    meters: ['*']\n    sinks: [out]\n\
             sinks:\n  - name: out\n    publishers: ['file://{}']\n",
            if python { "  plugins:\n    domain_states:\n      grants: [hypervisor]\n" } else { "" },
            out.display()
        ),
    )
    .unwrap();
    let spawned = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pollen"))
        .args(["run", "--config", pipeline.to_str().unwrap()])
        .current_dir(folder)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("pollen runs");
    let stderr = child.stderr.take().unwrap();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let log = std::thread::spawn(move || {
        let mut log = String::new();
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("pollen started") {
                let _ = started_tx.send(());
            }
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    if started_rx.recv_timeout(Duration::from_secs(600)).is_err() {
        let _ = child.kill();
        panic!("pollen did not start: {}", log.join().unwrap_or_default());
    }
    let started = spawned.elapsed().as_secs_f64();
    let (mut builtins, mut python_at) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline && (builtins.is_none() || (python && python_at.is_none())) {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        if builtins.is_none() && text.contains("\"name\":\"cpu\"") {
            builtins = Some(spawned.elapsed().as_secs_f64());
        }
        if python_at.is_none() && text.contains("\"name\":\"host.domains\"") {
            python_at = Some(spawned.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: signalling our own child, not yet waited for.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let _ = child.wait();
    Start { started, builtins: builtins.expect("cpu samples"), python: python_at }
}

fn folder(with_python: bool) -> PathBuf {
    let folder = std::env::temp_dir().join(format!("pollen-bench-startup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(folder.join("plugins")).unwrap();
    for name in COMPUTE {
        let file = repo().join("plugins/dist").join(format!("{name}.wasm"));
        assert!(file.is_file(), "{} is missing: `make plugins`", file.display());
        std::fs::copy(&file, folder.join("plugins").join(format!("{name}.wasm"))).unwrap();
    }
    if with_python {
        let file = repo().join("plugins/dist-python/domain_states.wasm");
        assert!(file.is_file(), "{} is missing: `make python-plugins`", file.display());
        std::fs::copy(&file, folder.join("plugins/domain_states.wasm")).unwrap();
    }
    folder
}

fn row(label: &str, start: &Start) {
    let python = start.python.map_or("—".to_string(), |s| format!("{s:.2}"));
    println!("| {label} | {:.2} | {:.2} | {python} |", start.started, start.builtins);
}

fn main() {
    println!("| start | `pollen started` s | first `cpu` sample s | first `host.domains` (Python) s |");
    println!("|---|---:|---:|---:|");
    let alone = folder(false);
    row("built-ins alone, cold cache", &start(&alone, 5.0, false));
    row("built-ins alone, warm cache", &start(&alone, 5.0, false));
    let _ = std::fs::remove_dir_all(&alone);

    let with_python = folder(true);
    row("with the Python plugin, cold cache (compiles in the background)", &start(&with_python, 5.0, true));
    row("with the Python plugin, warm cache", &start(&with_python, 5.0, true));
    std::fs::remove_dir_all(with_python.join("cache")).unwrap();
    row("with the Python plugin, cold cache, waiting for every plugin", &start(&with_python, 600.0, true));
    let _ = std::fs::remove_dir_all(&with_python);
}
