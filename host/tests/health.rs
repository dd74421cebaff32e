//! What a running agent says of itself (issue 18): Ceilometer's heartbeat socket in
//! its own format, `pollen status`, and `/healthz` and `/readyz`, each telling the
//! truth with a failing publisher, a failing pollster and a lost Redis, and when all
//! is well.

mod common;

use common::*;
use serde_json::Value;

/// Starts an agent of `workspace` polling `meters` every second into a file and to
/// `extra` publishers, with its heartbeat socket in the workspace and a Prometheus
/// endpoint on a port of its own; `agent_extra` goes in its `agent` section.
fn start(workspace: &Workspace, agent_extra: &str, meters: &str, extra: &str) -> (Running, std::path::PathBuf, u16) {
    let port = free_port();
    let out = workspace.path().join("samples.jsonl");
    let agent = format!(
        "  heartbeat_socket_dir: {}\n  prometheus_listen: [\"127.0.0.1:{port}\"]\n{agent_extra}",
        workspace.path().display()
    );
    let rest = format!(
        "sources:\n  - name: s\n    interval: 1\n    meters: {meters}\n    sinks: [out]\nsinks:\n  - name: out\n    publishers: ['file://{}'{extra}]\n",
        out.display()
    );
    workspace.write_pipeline(&agent, &rest);
    let agent = Running::start(workspace, &[], out);
    (agent, workspace.path().join("ceilometer-compute.socket"), port)
}

/// What the socket answers a client that sends nothing (Ceilometer's).
fn heartbeat(socket: &std::path::Path) -> String {
    use std::io::Read;
    let mut stream = std::os::unix::net::UnixStream::connect(socket).expect("the heartbeat socket");
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

/// `pollen status --json`: its exit code and the status.
fn read_status(socket: &std::path::Path) -> (Option<i32>, Value) {
    let output = pollen_command().args(["status", "--json", "--socket"]).arg(socket).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let status = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text} {}", String::from_utf8_lossy(&output.stderr)));
    (output.status.code(), status)
}

fn get(port: u16, path: &str) -> (u16, String) {
    let (code, body) = http(&format!("127.0.0.1:{port}"), "GET", path, b"").expect("the endpoint answers");
    (code, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn a_failing_publisher_and_a_failing_pollster_are_told_and_the_agent_is_not_ready() {
    let workspace = Workspace::new(&[builtin("local_instances"), builtin("cpu"), hostile("trap")]);
    // A broker that is not there: the notifier holds its samples to send again.
    let closed = free_port();
    let (mut agent, socket, port) = start(
        &workspace,
        &grants(&["local_instances", "cpu", "trap"]),
        "[cpu, test.trap]",
        &format!(", 'notifier://127.0.0.1:{closed}/?topic=health'"),
    );
    agent.wait_for_log("cycle done", 2);

    // Ceilometer 27.0.0's format (ceilometer/polling/manager.py): the socket
    // `ceilometer-<sorted namespaces joined by ->.socket` (line 472), lines
    // `f"{k} {v}"` joined by newlines (line 509), `v` the pollster's
    // `timeutils.utcnow().isoformat()` when its polling started (line 362).
    let lines = heartbeat(&socket);
    let mut names = Vec::new();
    for line in lines.lines() {
        let (name, at) = line.split_once(' ').unwrap_or_else(|| panic!("{lines:?}"));
        assert!(chrono::NaiveDateTime::parse_from_str(at, "%Y-%m-%dT%H:%M:%S%.6f").is_ok(), "{line}");
        names.push(name);
    }
    assert_eq!(names, ["cpu", "test.trap"], "{lines}");

    let (code, status) = read_status(&socket);
    assert_eq!(code, Some(1), "not ready: {status}");
    assert_eq!(status["ready"], false);
    let tasks = status["tasks"].as_object().unwrap_or_else(|| panic!("{status}"));
    assert!(tasks.values().any(|t| t["cycles"].as_u64() >= Some(2)), "cycles from the metrics: {status}");
    assert!(status["pollsters"]["cpu"]["last_success"].is_string(), "{status}");
    assert!(status["pollsters"]["cpu"]["samples_last_cycle"].as_u64() >= Some(1), "{status}");
    let trap = &status["pollsters"]["trap"];
    assert!(trap["last_error"][1].as_str().unwrap_or_default().contains("trapped"), "{status}");
    assert_eq!(trap["samples_last_cycle"], 0);
    let publishers = status["publishers"].as_array().unwrap();
    let notifier = publishers.iter().find(|p| p["url"].as_str().unwrap().starts_with("notifier://")).unwrap();
    assert!(notifier["held"].as_u64() > Some(0), "{status}");
    let file = publishers.iter().find(|p| p["url"].as_str().unwrap().starts_with("file://")).unwrap();
    assert!(file["last_success"].is_string() && file["last_error"].is_null(), "{status}");
    assert!(status["not_ready"][0].as_str().unwrap().contains("cannot reach its peer"), "{status}");

    assert_eq!(get(port, "/healthz"), (200, "ok\n".to_string()));
    let (code, body) = get(port, "/readyz");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains(&format!("notifier://127.0.0.1:{closed}/?topic=health cannot reach its peer")), "{body}");

    // The text form says the same.
    let output = pollen_command().args(["status", "--socket"]).arg(&socket).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("NOT READY") && text.contains("trap:") && text.contains("held"), "{text}");
    agent.stop();
}

#[test]
fn a_healthy_agent_is_ready_and_its_coordination_share_is_told_then_a_lost_redis() {
    if std::net::TcpStream::connect("127.0.0.1:6379").is_err() {
        assert!(std::env::var("CI").is_err(), "CI: Redis is down");
        return;
    }
    // A Redis of its own, stopped during the test.
    let redis_port = free_port();
    let redis = OwnRedis::start(redis_port);

    let workspace = Workspace::new(&[builtin("local_instances"), builtin("cpu")]);
    let coordination = format!(
        "  coordination:\n    backend_url: redis://127.0.0.1:{redis_port}\n    heartbeat: 0.5\n    membership_timeout: 3\n"
    );
    let (mut agent, socket, port) =
        start(&workspace, &format!("{coordination}{}", grants(&["local_instances", "cpu"])), "[cpu]", "");
    agent.wait_for_log("cycle done", 1);
    wait_until("ready", || get(port, "/readyz").0 == 200, || get(port, "/readyz").1);
    let (code, status) = read_status(&socket);
    assert_eq!(code, Some(0), "{status}");
    assert_eq!(status["groups"][0]["group"], "local_instances", "{status}");
    assert_eq!(status["groups"][0]["members"], 1);
    assert_eq!(status["groups"][0]["share"], 1.0);
    assert_eq!(status["coordination_failures"], 0);

    redis.stop();
    agent.wait_for_log("coordination backend unreachable", 1);
    let (_, status) = read_status(&socket);
    assert!(status["coordination_failures"].as_u64() >= Some(1), "{status}");
    // The last membership is kept: still the whole share, still polling.
    assert_eq!(status["groups"][0]["members"], 1, "{status}");
    let cycles = agent.logged("cycle done");
    agent.wait_for_log("cycle done", cycles + 1);
    agent.stop();
}
