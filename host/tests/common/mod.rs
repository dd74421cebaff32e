//! Helpers shared by the integration tests: where the built plugins are, temporary
//! plugin directories and pipeline files.
#![allow(dead_code)]

mod broker;
mod cloud;
mod oracle;
mod store;
#[allow(unused_imports)]
pub use broker::*;
#[allow(unused_imports)]
pub use cloud::*;
#[allow(unused_imports)]
pub use oracle::*;
#[allow(unused_imports)]
pub use store::*;

use pollen_host::config;
use pollen_host::pipeline::Agent;
use pollen_host::publish::Batch;
use pollen_host::registry::Registry;
use pollen_host::sample::{Metadata, Meter, MeterType, Owner, Resource, Sample};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The repository's top folder.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("host/ has a parent").to_path_buf()
}

/// A built-in plugin, as `make plugins` leaves it.
pub fn builtin(name: &str) -> PathBuf {
    built(repo().join("plugins/dist").join(format!("{name}.wasm")), "make plugins")
}

/// A built-in central plugin, as `make plugins` leaves it (`plugins/dist-central`).
pub fn central(name: &str) -> PathBuf {
    built(repo().join("plugins/dist-central").join(format!("{name}.wasm")), "make plugins")
}

/// A hostile test plugin, as `make test-plugins` leaves it.
pub fn hostile(name: &str) -> PathBuf {
    built(repo().join("tests/plugins/dist").join(format!("{name}.wasm")), "make test-plugins")
}

fn built(path: PathBuf, how: &str) -> PathBuf {
    assert!(path.exists(), "{} is missing: run `{how}` first (`make test` does)", path.display());
    path
}

/// The test-driver node with Nova metadata (`tests/data/nova-node.xml`), as a URI.
pub fn nova_node_uri() -> String {
    format!("test://{}", repo().join("tests/data/nova-node.xml").display())
}

/// The cache of compiled plugins shared by every test of the run (under Cargo's
/// target folder): each plugin is compiled once for the whole run, not once per test
/// (the cache's lock files make concurrent tests wait for one compilation).
pub fn shared_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("pollen")
}

/// The `pollen` binary, with the shared cache of compiled plugins as its default
/// (`$XDG_CACHE_HOME/pollen`) for pipelines that set no `cache_dir`.
pub fn pollen_command() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_pollen"));
    command.env("XDG_CACHE_HOME", env!("CARGO_TARGET_TMPDIR"));
    command
}

/// A temporary folder holding a plugin directory with copies of `plugins`, and a
/// `cache` folder that is the run's [`shared_cache`].
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new(plugins: &[PathBuf]) -> Self {
        let workspace = Self::with_private_cache(plugins);
        std::fs::create_dir_all(shared_cache()).expect("shared cache folder");
        std::os::unix::fs::symlink(shared_cache(), workspace.path().join("cache")).expect("link the shared cache");
        workspace
    }

    /// The same with a `cache` folder of its own, empty (for tests of the cache).
    pub fn with_private_cache(plugins: &[PathBuf]) -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        std::fs::create_dir_all(dir.path().join("plugins")).expect("plugin folder");
        let workspace = Self { dir };
        for plugin in plugins {
            workspace.add_plugin(plugin);
        }
        workspace
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn plugin_dir(&self) -> PathBuf {
        self.path().join("plugins")
    }

    pub fn add_plugin(&self, plugin: &Path) {
        let name = plugin.file_name().expect("plugin file name");
        std::fs::copy(plugin, self.plugin_dir().join(name)).expect("copy plugin");
    }

    /// Writes `pipeline.yaml` with an `agent` section pointing at this workspace
    /// (plugins, cache) followed by `rest`.
    pub fn write_pipeline(&self, agent_extra: &str, rest: &str) -> PathBuf {
        let text = format!("agent:\n  plugin_dir: plugins\n  cache_dir: cache\n{agent_extra}{rest}",);
        let path = self.path().join("pipeline.yaml");
        std::fs::write(&path, text).expect("write pipeline");
        path
    }

    /// An agent built from a pipeline of this workspace: `agent_extra` in its `agent`
    /// section and one source (see [`stdout_source`]).
    pub fn polling_agent(&self, agent_extra: &str, source_keys: &str) -> Agent {
        let path = self.write_pipeline(agent_extra, &stdout_source(source_keys));
        Agent::build(config::load(&path).expect("pipeline")).expect("agent")
    }
}

/// The `sources` and `sinks` of a pipeline with one source polling every 60 s into
/// a `stdout://` sink; `source_keys` says what it polls (`meters: ['*']`, and maybe
/// `discovery: [...]` on a line of its own).
pub fn stdout_source(source_keys: &str) -> String {
    format!(
        "sources:\n  - name: polled\n    interval: 60\n    {source_keys}\n    sinks: [out]\nsinks:\n  - name: out\n    publishers: ['stdout://']\n"
    )
}

/// The `sources` and `sinks` of a pipeline with one source of every meter into one
/// sink `out` with these `transformers` (YAML entries, indented under the sink) and a
/// `stdout://` publisher.
pub fn through_transformers(transformers: &str) -> String {
    format!(
        "sources:\n  - name: s\n    meters: ['*']\n    sinks: [out]\nsinks:\n  - name: out\n    transformers:\n{transformers}    publishers: ['stdout://']\n"
    )
}

/// The `sources` and `sinks` of a pipeline polling `cpu` every second into two files:
/// `raw` as polled, `held` through these `transformers` (YAML entries, as above).
pub fn cpu_raw_and_through(raw: &Path, held: &Path, transformers: &str) -> String {
    format!(
        "sources:\n  - name: compute\n    interval: 1\n    meters: [cpu]\n    sinks: [raw, held]\nsinks:\n  - name: raw\n    publishers: ['file://{}']\n  - name: held\n    transformers:\n{transformers}    publishers: ['file://{}']\n",
        raw.display(),
        held.display()
    )
}

/// `agent.plugins` granting the hypervisor to each named plugin.
pub fn grants(names: &[&str]) -> String {
    let mut text = String::from("  plugins:\n");
    for name in names {
        text.push_str(&format!("    {name}:\n      grants: [hypervisor]\n"));
    }
    text
}

/// A batch of `count` samples over two meters and two resources, with metadata of
/// every shape a signature must survive: nested objects, lists, floats, nulls.
pub fn batch(count: usize, first_volume: f64) -> Batch {
    let registry = Arc::new(Registry::new());
    let cpu = registry.intern_meter(Meter { name: "cpu".into(), kind: MeterType::Cumulative, unit: "ns".into() });
    let memory =
        registry.intern_meter(Meter { name: "memory.usage".into(), kind: MeterType::Gauge, unit: "MB".into() });
    let metadata = json!({
        "display_name": "web-1", "flavor": {"name": "m1.small", "ram": 2048, "vcpus": 1},
        "image": null, "ratio": 0.1, "big": 1e16, "tags": ["a", "it's"], "status": "active",
    });
    let resource = |id: &str, user: Option<&str>| {
        registry.intern_resource(Resource {
            owner: Owner::of(user, Some("project-1")),
            metadata: Metadata::from_map(metadata.as_object().unwrap()),
            ..Resource::bare(id)
        })
    };
    let (a, b) = (resource("vm-a", Some("user-1")), resource("vm-b", None));
    let samples = (0..count)
        .map(|i| Sample {
            meter: if i % 2 == 0 { cpu } else { memory },
            resource: if i % 3 == 0 { a } else { b },
            volume: first_volume + i as f64,
            timestamp: 1_790_000_000_000_000_000 + i as i64,
        })
        .collect();
    Batch::new(samples, registry, Arc::from("openstack"))
}

/// One plain HTTP/1.1 request (`Connection: close`); the status code and the body.
pub fn http(address: &str, method: &str, path: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    http_with(address, method, path, &[], body)
}

/// The same, with more headers (`("Authorization", "Basic ...")`).
pub fn http_with(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n")?;
    for (name, value) in headers {
        write!(stream, "{name}: {value}\r\n")?;
    }
    write!(stream, "Content-Length: {}\r\n\r\n", body.len())?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(response.len());
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut body = response[(split + 4).min(response.len())..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Ok((status, body))
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..line_end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        out.extend_from_slice(&data[start..(start + size).min(data.len())]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    out
}

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

/// One HTTP/1.1 request as a test's stub server reads it.
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names in lower case, with their values.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The value of a header (its name in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Reads the next request of a connection (`None` when the client closed it).
pub fn read_request(reader: &mut impl std::io::BufRead) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let length = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request { method, path, headers, body })
}

/// How long a test waits for something the agent does before it fails. A safety net
/// only: every wait is for a signal (a log line, a file, a port), and a slow, loaded
/// machine takes seconds, never this.
pub const SAFETY_NET: std::time::Duration = std::time::Duration::from_secs(300);

/// Polls `done` every 50 ms until it holds; fails after [`SAFETY_NET`], saying what was
/// awaited and, from `context`, what was seen.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool, context: impl Fn() -> String) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < SAFETY_NET, "waited {SAFETY_NET:?} for {what}; {}", context());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Parses JSON lines, naming a line that is not JSON.
pub fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))).collect()
}

/// A `pollen run` in a workspace, publishing to `out`, its stderr read as it comes (an
/// undrained pipe would block the agent once full) so that tests can wait on its log.
pub struct Running {
    child: std::process::Child,
    log: Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
    /// The file its sink writes.
    pub out: PathBuf,
}

impl Running {
    /// Starts `pollen run --config pipeline.yaml` with `extra` arguments, at log level
    /// info (its `cycle done` and reload lines are what tests wait on).
    pub fn start(workspace: &Workspace, extra: &[&str], out: PathBuf) -> Self {
        let mut command = pollen_command();
        command.args(["run", "--config", "pipeline.yaml", "--log", "info"]).args(extra).current_dir(workspace.path());
        Self::spawn(command, out)
    }

    /// Runs `command` (a `pollen run`), reading its stderr.
    pub fn spawn(mut command: std::process::Command, out: PathBuf) -> Self {
        use std::io::BufRead;
        let mut child = command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("pollen run starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(std::sync::Mutex::new(String::new()));
        let written = log.clone();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = written.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Self { child, log, reader: Some(reader), out }
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// How many of its log lines so far contain `needle`.
    pub fn logged(&self, needle: &str) -> usize {
        self.log.lock().unwrap().lines().filter(|line| line.contains(needle)).count()
    }

    /// The samples its sink wrote so far.
    pub fn samples(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.out).map(|text| json_lines(&text)).unwrap_or_default()
    }

    /// How many samples of meter `name` its sink wrote so far.
    pub fn count(&self, name: &str) -> usize {
        self.samples().iter().filter(|s| s["name"] == name).count()
    }

    /// Waits until `done` holds for the samples written so far.
    pub fn wait_for(&mut self, what: &str, done: impl Fn(&[serde_json::Value]) -> bool) {
        self.wait(what, |agent| done(&agent.samples()));
    }

    /// Waits until at least `count` of its log lines contain `needle`.
    pub fn wait_for_log(&mut self, needle: &str, count: usize) {
        self.wait(&format!("{count} log lines with `{needle}`"), |agent| agent.logged(needle) >= count);
    }

    /// Waits until `done` holds; fails early if the agent exits.
    pub fn wait(&mut self, what: &str, mut done: impl FnMut(&Self) -> bool) {
        let (mut exited, log) = (None, self.log.clone());
        wait_until(
            what,
            || {
                if done(self) {
                    return true;
                }
                exited = self.child.try_wait().expect("the agent's status");
                assert!(exited.is_none(), "pollen run exited ({exited:?}) before {what}; its log:\n{}", self.log());
                false
            },
            || format!("its log:\n{}", log.lock().unwrap()),
        );
    }

    /// Sends it a signal (`TERM`, `HUP`).
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// SIGKILL, as a crash: no chance to finish anything. Returns its whole log.
    pub fn kill(mut self) -> String {
        self.signal("KILL");
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            reader.join().expect("the log reader");
        }
        self.log()
    }

    /// SIGTERM, then the exit status must be 0; returns its whole log.
    pub fn stop(mut self) -> String {
        self.signal("TERM");
        let status = self.child.wait().expect("pollen run exits");
        if let Some(reader) = self.reader.take() {
            reader.join().expect("the log reader");
        }
        let log = self.log();
        assert!(status.success(), "exit {status:?}: {log}");
        log
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A failed test never leaves an agent behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `pollen ARGS` in `dir` to its end; its exit code, stdout, stderr, and its peak
/// resident memory in bytes: its own, as GNU time reads it (`/usr/bin/time`, which
/// `make setup` installs). The test's own `wait4` would not do: a child's peak counts
/// the parent's memory it was forked from.
pub fn pollen_measured(args: &[&str], dir: &Path) -> (Option<i32>, String, String, u64) {
    let peak = dir.join("measured.peak");
    let output = std::process::Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&peak)
        .arg(env!("CARGO_BIN_EXE_pollen"))
        .args(args)
        .env("XDG_CACHE_HOME", env!("CARGO_TARGET_TMPDIR"))
        .current_dir(dir)
        .output()
        .expect("/usr/bin/time runs (`make setup` installs it)");
    let text = std::fs::read_to_string(&peak).expect("GNU time wrote the peak");
    let kib: u64 = text.lines().last().and_then(|l| l.trim().parse().ok()).unwrap_or_else(|| panic!("peak: {text}"));
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code(), stdout.into_owned(), stderr.into_owned(), kib * 1024)
}

/// Runs `pollen run` on the Nova test node (instances with their metadata) for two
/// cycles, its samples to `sent.jsonl` and to `publishers` (YAML list items after a
/// `'file://…', `), signed with `secret`; returns what it sent.
pub fn agent_sends_two_cycles(publishers: &str, secret: &str) -> Vec<serde_json::Value> {
    let workspace =
        Workspace::new(&[builtin("local_instances"), builtin("cpu"), builtin("memory"), builtin("instance")]);
    let sent = workspace.path().join("sent.jsonl");
    let rest = format!(
        "sources:\n  - name: compute\n    interval: 1\n    meters: ['*']\n    sinks: [out]\nsinks:\n  - name: out\n    publishers: ['file://{}', {publishers}]\n",
        sent.display()
    );
    let agent_lines = format!(
        "  libvirt_uri: test://{}\n  telemetry_secret: {secret}\n{}",
        repo().join("tests/data/nova-node.xml").display(),
        grants(&["local_instances", "cpu", "memory", "instance"])
    );
    workspace.write_pipeline(&agent_lines, &rest);
    let mut agent = Running::start(&workspace, &[], sent.clone());
    agent.wait_for_log("cycle done", 2);
    let log = agent.stop();
    let sent = json_lines(&std::fs::read_to_string(&sent).unwrap_or_default());
    assert!(sent.len() > 10, "{log}");
    sent
}

/// A Redis of the test's own, on a free port.
pub struct OwnRedis {
    child: std::process::Child,
}

impl OwnRedis {
    /// Starts it on `port` and waits until it listens.
    pub fn start(port: u16) -> Self {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts");
        wait_until("redis-server listens", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(), String::new);
        Self { child }
    }

    /// Kills it.
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
