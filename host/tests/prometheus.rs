//! Prometheus: the agent's `/metrics` endpoint, read with a Prometheus text parser as
//! resources appear and disappear, and `prometheus://` pushing to the real
//! Pushgateway on 127.0.0.1:9091 (`make setup` starts one).

mod common;

use common::*;
use pollen_host::publish::{PublishContext, PublisherHandle};
use pollen_testkit::NodeSpec;
use prometheus_parse::{Sample as Scraped, Scrape, Value};
use std::collections::BTreeSet;

fn scrape(address: &str, path: &str) -> Scrape {
    let (status, body) = http(address, "GET", path, b"").unwrap_or_else(|e| panic!("GET http://{address}{path}: {e}"));
    assert_eq!(status, 200, "GET {path}: {}", String::from_utf8_lossy(&body));
    let text = String::from_utf8(body).expect("UTF-8 text");
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("the Prometheus text format parses")
}

fn series<'a>(scrape: &'a Scrape, metric: &str) -> Vec<&'a Scraped> {
    scrape.samples.iter().filter(|s| s.metric == metric).collect()
}

fn resources(scrape: &Scrape, metric: &str) -> BTreeSet<String> {
    series(scrape, metric).iter().filter_map(|s| s.labels.get("resource").map(str::to_string)).collect()
}

#[test]
fn the_endpoint_serves_new_resources_series_and_forgets_vanished_ones() {
    let workspace = Workspace::new(&[builtin("local_instances"), builtin("cpu"), builtin("memory")]);
    let (three, two) = (workspace.path().join("node3.xml"), workspace.path().join("node2.xml"));
    let spec = NodeSpec { domains: 3, stopped_every: 0, plain_every: 0 };
    spec.write(&three).unwrap();
    NodeSpec { domains: 2, ..spec.clone() }.write(&two).unwrap();
    let pipeline = |node: &std::path::Path| {
        format!(
            "  libvirt_uri: test://{}\n{}sources:\n  - name: compute\n    interval: 1\n    meters: [cpu, memory.usage]\n    sinks: [out]\nsinks:\n  - name: out\n    publishers: ['file://{}']\n",
            node.display(),
            grants(&["local_instances", "cpu", "memory"]),
            workspace.path().join("samples.jsonl").display()
        )
    };
    // Two domains first; a third appears, then goes.
    workspace.write_pipeline(&pipeline(&two), "");
    let address = format!("127.0.0.1:{}", free_port());
    let mut agent =
        Running::start(&workspace, &["--prometheus-listen", &address], workspace.path().join("samples.jsonl"));

    let domains = spec.domain_specs();
    let all: BTreeSet<String> = domains.iter().map(|d| d.uuid.clone()).collect();
    let first_two: BTreeSet<String> = all.iter().take(2).cloned().collect();
    scrape_until(&mut agent, &address, "the first two domains' series", &|s| {
        resources(s, "ceilometer_cpu") == first_two
    });
    workspace.write_pipeline(&pipeline(&three), "");
    agent.signal("HUP");
    let scraped = scrape_until(&mut agent, &address, "the new domain's series too", &|s| {
        resources(s, "ceilometer_cpu") == all && resources(s, "ceilometer_memory_usage") == all
    });
    let first = &domains[0];
    let cpu =
        series(&scraped, "ceilometer_cpu").into_iter().find(|s| s.labels.get("resource") == Some(&first.uuid)).unwrap();
    assert!(matches!(cpu.value, Value::Counter(v) if v > 0.0), "cumulative meters are counters: {:?}", cpu.value);
    let labels = &cpu.labels;
    assert_eq!(labels.get("resource_name"), Some("vm-instance-00000001"));
    assert_eq!(labels.get("flavor"), Some(format!("m1.gen{}", first.vcpus).as_str()));
    assert_eq!(labels.get("project"), Some(first.owner.1.as_str()));
    assert_eq!(labels.get("user"), Some(first.owner.0.as_str()));
    assert_eq!((labels.get("unit"), labels.get("type")), (Some("ns"), Some("cumulative")));
    let memory = series(&scraped, "ceilometer_memory_usage");
    assert!(memory.iter().all(|s| matches!(s.value, Value::Gauge(_))), "gauges are gauges");
    assert_eq!(http(&address, "GET", "/other", b"").unwrap().0, 404);

    // The third domain disappears from the host: its series leave the endpoint.
    workspace.write_pipeline(&pipeline(&two), "");
    agent.signal("HUP");
    let gone = &domains[2].uuid;
    scrape_until(&mut agent, &address, "the vanished domain's series to go", &|s| {
        !resources(s, "ceilometer_cpu").contains(gone) && resources(s, "ceilometer_cpu").len() == 2
    });

    agent.stop();
}

/// Scrapes the agent's endpoint until `done` holds for what it serves.
fn scrape_until(agent: &mut Running, address: &str, what: &str, done: &dyn Fn(&Scrape) -> bool) -> Scrape {
    let mut scraped = None;
    agent.wait(what, |_| {
        let Ok((200, _)) = http(address, "GET", "/metrics", b"") else { return false };
        let now = scrape(address, "/metrics");
        let done = done(&now);
        scraped = Some(now);
        done
    });
    scraped.expect("scraped")
}

#[test]
fn an_address_already_in_use_is_a_clear_error_at_start() {
    let workspace = Workspace::new(&[builtin("local_instances"), builtin("cpu")]);
    workspace.write_pipeline(&grants(&["local_instances", "cpu"]), &stdout_source("meters: [cpu]"));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = pollen_command()
        .args(["run", "--config", "pipeline.yaml", "--prometheus-listen", &address])
        .current_dir(workspace.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains(&format!("cannot listen on {address} for Prometheus")), "{stderr}");
}

const PUSHGATEWAY: &str = "127.0.0.1:9091";

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_urls_push_each_batch_to_the_pushgateway() {
    if http(PUSHGATEWAY, "GET", "/-/ready", b"").is_err() {
        assert!(std::env::var("CI").is_err(), "CI: no Pushgateway on {PUSHGATEWAY} (`make setup` starts one)");
        eprintln!("skipped: no Pushgateway on {PUSHGATEWAY}; run `make setup`");
        return;
    }
    let job = format!("pollen-test-{}", std::process::id());
    let url = format!("prometheus://{PUSHGATEWAY}/metrics/job/{job}");
    let handle = PublisherHandle::start(&url, &PublishContext::default()).await.expect("publisher starts");
    let batch = std::sync::Arc::new(batch(6, 100.0));
    handle.send_waiting(batch.clone()).await;
    let delivery = handle.shutdown(SAFETY_NET).await;
    assert_eq!((delivery.sent, delivery.dropped), (6, 0));

    let scraped = scrape(PUSHGATEWAY, "/metrics");
    let pushed: Vec<&Scraped> = scraped.samples.iter().filter(|s| s.labels.get("job") == Some(job.as_str())).collect();
    let cpu: Vec<&&Scraped> = pushed.iter().filter(|s| s.metric == "cpu").collect();
    let memory: Vec<&&Scraped> = pushed.iter().filter(|s| s.metric == "memory_usage").collect();
    assert!(!cpu.is_empty() && !memory.is_empty(), "{pushed:?}");
    // The last value of each series in the batch is what the Pushgateway keeps.
    let vm_b_cpu = cpu.iter().find(|s| s.labels.get("resource_id") == Some("vm-b")).expect("vm-b's cpu");
    assert!(matches!(vm_b_cpu.value, Value::Counter(v) if v == 104.0), "{:?}", vm_b_cpu.value);
    assert_eq!(vm_b_cpu.labels.get("project_id"), Some("project-1"));
    assert_eq!(vm_b_cpu.labels.get("unit"), Some("ns"));
    let (status, _) = http(PUSHGATEWAY, "DELETE", &format!("/metrics/job/{job}"), b"").unwrap();
    assert_eq!(status, 202);
}

/// The value of the series of `metric` whose labels include `labels`.
fn value_of(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    series(scrape, metric).into_iter().find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))).map(
        |s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            ref other => panic!("{metric}: not a number: {other:?}"),
        },
    )
}

/// Pollen's own metrics beside the samples: cycles and their durations, each plugin's
/// calls, instances and failures by kind, samples per meter, each publisher's figures
/// (the same records `pollen status` reads), libvirt's calls, reloads.
#[test]
fn the_endpoint_serves_pollens_own_metrics() {
    let workspace = Workspace::new(&[builtin("local_instances"), builtin("cpu"), builtin("memory"), hostile("trap")]);
    let out = workspace.path().join("samples.jsonl");
    let file = format!("file://{}", out.display());
    workspace.write_pipeline(
        "",
        &format!(
            "sources:\n  - name: all\n    interval: 1\n    meters: ['cpu', 'memory.usage', 'test.trap']\n    sinks: [out]\n\
             sinks:\n  - name: out\n    publishers: ['{file}']\n"
        ),
    );
    let address = format!("127.0.0.1:{}", free_port());
    let mut agent = Running::start(&workspace, &["--prometheus-listen", &address], out.clone());
    let scraped = scrape_until(&mut agent, &address, "two cycles counted", &|s| {
        value_of(s, "pollen_cycles_total", &[("interval", "1")]).unwrap_or(0.0) >= 2.0
    });
    let at_least = |metric: &str, labels: &[(&str, &str)], floor: f64| {
        let value = value_of(&scraped, metric, labels).unwrap_or_else(|| panic!("no {metric}{labels:?}"));
        assert!(value >= floor, "{metric}{labels:?} = {value}, expected at least {floor}");
        value
    };
    at_least("pollen_cycle_duration_seconds_count", &[("interval", "1")], 2.0);
    at_least("pollen_plugin_calls_total", &[("plugin", "cpu")], 2.0);
    at_least("pollen_plugin_call_duration_seconds_count", &[("plugin", "memory")], 2.0);
    at_least("pollen_plugin_instantiations_total", &[("plugin", "cpu")], 1.0);
    let traps = at_least("pollen_plugin_errors_total", &[("plugin", "trap"), ("kind", "trap")], 2.0);
    // The trap plugin is re-made after each failure.
    at_least("pollen_plugin_instantiations_total", &[("plugin", "trap")], traps);
    assert_eq!(value_of(&scraped, "pollen_plugin_errors_total", &[("plugin", "cpu")]), None, "cpu never failed");
    at_least("pollen_samples_polled_total", &[("meter", "cpu")], 2.0);
    at_least("pollen_samples_polled_total", &[("meter", "memory.usage")], 2.0);
    at_least("pollen_libvirt_calls_total", &[], 1.0);
    let publisher = [("sink", "out"), ("publisher", file.as_str())];
    at_least("pollen_publisher_samples_sent_total", &publisher, 4.0);
    assert_eq!(value_of(&scraped, "pollen_publisher_samples_dropped_total", &publisher), Some(0.0));
    at_least("pollen_publisher_send_duration_seconds_count", &publisher, 2.0);
    assert_eq!(value_of(&scraped, "pollen_publisher_queue_samples", &publisher).map(|v| v <= 4.0), Some(true));

    agent.signal("HUP");
    agent.wait_for_log("configuration reloaded", 1);
    let reloaded = scrape(&address, "/metrics");
    assert_eq!(value_of(&reloaded, "pollen_reloads_total", &[("outcome", "applied")]), Some(1.0));
    agent.stop();
}
