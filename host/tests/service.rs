//! Pollen as a service: what it tells systemd (`Type=notify`: ready, reloading,
//! stopping, the watchdog fed), and the Debian package installed into a fresh root,
//! its configuration validated by the installed binary and its units by systemd.

mod common;

use common::*;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

/// A socket standing in for systemd's `NOTIFY_SOCKET`: every message it receives.
struct Systemd {
    path: std::path::PathBuf,
    messages: Arc<Mutex<Vec<String>>>,
}

impl Systemd {
    fn listen(dir: &Path) -> Self {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("a datagram socket");
        let messages: Arc<Mutex<Vec<String>>> = Arc::default();
        let received = messages.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = socket.recv(&mut buffer) {
                received.lock().unwrap().push(String::from_utf8_lossy(&buffer[..n]).into_owned());
            }
        });
        Self { path, messages }
    }

    fn count(&self, line: &str) -> usize {
        self.messages.lock().unwrap().iter().filter(|m| m.lines().any(|l| l == line)).count()
    }

    fn said(&self) -> String {
        format!("{:?}", self.messages.lock().unwrap())
    }

    /// A command run as systemd runs the unit: with the socket and a watchdog of 300 ms.
    fn command(&self, workspace: &Workspace, args: &[&str]) -> Command {
        let mut command = pollen_command();
        command
            .args(args)
            .current_dir(workspace.path())
            .env("NOTIFY_SOCKET", &self.path)
            .env("WATCHDOG_USEC", "300000");
        command
    }
}

/// `pollen run` says READY=1 once polling, feeds the watchdog at half its interval,
/// says RELOADING=1 then READY=1 around a SIGHUP, and STOPPING=1 at SIGTERM.
#[test]
fn the_agent_tells_systemd_it_is_ready_reloading_and_stopping_and_feeds_the_watchdog() {
    let workspace = Workspace::new(&[builtin("local_instances"), builtin("cpu")]);
    let out = workspace.path().join("samples.jsonl");
    workspace.write_pipeline(
        "",
        &format!(
            "sources:\n  - name: all\n    interval: 1\n    meters: [cpu]\n    sinks: [out]\n\
             sinks:\n  - name: out\n    publishers: ['file://{}']\n",
            out.display()
        ),
    );
    let systemd = Systemd::listen(workspace.path());
    let mut agent = Running::spawn(systemd.command(&workspace, &["run", "--config", "pipeline.yaml"]), out);
    agent.wait("READY=1", |_| systemd.count("READY=1") == 1);
    assert!(systemd.said().contains("STATUS=polling: 2 plugins, 1 sources"), "{}", systemd.said());
    agent.wait("the watchdog fed three times", |_| systemd.count("WATCHDOG=1") >= 3);
    agent.signal("HUP");
    agent.wait("RELOADING=1, then READY=1", |_| systemd.count("RELOADING=1") == 1 && systemd.count("READY=1") == 2);
    let log = agent.stop();
    assert_eq!(systemd.count("STOPPING=1"), 1, "{}\n{log}", systemd.said());
    assert!(log.contains("feeding systemd's watchdog every_ms=150"), "{log}");
}

/// `pollen collect` says READY=1 once its inputs listen, and STOPPING=1 at SIGTERM.
#[test]
fn the_collector_tells_systemd_it_is_ready_and_stopping() {
    let workspace = Workspace::new(&[]);
    let out = workspace.path().join("received.jsonl");
    std::fs::write(
        workspace.path().join("collector.yaml"),
        format!(
            "collector:\n  inputs:\n    - url: udp://127.0.0.1:{}\n      sinks: [out]\n\
             sinks:\n  - name: out\n    publishers: ['file://{}']\n",
            free_port(),
            out.display()
        ),
    )
    .unwrap();
    let systemd = Systemd::listen(workspace.path());
    let mut collector = Running::spawn(systemd.command(&workspace, &["collect", "--config", "collector.yaml"]), out);
    collector.wait("READY=1", |_| systemd.count("READY=1") == 1);
    collector.wait("the watchdog fed", |_| systemd.count("WATCHDOG=1") >= 2);
    collector.stop();
    assert_eq!(systemd.count("STOPPING=1"), 1, "{}", systemd.said());
}

fn run(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{command:?}: {text}");
    text
}

/// The package (`scripts/deb.sh`, as `make deb` runs it, here with the binary the
/// tests were built with) installs with `dpkg -i` into a fresh root; the installed
/// binary validates the installed configuration with the installed plugins, and
/// systemd finds nothing wrong with the installed units.
#[test]
fn the_debian_package_installs_and_its_configuration_validates() {
    let dir = tempfile::tempdir().unwrap();
    let built = run(Command::new(repo().join("scripts/deb.sh")).args([
        "--binary",
        env!("CARGO_BIN_EXE_pollen"),
        "--out",
        &dir.path().display().to_string(),
    ]));
    let package = built.trim().lines().last().unwrap().to_string();
    let info = run(Command::new("dpkg-deb").args(["--info", &package]));
    assert!(info.contains("Package: pollen") && info.contains("Depends: libc6"), "{info}");
    let listing = run(Command::new("dpkg-deb").args(["--contents", &package]));
    for file in [
        "./usr/bin/pollen",
        "./usr/lib/pollen/plugins/cpu.wasm",
        "./usr/lib/pollen/plugins/rate_of_change.wasm",
        "./usr/lib/pollen/plugins-central/glance_images.wasm",
        "./lib/systemd/system/pollen.service",
        "./lib/systemd/system/pollen-collect.service",
        "./etc/pollen/pipeline.yaml",
        "./etc/pollen/collector.yaml",
        "./usr/share/doc/pollen/operations.md",
    ] {
        assert!(listing.contains(file), "{file} is not in the package:\n{listing}");
    }

    // A fresh root with an empty dpkg database: the package's dependencies are the
    // machine's, not the root's.
    let root = dir.path().join("root");
    for sub in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    run(Command::new("dpkg").args([
        "--root",
        &root.display().to_string(),
        "--force-depends",
        "--force-not-root",
        "--force-script-chrootless",
        "-i",
        &package,
    ]));
    let status = std::fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap();
    assert!(status.contains("Package: pollen") && status.contains("Status: install ok installed"), "{status}");

    let installed = root.join("usr/bin/pollen");
    let pipeline = root.join("etc/pollen/pipeline.yaml");
    let shipped = std::fs::read_to_string(&pipeline).unwrap();
    assert!(shipped.contains("libvirt_uri: qemu:///system") && shipped.contains("policy=disk"), "{shipped}");
    let validated = run(Command::new(&installed)
        .args(["validate", "--config"])
        .arg(&pipeline)
        .arg("--plugin-dir")
        .arg(root.join("usr/lib/pollen/plugins"))
        .env("XDG_CACHE_HOME", env!("CARGO_TARGET_TMPDIR")));
    assert!(validated.contains("pipeline.yaml: valid (13 plugins"), "{validated}");
    run(Command::new(&installed).args(["collect", "--check", "--config"]).arg(root.join("etc/pollen/collector.yaml")));

    // The installed units, checked by systemd against this machine's units, their
    // `/usr/bin/pollen` pointed at the installed binary.
    let units = dir.path().join("units");
    std::fs::create_dir_all(&units).unwrap();
    for unit in ["pollen.service", "pollen-collect.service"] {
        let text = std::fs::read_to_string(root.join("lib/systemd/system").join(unit)).unwrap();
        std::fs::write(units.join(unit), text.replace("/usr/bin/pollen", &installed.display().to_string())).unwrap();
    }
    let verified = Command::new("systemd-analyze")
        .args(["verify"])
        .arg(units.join("pollen.service"))
        .arg(units.join("pollen-collect.service"))
        .output()
        .expect("systemd-analyze runs (systemd is on every Debian machine)");
    let said = String::from_utf8_lossy(&verified.stderr);
    assert!(verified.status.success() && !said.contains("pollen"), "systemd-analyze verify: {said}");
}
