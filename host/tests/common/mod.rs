//! Helpers shared by the integration tests: where the built plugins are, temporary
//! plugin directories and pipeline files.
#![allow(dead_code)]

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

/// A temporary folder holding a plugin directory with copies of `plugins`.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new(plugins: &[PathBuf]) -> Self {
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

    /// Makes the workspace's cache of compiled plugins one shared by every test (under
    /// Cargo's target folder): each plugin is compiled once, not once per test.
    pub fn share_compiled_cache(&self) {
        let shared = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compiled-plugins");
        std::fs::create_dir_all(&shared).expect("shared cache folder");
        std::os::unix::fs::symlink(&shared, self.path().join("cache")).expect("link the shared cache");
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
    Batch { samples, registry, source: Arc::from("openstack") }
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
