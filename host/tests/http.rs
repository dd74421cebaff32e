//! The HTTP capability (issue 16): a plugin reaches only the origins the pipeline
//! grants it, through the standard `wasi:http`, and every request is bounded by the
//! host. Each test runs the `http_probe` test plugin against stub servers it
//! controls, and fails on an agent that lets a request through or past its bound.

mod common;

use common::*;
use pollen_host::pipeline::cycle::run_cycle;
use pollen_host::plugin::{load_file, LoadError, PluginEngine, PluginError};
use pollen_host::registry::Registry;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a bounded wait may take at most on a loaded machine (the bounds under test are
/// far below what the attacks would cost unchecked: for ever).
const LOOSE: Duration = Duration::from_secs(30);

/// What a stub server does with each connection.
#[derive(Clone)]
enum Behaviour {
    /// Answers 200 with this body.
    Body(Vec<u8>),
    /// Answers 302 to this location.
    Redirect(String),
    /// Reads the request and never answers.
    Silent,
    /// Answers a head announcing 100 bytes, then sends one byte a second.
    Trickle,
    /// Answers a chunked body of this many bytes, as fast as it can.
    Chunked(usize),
}

/// A stub HTTP server on 127.0.0.1 that counts the connections it accepts.
struct Stub {
    port: u16,
    connections: Arc<AtomicUsize>,
}

impl Stub {
    fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                counted.fetch_add(1, Ordering::SeqCst);
                let behaviour = behaviour.clone();
                std::thread::spawn(move || serve(stream, behaviour));
            }
        });
        Self { port, connections }
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn serve(stream: TcpStream, behaviour: Behaviour) {
    let mut reader = std::io::BufReader::new(stream.try_clone().expect("clone"));
    let mut stream = stream;
    if read_request(&mut reader).is_none() {
        return;
    }
    let _ = match behaviour {
        Behaviour::Body(body) => stream
            .write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).as_bytes())
            .and_then(|()| stream.write_all(&body)),
        Behaviour::Redirect(location) => stream
            .write_all(format!("HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\n\r\n").as_bytes()),
        Behaviour::Silent => {
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest);
            Ok(())
        }
        Behaviour::Trickle => {
            let mut result = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n");
            for _ in 0..100 {
                std::thread::sleep(Duration::from_secs(1));
                result = result.and_then(|()| stream.write_all(b"x"));
            }
            result
        }
        Behaviour::Chunked(total) => {
            let chunk = vec![b'y'; 64 * 1024];
            let mut result = stream.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
            let mut sent = 0;
            while sent < total && result.is_ok() {
                result = stream
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .and_then(|()| stream.write_all(&chunk))
                    .and_then(|()| stream.write_all(b"\r\n"));
                sent += chunk.len();
            }
            result.and_then(|()| stream.write_all(b"0\r\n\r\n"))
        }
    };
}

/// A workspace with `local_instances`, `cpu` and `http_probe`, and the agent lines
/// that grant the first two the hypervisor and `http_probe` these settings (YAML
/// lines under `agent.plugins.http_probe`), plus `agent_http` (lines under `agent`).
fn probe(settings: &str, agent_http: &str) -> (Workspace, String) {
    let workspace = Workspace::new(&[builtin("local_instances"), builtin("cpu"), hostile("http_probe")]);
    let agent = format!("{agent_http}{}    http_probe:\n{settings}", grants(&["local_instances", "cpu"]));
    (workspace, agent)
}

/// Settings granting `http` to `allowed` and fetching `url`.
fn fetching(url: &str, allowed: &[String]) -> String {
    let allowed: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
    format!("      grants: [http]\n      allowed_hosts: [{}]\n      params: {{url: \"{url}\"}}\n", allowed.join(", "))
}

/// The volumes of one meter in a cycle's samples.
fn volumes(agent: &pollen_host::pipeline::Agent, samples: &[pollen_host::sample::Sample], meter: &str) -> Vec<f64> {
    samples
        .iter()
        .filter(|s| agent.registry.meter(s.meter).is_some_and(|m| m.name == meter))
        .map(|s| s.volume)
        .collect()
}

/// The probe's one failure of the cycle, as text.
fn probe_failure(failures: &[PluginError]) -> String {
    match failures {
        [failure] => {
            assert!(failure.to_string().contains("http_probe"), "{failure}");
            failure.to_string()
        }
        other => panic!("expected the probe's failure alone, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_granted_request_reaches_its_origin_and_its_answer_becomes_samples() {
    let stub = Stub::start(Behaviour::Body(b"{\"images\": []}".to_vec()));
    let (workspace, agent_extra) = probe(&fetching(&format!("{}/v2/images", stub.origin()), &[stub.origin()]), "");
    let agent = workspace.polling_agent(&agent_extra, "meters: ['*']");
    let output = run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources).await;
    assert!(output.failures.is_empty(), "{:?}", output.failures);
    assert_eq!(volumes(&agent, &output.samples[0], "test.http.status"), [200.0]);
    assert_eq!(volumes(&agent, &output.samples[0], "test.http.bytes"), [14.0]);
    assert_eq!(stub.connections(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_outside_the_grant_is_refused_and_never_sent() {
    let (granted, other) = (Stub::start(Behaviour::Body(b"ok".to_vec())), Stub::start(Behaviour::Body(b"ok".to_vec())));
    let (workspace, agent_extra) = probe(&fetching(&format!("{}/secret", other.origin()), &[granted.origin()]), "");
    let agent = workspace.polling_agent(&agent_extra, "meters: ['*']");
    let output = run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources).await;
    let failure = probe_failure(&output.failures);
    let origin = other.origin();
    assert!(
        failure.contains(&format!("request to {origin} refused")) && failure.contains("allowed_hosts"),
        "{failure}"
    );
    assert_eq!(other.connections(), 0, "the ungranted origin was never contacted");
    assert!(!volumes(&agent, &output.samples[0], "cpu").is_empty(), "the other pollsters' samples come out");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_to_an_ungranted_origin_is_refused() {
    let elsewhere = Stub::start(Behaviour::Body(b"ok".to_vec()));
    let redirecting = Stub::start(Behaviour::Redirect(format!("{}/stolen", elsewhere.origin())));
    let (workspace, agent_extra) = probe(&fetching(&format!("{}/", redirecting.origin()), &[redirecting.origin()]), "");
    let agent = workspace.polling_agent(&agent_extra, "meters: ['*']");
    let output = run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources).await;
    let failure = probe_failure(&output.failures);
    assert!(failure.contains(&format!("request to {} refused", elsewhere.origin())), "{failure}");
    assert_eq!(redirecting.connections(), 1);
    assert_eq!(elsewhere.connections(), 0, "the redirect's target was never contacted");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_over_the_size_bound_is_cut_declared_or_not() {
    let declared = Stub::start(Behaviour::Body(vec![b'z'; 3 << 20]));
    let chunked = Stub::start(Behaviour::Chunked(64 << 20));
    for stub in [&declared, &chunked] {
        let (workspace, agent_extra) =
            probe(&fetching(&format!("{}/", stub.origin()), &[stub.origin()]), "  http:\n    max_response_mib: 1\n");
        let agent = workspace.polling_agent(&agent_extra, "meters: ['*']");
        let output = run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources).await;
        let failure = probe_failure(&output.failures);
        assert!(failure.contains("response body over the host's limit"), "{failure}");
        assert!(!volumes(&agent, &output.samples[0], "cpu").is_empty(), "the other pollsters' samples come out");
    }
}

/// A server that never answers and one that trickles a byte a second are both cut at
/// the request's deadline; the cycle's other samples come out, and the wait does not
/// count against the plugin's own `call_timeout` (far below the deadline here).
#[tokio::test(flavor = "multi_thread")]
async fn a_silent_or_trickling_server_is_cut_at_the_request_deadline() {
    for behaviour in [Behaviour::Silent, Behaviour::Trickle] {
        let stub = Stub::start(behaviour);
        let settings =
            format!("{}      call_timeout: 0.3\n", fetching(&format!("{}/", stub.origin()), &[stub.origin()]));
        let (workspace, agent_extra) = probe(&settings, "  http:\n    request_timeout: 2\n");
        let agent = workspace.polling_agent(&agent_extra, "meters: ['*']");
        let started = Instant::now();
        let output = run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources).await;
        let took = started.elapsed();
        let failure = probe_failure(&output.failures);
        assert!(failure.contains("timed out"), "a timeout, not the plugin's own deadline: {failure}");
        assert!(took >= Duration::from_secs(2) && took < LOOSE, "the cycle took {took:?}");
        assert!(!volumes(&agent, &output.samples[0], "cpu").is_empty(), "the other pollsters' samples come out");
    }
}

/// A request never outlives the plugin call's wall deadline, whatever
/// `request_timeout` says.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_ends_by_the_call_s_wall_deadline() {
    let stub = Stub::start(Behaviour::Silent);
    let settings = format!(
        "{}      call_timeout: 0.5\n      call_wall_timeout: 1.5\n",
        fetching(&format!("{}/", stub.origin()), &[stub.origin()])
    );
    let (workspace, agent_extra) = probe(&settings, "  http:\n    request_timeout: 600\n");
    let agent = workspace.polling_agent(&agent_extra, "meters: ['*']");
    let started = Instant::now();
    let output = run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources).await;
    let took = started.elapsed();
    probe_failure(&output.failures);
    assert!(took >= Duration::from_millis(1500) && took < LOOSE, "the cycle took {took:?}");
}

/// A plugin has at most `max_concurrent_requests` in flight: the others are refused
/// at once (not queued behind a hung server).
#[tokio::test(flavor = "multi_thread")]
async fn requests_in_flight_are_bounded_per_plugin() {
    let stub = Stub::start(Behaviour::Silent);
    let settings = format!(
        "      grants: [http]\n      allowed_hosts: [\"{}\"]\n      params: {{url: \"{}/\", burst: 10}}\n",
        stub.origin(),
        stub.origin()
    );
    let (workspace, agent_extra) =
        probe(&settings, "  http:\n    request_timeout: 1\n    max_concurrent_requests: 3\n");
    let agent = workspace.polling_agent(&agent_extra, "meters: ['*']");
    let output = run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources).await;
    assert!(output.failures.is_empty(), "{:?}", output.failures);
    assert_eq!(volumes(&agent, &output.samples[0], "test.http.refused"), [7.0]);
    wait_until(
        "the three admitted requests to connect",
        || stub.connections() == 3,
        || format!("{} connections", stub.connections()),
    );
}

/// The loader refuses a plugin that imports `wasi:http` without the grant, and says
/// which line grants it.
#[test]
fn a_plugin_importing_wasi_http_without_the_grant_is_refused_at_load() {
    let workspace = Workspace::new(&[]);
    let path = workspace.write_pipeline("", "");
    let agent = pollen_host::config::load(&path).expect("pipeline").agent;
    let engine = PluginEngine::new(agent.cache_dir()).expect("engine");
    let error = load_file(&engine, &hostile("http_probe"), &agent, &Arc::new(Registry::new())).err().expect("refused");
    assert!(matches!(error, LoadError::NotGranted { grant: "http", .. }), "{error}");
    assert!(error.to_string().contains("grants: [http]"), "{error}");
}

/// `validate` names each wrong HTTP setting.
#[test]
fn validate_names_wrong_http_settings() {
    let workspace = Workspace::new(&[]);
    workspace.write_pipeline(
        "  http:\n    request_timeout: 0\n    ca_file: /nonexistent/ca.pem\n  plugins:\n    a:\n      grants: [http]\n    b:\n      allowed_hosts: [\"https://x\"]\n    c:\n      grants: [http]\n      allowed_hosts: [\"https://x/path\"]\n",
        &stdout_source("meters: ['*']"),
    );
    let output = pollen_command().args(["validate"]).current_dir(workspace.path()).output().expect("pollen runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    for expected in [
        "agent.http.request_timeout",
        "agent.http.ca_file",
        "agent.plugins.a.allowed_hosts",
        "agent.plugins.b.allowed_hosts",
        "agent.plugins.c.allowed_hosts[0]",
    ] {
        assert!(stderr.contains(expected), "{expected} missing: {stderr}");
    }
}

/// Connections to the stub are plain TCP: make sure nothing else listens where a test
/// expects silence (a sanity check of the stub itself).
#[test]
fn the_stub_counts_connections() {
    let stub = Stub::start(Behaviour::Body(b"x".to_vec()));
    let (status, body) = http(&format!("127.0.0.1:{}", stub.port), "GET", "/", b"").expect("stub answers");
    assert_eq!((status, body.as_slice()), (200, b"x".as_slice()));
    assert_eq!(stub.connections(), 1);
}

/// An HTTPS stub on `localhost` with a certificate of its own making; returns its port
/// and the certificate (PEM) to trust it with.
async fn https_stub(body: &'static [u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocols")
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(certified.cert.der().to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der())),
    )
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(client).await else { return };
                let mut head = vec![0; 4096];
                let _ = tls.read(&mut head).await;
                let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.write_all(body).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, certified.cert.pem())
}

/// HTTPS goes through the host's TLS: a server is trusted through `agent.http.ca_file`
/// (or with `insecure`, which the log says), and refused otherwise.
#[tokio::test(flavor = "multi_thread")]
async fn https_is_verified_against_the_ca_file() {
    let (port, certificate) = https_stub(b"secure").await;
    let origin = format!("https://localhost:{port}");
    let settings = fetching(&format!("{origin}/"), std::slice::from_ref(&origin));
    let run = |agent_http: &str| {
        let (workspace, agent_extra) = probe(&settings, agent_http);
        std::fs::write(workspace.path().join("ca.pem"), &certificate).expect("write the CA");
        let agent = workspace.polling_agent(&agent_extra, "meters: ['*']");
        (workspace, agent)
    };

    let (_trusting, agent) = run("  http:\n    ca_file: ca.pem\n");
    let output = run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources).await;
    assert!(output.failures.is_empty(), "trusted through the CA file: {:?}", output.failures);
    assert_eq!(volumes(&agent, &output.samples[0], "test.http.bytes"), [6.0]);

    let (_default, agent) = run("");
    let output = run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources).await;
    let failure = probe_failure(&output.failures);
    assert!(failure.contains(&format!("request to {origin} failed")), "untrusted without the CA file: {failure}");

    let (_insecure, agent) = run("  http:\n    insecure: true\n");
    let output = run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources).await;
    assert!(output.failures.is_empty(), "insecure accepts any certificate: {:?}", output.failures);
}

/// A hung API costs its own pollster's samples only: the other pollsters' samples
/// (here a pollster that needs no discoverer, and the compute ones) are delivered long
/// before the hung request's timeout ends the cycle.
#[tokio::test(flavor = "multi_thread")]
async fn a_hung_endpoint_delays_no_other_pollster_s_samples() {
    let stub = Stub::start(Behaviour::Silent);
    let timeout = 10.0;
    let (workspace, agent_extra) = probe(
        &fetching(&format!("{}/", stub.origin()), &[stub.origin()]),
        &format!("  http:\n    request_timeout: {timeout}\n"),
    );
    workspace.add_plugin(&hostile("namer"));
    let agent = workspace.polling_agent(&agent_extra, "meters: ['*']");
    let started = Instant::now();
    let delivered = std::sync::Mutex::new(Vec::new());
    let deliver = |samples: Vec<Vec<pollen_host::sample::Sample>>| {
        let names: Vec<String> =
            samples[0].iter().map(|s| agent.registry.meter(s.meter).unwrap().name.clone()).collect();
        delivered.lock().unwrap().push((started.elapsed(), names));
        std::future::ready(())
    };
    let output = pollen_host::pipeline::cycle::stream_cycle(
        &agent.plugins,
        &agent.hypervisor,
        &agent.registry,
        &agent.pipeline.sources,
        deliver,
    )
    .await;
    let took = started.elapsed();
    probe_failure(&output.failures);
    assert!(took >= Duration::from_secs_f64(timeout), "the hung request ran to its timeout: {took:?}");
    let delivered = delivered.into_inner().unwrap();
    for meter in ["test.named", "cpu"] {
        let at = delivered.iter().find(|(_, names)| names.iter().any(|n| n == meter)).map(|(at, _)| *at);
        let at = at.unwrap_or_else(|| panic!("{meter} samples were delivered: {delivered:?}"));
        assert!(
            at + Duration::from_secs(5) < took,
            "{meter} samples waited for the hung request: at {at:?} of {took:?}"
        );
    }
}

/// A response of half a gigabyte, streamed, is cut at the host's limit: the agent
/// neither reads nor holds it (`pollen poll --once`, its peak RSS read by GNU time).
#[test]
fn an_endless_body_costs_the_agent_no_memory() {
    let stub = Stub::start(Behaviour::Chunked(512 << 20));
    let (workspace, agent_extra) =
        probe(&fetching(&format!("{}/", stub.origin()), &[stub.origin()]), "  http:\n    max_response_mib: 1\n");
    workspace.write_pipeline(&agent_extra, &stdout_source("meters: ['*']"));
    let (code, stdout, stderr, peak) = pollen_measured(&["poll", "--once"], workspace.path());
    assert_eq!(code, Some(1), "the probe failed: {stderr}");
    assert!(stderr.contains("response body over the host's limit"), "{stderr}");
    assert!(stdout.contains("\"cpu\""), "the other samples are printed");
    assert!(peak < 256 << 20, "peak RSS {} MiB while a 512 MiB body was refused", peak >> 20);
}

/// A Keystone that accepts connections and never answers costs the central plugins
/// their cycle, bounded by `agent.http.request_timeout`; the compute sources are
/// polled as usual. The discoverers that need the catalog share one attempt: one
/// connection to Keystone, one wait.
#[tokio::test(flavor = "multi_thread")]
async fn a_silent_keystone_costs_only_the_central_meters() {
    let keystone = Stub::start(Behaviour::Silent);
    let workspace = Workspace::new(&[
        builtin("local_instances"),
        builtin("cpu"),
        central("glance_images"),
        central("image_size"),
        central("cinder_volumes"),
        central("volume_size"),
    ]);
    let agent_extra = format!(
        "  http:\n    request_timeout: 2\n  openstack:\n    auth_url: {}/v3\n    username: u\n    password: p\n    user_domain_name: Default\n    project_name: service\n    project_domain_name: Default\n{}    glance_images:\n      grants: [openstack]\n    cinder_volumes:\n      grants: [openstack]\n",
        keystone.origin(),
        grants(&["local_instances", "cpu"])
    );
    let agent = workspace.polling_agent(&agent_extra, "meters: [cpu, image.size, volume.size]");
    let started = Instant::now();
    let output = run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources).await;
    let took = started.elapsed();
    let mut failed: Vec<&str> = output
        .failures
        .iter()
        .map(|failure| match failure {
            PluginError::NoCatalog { plugin, keystone } => {
                assert!(keystone.contains("cannot be reached"), "{failure}");
                plugin.as_str()
            }
            other => panic!("expected the discoverers' failures for want of a token: {other}"),
        })
        .collect();
    failed.sort();
    assert_eq!(failed, ["cinder_volumes", "glance_images"]);
    assert!(took >= Duration::from_secs(2) && took < LOOSE, "bounded by the request timeout: {took:?}");
    assert!(!volumes(&agent, &output.samples[0], "cpu").is_empty(), "the compute meters are polled as usual");
    assert_eq!(keystone.connections(), 1, "the discoverers waited for one attempt");
}
