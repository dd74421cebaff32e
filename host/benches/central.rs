//! `cargo bench -p pollen-host --bench central`: a central cycle against the real
//! Glance of `scripts/openstack.sh` holding 10,000 images (`scripts/openstack.sh
//! images 10000` writes them into its database once; the API serves them in pages of
//! 1000). `pollen run` itself (this build's binary) polls `image.size` through the
//! `images` discoverer every `POLLEN_CENTRAL_INTERVAL` seconds (default 15) into
//! `file://`: CPU seconds (`/proc/<pid>/stat`), wall time (its `cycle done` lines) per
//! cycle over three cycles after a warm-up, and peak RSS (`VmHWM`). Then the same
//! cycle with a second pollster whose endpoint accepts and never answers
//! (`agent.http.request_timeout` 5 s): what it adds to the cycle's wall time. Then
//! the same images through a dynamic pollster (`dynamic.image.size`, the `dynamic`
//! plugin reading `v2/images?limit=1000`: 10 pages of 1000, as Ceilometer's dynamic
//! pollsters would; issue 17's target is 0.5 s of agent CPU per cycle).
//!
//! Needs `make plugins test-plugins` and the services (`make setup`).

mod shared;

use std::path::{Path, PathBuf};
use std::time::Duration;

const IMAGES: usize = 10_000;
/// The hung endpoint's bound.
const REQUEST_TIMEOUT: f64 = 5.0;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn interval() -> u64 {
    std::env::var("POLLEN_CENTRAL_INTERVAL").ok().and_then(|v| v.parse().ok()).unwrap_or(15)
}

/// A pipeline polling `image.size` into a file; with `hung`, also the `http_probe`
/// test pollster (on the test driver's domain) against the silent endpoint `hung`, in
/// a source of its own.
fn pipeline(dir: &Path, hung: Option<u16>) -> PathBuf {
    let name = if hung.is_some() { "hung" } else { "alone" };
    let plugins = dir.join(format!("plugins-{name}"));
    std::fs::create_dir_all(&plugins).unwrap();
    let mut files = vec![
        repo().join("plugins/dist-central/glance_images.wasm"),
        repo().join("plugins/dist-central/image_size.wasm"),
    ];
    let (mut grants, mut sources) = (String::new(), String::new());
    if let Some(port) = hung {
        files.push(repo().join("plugins/dist/local_instances.wasm"));
        files.push(repo().join("tests/plugins/dist/http_probe.wasm"));
        grants = format!(
            "    local_instances:\n      grants: [hypervisor]\n    http_probe:\n      grants: [http]\n      allowed_hosts: [\"http://127.0.0.1:{port}\"]\n      params: {{url: \"http://127.0.0.1:{port}/\"}}\n"
        );
        sources = format!(
            "  - name: probe\n    interval: {}\n    meters: [test.http.status]\n    sinks: [out]\n",
            interval()
        );
    }
    for file in files {
        std::fs::copy(&file, plugins.join(file.file_name().unwrap())).unwrap();
    }
    let text = format!(
        "agent:\n  plugin_dir: {plugins}\n  cache_dir: {cache}\n  http:\n    request_timeout: {REQUEST_TIMEOUT}\n  openstack:\n    auth_url: http://127.0.0.1:5000/v3\n    username: ceilometer\n    password: pollen-ceilometer\n    user_domain_name: Default\n    project_name: service\n    project_domain_name: Default\n  plugins:\n    glance_images:\n      grants: [openstack]\n{grants}sources:\n  - name: central\n    interval: {interval}\n    meters: [image.size]\n    sinks: [out]\n{sources}sinks:\n  - name: out\n    publishers: ['file://{out}']\n",
        plugins = plugins.display(),
        cache = dir.join("cache").display(),
        interval = interval(),
        out = dir.join(format!("out-{name}.jsonl")).display(),
    );
    let path = dir.join(format!("central-{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// A pipeline polling `dynamic.image.size`, a dynamic pollster over Glance's images
/// with Ceilometer's image metadata keys, into a file.
fn dynamic_pipeline(dir: &Path) -> PathBuf {
    let plugins = dir.join("plugins-dynamic");
    let definitions = dir.join("pollsters.d");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::create_dir_all(&definitions).unwrap();
    for name in ["dynamic", "keystone_endpoints"] {
        let file = repo().join(format!("plugins/dist-central/{name}.wasm"));
        std::fs::copy(&file, plugins.join(file.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        definitions.join("images.yaml"),
        "- name: dynamic.image.size\n  sample_type: gauge\n  unit: B\n  value_attribute: size\n  skip_sample_values: [null]\n  endpoint_type: image\n  url_path: v2/images?limit=1000\n  response_entries_key: images\n  next_sample_url_attribute: next\n  project_id_attribute: owner\n  metadata_fields: [name, container_format, disk_format, min_disk, min_ram, size, status, protected, visibility]\n",
    )
    .unwrap();
    let text = format!(
        "agent:\n  plugin_dir: {plugins}\n  cache_dir: {cache}\n  pollsters_definitions_dirs: [{definitions}]\n  polling_namespaces: [central]\n  openstack:\n    auth_url: http://127.0.0.1:5000/v3\n    username: ceilometer\n    password: pollen-ceilometer\n    user_domain_name: Default\n    project_name: service\n    project_domain_name: Default\n  plugins:\n    dynamic:\n      grants: [openstack]\n    keystone_endpoints:\n      grants: [openstack]\nsources:\n  - name: central\n    interval: {interval}\n    meters: [dynamic.image.size]\n    sinks: [out]\nsinks:\n  - name: out\n    publishers: ['file://{out}']\n",
        plugins = plugins.display(),
        cache = dir.join("cache").display(),
        definitions = definitions.display(),
        interval = interval(),
        out = dir.join("out-dynamic.jsonl").display(),
    );
    let path = dir.join("central-dynamic.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// An endpoint that accepts connections and never answers.
fn silent_endpoint() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    port
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if std::net::TcpStream::connect("127.0.0.1:9292").is_err() {
        println!("central: skipped (no Glance on 127.0.0.1:9292: `scripts/openstack.sh start`)");
        return;
    }
    let seeded = std::process::Command::new(repo().join("scripts/openstack.sh"))
        .args(["images", &IMAGES.to_string()])
        .status()
        .unwrap();
    assert!(seeded.success(), "scripts/openstack.sh images failed");
    let dir = tempfile::tempdir().unwrap();
    let patience = Duration::from_secs(interval() * 5 + 600);
    let alone = shared::run_pollen(&pipeline(dir.path(), None), patience);
    let with_hung = shared::run_pollen(&pipeline(dir.path(), Some(silent_endpoint())), patience);
    let dynamic = shared::run_pollen(&dynamic_pipeline(dir.path()), patience);
    for (label, figures) in
        [("images", &alone), ("images + a hung endpoint", &with_hung), ("images, a dynamic pollster", &dynamic)]
    {
        match figures {
            Some(f) => println!(
                "central {label:<28} {:>6} samples/cycle  {:>6.3} CPU s/cycle  {:>6.2} s wall/cycle  peak RSS {:>6.1} MiB",
                f.samples, f.cpu, f.wall, f.peak
            ),
            None => println!("central {label:<28} failed (see the log above)"),
        }
    }
    if let (Some(alone), Some(hung)) = (alone, with_hung) {
        println!(
            "central the hung endpoint added {:.2} s to the cycle's wall time (its timeout: {REQUEST_TIMEOUT} s)",
            hung.wall - alone.wall
        );
    }
}
