//! Reading stored samples back (issue 20): Ceilometer's v2 API served by `pollen api`
//! (and by `pollen collect`), `pollen query`, and `python-ceilometerclient` itself
//! against both. A store of known samples is written through the `database`
//! publisher's write path (`Store::write`) on the machine's PostgreSQL and on SQLite;
//! every answer is checked against what the test computes from the same samples.
//! A test that cannot reach PostgreSQL or the client fails, it never skips.

mod common;

use common::*;
use pollen_host::store::{MeterKey, ResourceVersion, Row, Store, StoreUrl, WriteBatch};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// 2026-12-01T10:00:00Z, when the known samples start.
const T0: i64 = 1_796_119_200_000_000;
const MINUTE: i64 = 60_000_000;
/// Samples per resource and meter: one a minute for half an hour.
const STEPS: i64 = 30;

/// One known sample.
#[derive(Debug, Clone)]
struct Known {
    id: String,
    meter: &'static str,
    kind: &'static str,
    unit: &'static str,
    resource: &'static str,
    user: &'static str,
    project: &'static str,
    metadata: Value,
    volume: f64,
    at: i64,
}

/// Three instances (r1, r2 in p1; r3 in p2), two meters, a sample a minute for half
/// an hour; r1 is resized halfway (a second version of its metadata).
fn known() -> Vec<Known> {
    known_in(["p1", "p2"])
}

/// The same, in the projects `p1` and `p2` name.
fn known_in([p1, p2]: [&'static str; 2]) -> Vec<Known> {
    let mut all = Vec::new();
    for (r, (resource, user, project)) in [("r1", "u1", p1), ("r2", "u2", p1), ("r3", "u3", p2)].into_iter().enumerate()
    {
        for step in 0..STEPS {
            let flavor = match (resource, step >= 15) {
                ("r1", false) | ("r3", _) => "m1.tiny",
                ("r1", true) => "m1.small",
                _ => "m1.large",
            };
            let metadata = json!({"instance_type": flavor, "flavor": {"name": flavor, "vcpus": r + 1},
                                  "tags": ["web"], "display_name": format!("vm-{resource}")});
            let at = T0 + step * MINUTE + (r as i64) * 1_000_000;
            for (meter, kind, unit, volume) in [
                ("cpu_util", "gauge", "%", ((step * 7 + r as i64 * 13) % 100) as f64 + 0.5),
                ("disk.read.bytes", "cumulative", "B", (1000 * (step + 1) * (r as i64 + 1)) as f64),
            ] {
                all.push(Known {
                    id: format!("{resource}-{meter}-{step}"),
                    meter,
                    kind,
                    unit,
                    resource,
                    user,
                    project,
                    metadata: metadata.clone(),
                    volume,
                    at,
                });
            }
        }
    }
    all
}

/// Writes the known samples into the store at `url`, in batches as a collector would.
fn fill(url: &str) -> Vec<Known> {
    fill_with(url, known())
}

/// Writes `samples` into the store at `url`.
fn fill_with(url: &str, samples: Vec<Known>) -> Vec<Known> {
    let url = StoreUrl::parse(url).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut store = Store::open(&url).await.expect("the store opens");
        for chunk in samples.chunks(37) {
            let mut batch = WriteBatch::default();
            for sample in chunk {
                let meter = MeterKey { name: sample.meter.into(), kind: sample.kind, unit: sample.unit.into() };
                let meter = position_or_push(&mut batch.meters, meter);
                let version = ResourceVersion::new(
                    sample.resource,
                    Some(sample.user),
                    Some(sample.project),
                    "openstack",
                    &sample.metadata.to_string(),
                );
                let resource = position_or_push(&mut batch.resources, version);
                batch.rows.push(Row {
                    message_id: sample.id.clone().into(),
                    meter,
                    resource,
                    volume: sample.volume,
                    timestamp_us: sample.at,
                });
            }
            let written = store.write(Arc::new(batch)).await.expect("the batch is stored");
            assert_eq!(written.stored as usize, chunk.len());
        }
    });
    samples
}

fn position_or_push<T: PartialEq>(items: &mut Vec<T>, item: T) -> u32 {
    match items.iter().position(|i| *i == item) {
        Some(at) => at as u32,
        None => {
            items.push(item);
            items.len() as u32 - 1
        }
    }
}

fn iso(us: i64) -> String {
    pollen_host::api::time::isoformat(us)
}

/// `pollen api` on a free port, for the store at `url`, with `extra` arguments.
fn start_api(url: &str, dir: &std::path::Path, extra: &[&str]) -> (Running, String) {
    let address = format!("127.0.0.1:{}", free_port());
    let mut command = pollen_command();
    command.args(["api", "--store", url, "--listen", &address, "--log", "info"]).args(extra).current_dir(dir);
    let mut api = Running::spawn(command, dir.join("unused"));
    api.wait_for_log("API serving", 1);
    (api, address)
}

/// `GET path` (a token when given): the status and the JSON body.
fn get(address: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let headers: Vec<(&str, &str)> = token.map(|t| ("X-Auth-Token", t)).into_iter().collect();
    let (status, body) = http_with(address, "GET", path, &headers, b"").expect("the API answers");
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {}", String::from_utf8_lossy(&body)));
    (status, json)
}

fn ok(address: &str, path: &str) -> Value {
    let (status, body) = get(address, path, None);
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

fn post(address: &str, path: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(token) = token {
        headers.push(("X-Auth-Token", token));
    }
    let (status, body) =
        http_with(address, "POST", path, &headers, body.to_string().as_bytes()).expect("the API answers");
    (status, serde_json::from_slice(&body).expect("JSON"))
}

fn url_escape(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// `?q.field=…&q.op=…&q.value=…` for each condition.
fn q(conditions: &[(&str, &str, &str)]) -> String {
    conditions
        .iter()
        .map(|(field, op, value)| format!("q.field={field}&q.op={op}&q.value={}&q.type=", url_escape(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// What statistics of `samples` say, computed here: count, min, max, avg, sum,
/// population stddev, first and last times.
fn summary(samples: &[&Known]) -> (usize, f64, f64, f64, f64, f64, i64, i64) {
    let n = samples.len();
    let sum: f64 = samples.iter().map(|s| s.volume).sum();
    let avg = sum / n as f64;
    let min = samples.iter().map(|s| s.volume).fold(f64::INFINITY, f64::min);
    let max = samples.iter().map(|s| s.volume).fold(f64::NEG_INFINITY, f64::max);
    let stddev = (samples.iter().map(|s| (s.volume - avg).powi(2)).sum::<f64>() / n as f64).sqrt();
    let first = samples.iter().map(|s| s.at).min().unwrap();
    let last = samples.iter().map(|s| s.at).max().unwrap();
    (n, min, max, avg, sum, stddev, first, last)
}

fn close(a: &Value, b: f64, what: &str) {
    let a = a.as_f64().unwrap_or_else(|| panic!("{what}: not a number: {a}"));
    assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{what}: {a} != {b}");
}

/// Every endpoint, on one backend.
fn every_endpoint_answers(url: &str) {
    let samples = fill(url);
    let dir = tempfile::tempdir().unwrap();
    let (api, address) = start_api(url, dir.path(), &[]);

    // The versions and the capabilities.
    let root = ok(&address, "/");
    assert_eq!(root["versions"]["values"][0]["id"], "v2");
    assert_eq!(root["versions"]["values"][0]["links"][0]["href"], format!("http://{address}/v2"));
    let capabilities = ok(&address, "/v2/capabilities");
    assert_eq!(capabilities["api"]["statistics:aggregation:selectable:stddev"], true);
    assert_eq!(capabilities["api"]["samples:query:complex"], true);

    // Meters: one per meter and resource, with Ceilometer's meter_id.
    let meters = ok(&address, "/v2/meters");
    let listed: Vec<(String, String)> = meters
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap().to_string(), m["resource_id"].as_str().unwrap().to_string()))
        .collect();
    let mut expected: Vec<(String, String)> =
        samples.iter().map(|s| (s.meter.to_string(), s.resource.to_string())).collect();
    expected.sort();
    expected.dedup();
    assert_eq!(listed, expected);
    let cpu_r1 =
        meters.as_array().unwrap().iter().find(|m| m["name"] == "cpu_util" && m["resource_id"] == "r1").unwrap();
    assert_eq!(cpu_r1["type"], "gauge");
    assert_eq!(cpu_r1["unit"], "%");
    assert_eq!(cpu_r1["project_id"], "p1");
    assert_eq!(cpu_r1["user_id"], "u1");
    assert_eq!(cpu_r1["source"], "openstack");
    use base64::Engine;
    assert_eq!(cpu_r1["meter_id"], base64::engine::general_purpose::STANDARD.encode("r1+cpu_util"));
    let unique = ok(&address, "/v2/meters?unique=True");
    assert_eq!(unique.as_array().unwrap().len(), 2, "{unique}");
    let p2 = ok(&address, &format!("/v2/meters?{}", q(&[("project_id", "eq", "p2")])));
    assert!(p2.as_array().unwrap().iter().all(|m| m["resource_id"] == "r3"), "{p2}");

    // A meter's samples of a resource, newest first, in the old shape.
    let old = ok(&address, &format!("/v2/meters/cpu_util?{}&limit=5", q(&[("resource_id", "eq", "r2")])));
    let mut r2: Vec<&Known> = samples.iter().filter(|s| s.resource == "r2" && s.meter == "cpu_util").collect();
    r2.sort_by_key(|s| -s.at);
    assert_eq!(old.as_array().unwrap().len(), 5);
    for (shown, known) in old.as_array().unwrap().iter().zip(&r2) {
        assert_eq!(shown["message_id"], known.id);
        assert_eq!(shown["counter_name"], "cpu_util");
        assert_eq!(shown["counter_type"], "gauge");
        assert_eq!(shown["counter_unit"], "%");
        close(&shown["counter_volume"], known.volume, "counter_volume");
        assert_eq!(shown["timestamp"], iso(known.at));
        assert_eq!(shown["resource_metadata"]["flavor.name"], "m1.large");
        assert_eq!(shown["resource_metadata"]["tags"], "[b'web']");
    }

    // Samples by metadata (typed as Ceilometer types it) and by time.
    let tiny = ok(
        &address,
        &format!(
            "/v2/samples?{}&limit=1000",
            q(&[("metadata.flavor.name", "eq", "m1.tiny"), ("meter", "eq", "disk.read.bytes")])
        ),
    );
    let expected_tiny =
        samples.iter().filter(|s| s.meter == "disk.read.bytes" && s.metadata["flavor"]["name"] == "m1.tiny").count();
    assert_eq!(tiny.as_array().unwrap().len(), expected_tiny);
    let vcpus =
        ok(&address, &format!("/v2/samples?{}&limit=1000", q(&[("resource_metadata.flavor.vcpus", "eq", "3")])));
    assert_eq!(vcpus.as_array().unwrap().len(), samples.iter().filter(|s| s.resource == "r3").count());
    let window = ok(
        &address,
        &format!(
            "/v2/samples?{}&limit=1000",
            q(&[("timestamp", "ge", &iso(T0 + 10 * MINUTE)), ("timestamp", "lt", &iso(T0 + 12 * MINUTE))])
        ),
    );
    let in_window = samples.iter().filter(|s| s.at >= T0 + 10 * MINUTE && s.at < T0 + 12 * MINUTE).count();
    assert_eq!(window.as_array().unwrap().len(), in_window);
    let first = &window[0];
    assert!(first["id"].is_string() && first["meter"].is_string() && first["recorded_at"].is_string(), "{first}");
    assert_eq!(first["metadata"]["display_name"].as_str().map(|n| n.starts_with("vm-")), Some(true));

    // One sample by id; an unknown one is a 404 in Ceilometer's words.
    let one = ok(&address, "/v2/samples/r3-cpu_util-4");
    assert_eq!(one["resource_id"], "r3");
    assert_eq!(one["timestamp"], iso(T0 + 4 * MINUTE + 2_000_000));
    let (status, body) = get(&address, "/v2/samples/nope", None);
    assert_eq!(status, 404);
    assert_eq!(body["error_message"]["faultstring"], "Sample nope Not Found");

    // Resources: the latest version's metadata, the span of all, links to meters.
    let resources = ok(&address, "/v2/resources");
    assert_eq!(resources.as_array().unwrap().len(), 3, "{resources}");
    let r1 = &resources[0];
    assert_eq!(r1["resource_id"], "r1");
    assert_eq!(r1["metadata"]["flavor.name"], "m1.small", "the resize is the latest version");
    assert_eq!(r1["first_sample_timestamp"], iso(T0));
    assert_eq!(r1["last_sample_timestamp"], iso(T0 + (STEPS - 1) * MINUTE));
    let rels: Vec<&str> = r1["links"].as_array().unwrap().iter().map(|l| l["rel"].as_str().unwrap()).collect();
    assert_eq!(rels, ["self", "cpu_util", "disk.read.bytes"]);
    assert_eq!(r1["links"][0]["href"], format!("http://{address}/v2/resources/r1"));
    let p1 = ok(&address, &format!("/v2/resources?{}", q(&[("project_id", "eq", "p1")])));
    let ids: Vec<&str> = p1.as_array().unwrap().iter().map(|r| r["resource_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["r1", "r2"]);
    let early = ok(
        &address,
        &format!("/v2/resources?{}", q(&[("timestamp", "lt", &iso(T0 + 5 * MINUTE)), ("resource_id", "eq", "r1")])),
    );
    assert_eq!(early[0]["last_sample_timestamp"], iso(T0 + 4 * MINUTE), "the span within the time asked");
    assert_eq!(early[0]["metadata"]["flavor.name"], "m1.tiny", "the version sampled within the time asked");
    assert_eq!(ok(&address, "/v2/resources/r2")["user_id"], "u2");
    let (status, body) = get(&address, "/v2/resources/nope", None);
    assert_eq!(status, 404);
    assert_eq!(body["error_message"]["faultstring"], "Resource nope Not Found");

    // Statistics per 10 minutes and resource, checked against this test's own sums.
    let (from, to) = (T0, T0 + STEPS * MINUTE);
    let stats = ok(
        &address,
        &format!(
            "/v2/meters/cpu_util/statistics?{}&period=600&groupby=resource_id",
            q(&[("timestamp", "ge", &iso(from)), ("timestamp", "lt", &iso(to))])
        ),
    );
    let mut expected_rows = BTreeMap::new();
    for period in 0..3 {
        let start = from + period * 10 * MINUTE;
        for resource in ["r1", "r2", "r3"] {
            let within: Vec<&Known> = samples
                .iter()
                .filter(|s| {
                    s.meter == "cpu_util" && s.resource == resource && s.at >= start && s.at < start + 10 * MINUTE
                })
                .collect();
            expected_rows.insert((start, resource), summary(&within));
        }
    }
    assert_eq!(stats.as_array().unwrap().len(), expected_rows.len(), "{stats}");
    for row in stats.as_array().unwrap() {
        let start = pollen_host::api::time::parse_isotime(row["period_start"].as_str().unwrap()).unwrap();
        let resource = row["groupby"]["resource_id"].as_str().unwrap();
        let (n, min, max, avg, sum, _, first, last) = expected_rows[&(start, resource)];
        assert_eq!(row["count"], n as u64, "{row}");
        close(&row["min"], min, "min");
        close(&row["max"], max, "max");
        close(&row["avg"], avg, "avg");
        close(&row["sum"], sum, "sum");
        assert_eq!(row["period"], 600);
        assert_eq!(row["period_end"], iso(start + 10 * MINUTE));
        assert_eq!(row["duration_start"], iso(first));
        assert_eq!(row["duration_end"], iso(last));
        close(&row["duration"], (last - first) as f64 / 1e6, "duration");
        assert_eq!(row["unit"], "%");
        assert!(row.get("aggregate").is_none(), "no aggregate asked: {row}");
    }

    // Over everything, with selected aggregates: stddev and cardinality.
    let all_cpu: Vec<&Known> = samples.iter().filter(|s| s.meter == "cpu_util").collect();
    let (n, _, _, avg, _, stddev, first, last) = summary(&all_cpu);
    let selected = ok(
        &address,
        "/v2/meters/cpu_util/statistics?aggregate.func=stddev&aggregate.param=&aggregate.func=cardinality&aggregate.param=resource_id&aggregate.func=avg&aggregate.param=",
    );
    assert_eq!(selected.as_array().unwrap().len(), 1);
    let row = &selected[0];
    close(&row["aggregate"]["stddev"], stddev, "stddev");
    close(&row["aggregate"]["cardinality/resource_id"], 3.0, "cardinality");
    close(&row["aggregate"]["avg"], avg, "aggregate avg");
    close(&row["avg"], avg, "avg");
    assert!(row.get("count").is_none() && row.get("max").is_none(), "only what was asked: {row}");
    assert_eq!(row["period"], 0);
    assert_eq!(row["period_start"], iso(first));
    assert_eq!(row["period_end"], iso(last));
    let plain = ok(&address, "/v2/meters/cpu_util/statistics");
    assert_eq!(plain[0]["count"], n as u64);

    // Periods without a time range start at the first sample and reach the last.
    let unbounded =
        ok(&address, &format!("/v2/meters/cpu_util/statistics?{}&period=900", q(&[("resource_id", "eq", "r3")])));
    let r3_first = T0 + 2_000_000;
    let periods: Vec<&str> =
        unbounded.as_array().unwrap().iter().map(|r| r["period_start"].as_str().unwrap()).collect();
    assert_eq!(periods, [iso(r3_first), iso(r3_first + 15 * MINUTE)]);
    let counted: u64 = unbounded.as_array().unwrap().iter().map(|r| r["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, STEPS as u64);

    // Grouped by a metadata key: r1's two flavors count apart.
    let by_flavor = ok(&address, "/v2/meters/cpu_util/statistics?groupby=resource_metadata.instance_type");
    let counts: BTreeMap<String, u64> = by_flavor
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["groupby"]["resource_metadata.instance_type"].as_str().unwrap().to_string(),
                r["count"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut expected_counts = BTreeMap::new();
    for s in &all_cpu {
        *expected_counts.entry(s.metadata["instance_type"].as_str().unwrap().to_string()).or_insert(0u64) += 1;
    }
    assert_eq!(counts, expected_counts);

    // The complex query, Ceilometer's operators and order.
    let (status, found) = post(
        &address,
        "/v2/query/samples",
        &json!({
            "filter": r#"{"and": [{"=": {"counter_name": "cpu_util"}}, {">": {"counter_volume": 50}},
                          {"in": {"resource": ["r1", "r3"]}}, {"not": {"=~": {"metadata.display_name": "r3$"}}}]}"#,
            "orderby": r#"[{"volume": "desc"}, {"timestamp": "asc"}]"#,
            "limit": 4
        }),
        None,
    );
    assert_eq!(status, 200, "{found}");
    let mut expected_found: Vec<&Known> =
        samples.iter().filter(|s| s.meter == "cpu_util" && s.volume > 50.0 && s.resource == "r1").collect();
    expected_found.sort_by(|a, b| b.volume.total_cmp(&a.volume).then(a.at.cmp(&b.at)));
    let ids: Vec<&str> = found.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    let expected_ids: Vec<&str> = expected_found.iter().take(4).map(|s| s.id.as_str()).collect();
    assert_eq!(ids, expected_ids);

    // Bad questions get Ceilometer's errors.
    let (status, body) = get(&address, &format!("/v2/samples?{}", q(&[("foo", "eq", "bar")])), None);
    assert_eq!(status, 400);
    assert!(
        body["error_message"]["faultstring"]
            .as_str()
            .unwrap()
            .starts_with("Unknown argument: \"foo\": unrecognized field in query"),
        "{body}"
    );
    assert_eq!(body["error_message"]["faultcode"], "Client");
    let (status, body) = get(&address, &format!("/v2/samples?{}", q(&[("resource_id", "gt", "r1")])), None);
    assert_eq!(status, 400);
    assert_eq!(
        body["error_message"]["faultstring"],
        "Invalid input for field/attribute op. Value: 'gt'. unimplemented operator for resource_id"
    );
    let (status, body) = get(&address, "/v2/samples?limit=0", None);
    assert_eq!((status, body["error_message"]["faultstring"].as_str()), (400, Some("Limit must be positive")));
    let (status, body) = get(&address, "/v2/meters/cpu_util/statistics?groupby=flavor", None);
    assert_eq!(
        (status, body["error_message"]["faultstring"].as_str()),
        (400, Some("Unknown argument: \"{'flavor'}\": Invalid groupby fields"))
    );
    let (status, body) = get(&address, "/v2/meters/cpu_util/statistics?aggregate.func=median", None);
    assert_eq!(
        (status, body["error_message"]["faultstring"].as_str()),
        (400, Some("Invalid aggregation function: median"))
    );
    let (status, body) = get(&address, "/v2/meters/cpu_util/statistics?period=-1", None);
    assert_eq!((status, body["error_message"]["faultstring"].as_str()), (400, Some("Period must be positive.")));
    let (status, body) = post(&address, "/v2/query/samples", &json!({"filter": r#"{"=~": {"meter": "("}}"#}), None);
    assert_eq!(status, 400, "an invalid regular expression is the query's fault: {body}");
    drop(api);
}

#[test]
fn every_endpoint_answers_from_postgresql() {
    let database = TestDatabase::create();
    every_endpoint_answers(&database.url());
}

#[test]
fn every_endpoint_answers_from_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    every_endpoint_answers(&format!("sqlite://{}", dir.path().join("samples.db").display()));
}

/// The tokens of `api.yaml`: an admin, and p1's.
const ADMIN_TOKEN: &str = "admin-token-0123456789";
const P1_TOKEN: &str = "p1-token-0123456789abc";

#[test]
fn a_project_token_sees_its_project_only() {
    let database = TestDatabase::create();
    let samples = fill(&database.url());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("api.yaml"),
        format!("tokens:\n  - {{token: {ADMIN_TOKEN}, admin: true}}\n  - {{token: {P1_TOKEN}, project_id: p1}}\n"),
    )
    .unwrap();
    let (api, address) = start_api(&database.url(), dir.path(), &["--config", "api.yaml"]);

    let (status, body) = get(&address, "/v2/resources", None);
    assert_eq!(status, 401, "no token: {body}");
    let (status, _) = get(&address, "/v2/resources", Some("not-a-token"));
    assert_eq!(status, 401);
    let (status, all) = get(&address, "/v2/resources", Some(ADMIN_TOKEN));
    assert_eq!((status, all.as_array().unwrap().len()), (200, 3));

    let (status, own) = get(&address, "/v2/resources", Some(P1_TOKEN));
    assert_eq!(status, 200);
    let ids: Vec<&str> = own.as_array().unwrap().iter().map(|r| r["resource_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["r1", "r2"]);
    let (status, body) = get(&address, &format!("/v2/samples?{}", q(&[("project_id", "eq", "p2")])), Some(P1_TOKEN));
    assert_eq!(status, 401);
    assert_eq!(body["error_message"]["faultstring"], "Not Authorized to access project p2");
    let (status, _) = get(&address, "/v2/samples/r3-cpu_util-0", Some(P1_TOKEN));
    assert_eq!(status, 404, "another project's sample is not found");
    let (status, _) = get(&address, "/v2/resources/r3", Some(P1_TOKEN));
    assert_eq!(status, 404);
    let (status, samples_seen) = get(&address, "/v2/samples?limit=1000", Some(P1_TOKEN));
    assert_eq!(status, 200);
    assert_eq!(samples_seen.as_array().unwrap().len(), samples.iter().filter(|s| s.project == "p1").count());
    let (status, stats) = get(&address, "/v2/meters/cpu_util/statistics?groupby=project_id", Some(P1_TOKEN));
    assert_eq!(status, 200);
    assert_eq!(stats.as_array().unwrap().len(), 1, "p1's statistics only: {stats}");
    let (status, meters) = get(&address, "/v2/meters", Some(P1_TOKEN));
    assert_eq!(status, 200);
    assert!(meters.as_array().unwrap().iter().all(|m| m["project_id"] == "p1"), "{meters}");
    let (status, body) =
        post(&address, "/v2/query/samples", &json!({"filter": r#"{"=": {"project_id": "p2"}}"#}), Some(P1_TOKEN));
    assert_eq!(
        (status, body["error_message"]["faultstring"].as_str()),
        (401, Some("Not Authorized to access project p2"))
    );
    let (status, found) = post(&address, "/v2/query/samples", &json!({"limit": 1000}), Some(P1_TOKEN));
    assert_eq!(status, 200);
    assert!(found.as_array().unwrap().iter().all(|s| s["project_id"] == "p1"));
    drop(api);
}

#[test]
fn an_api_open_to_other_machines_needs_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let output = pollen_command()
        .args(["api", "--store", "sqlite:///nonexistent/never.db", "--listen", "0.0.0.0:8777"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("every caller would be an admin: add `tokens` or `keystone`"), "{stderr}");
}

/// Where `scripts/ceilometer.sh install` puts python-ceilometerclient's command.
const CEILOMETER_CLIENT: &str = "/var/lib/pollen-ceilometer/venv/bin/ceilometer";

/// `ceilometer <args>` against the API at `address`; its standard output.
fn client(address: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(CEILOMETER_CLIENT)
        .args(["--os-token", "any", "--os-endpoint", &format!("http://{address}")])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{CEILOMETER_CLIENT} runs (`make setup` installs it): {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "ceilometer {args:?}: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// The cells of a table `ceilometer` prints, row by row.
fn cells(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .filter(|line| line.starts_with('|'))
        .map(|line| line.trim_matches('|').split('|').map(|c| c.trim().to_string()).collect())
        .collect()
}

#[test]
fn python_ceilometerclient_reads_pollen() {
    let database = TestDatabase::create();
    let samples = fill(&database.url());
    let dir = tempfile::tempdir().unwrap();
    let (api, address) = start_api(&database.url(), dir.path(), &[]);

    let meters = cells(&client(&address, &["meter-list"]));
    assert_eq!(meters[0][..3], ["Name", "Type", "Unit"]);
    assert_eq!(meters.len() - 1, 6, "{meters:?}");
    assert!(meters.iter().any(|row| row[0] == "cpu_util" && row[1] == "gauge" && row[2] == "%" && row[3] == "r1"));

    let listed = cells(&client(&address, &["sample-list", "-m", "cpu_util", "-q", "resource_id=r1", "-l", "3"]));
    let mut r1: Vec<&Known> = samples.iter().filter(|s| s.resource == "r1" && s.meter == "cpu_util").collect();
    r1.sort_by_key(|s| -s.at);
    assert_eq!(listed.len() - 1, 3, "{listed:?}");
    // `sample-list -m` reads `/v2/meters/<name>` (the old shape): no id, newest first.
    assert_eq!(listed[0], ["Resource ID", "Name", "Type", "Volume", "Unit", "Timestamp"]);
    let shown: Vec<(String, String)> = listed[1..].iter().map(|row| (row[3].clone(), row[5].clone())).collect();
    let expected: Vec<(String, String)> = r1.iter().take(3).map(|s| (s.volume.to_string(), iso(s.at))).collect();
    assert_eq!(shown, expected);

    let query = format!("timestamp>={};timestamp<{}", iso(T0), iso(T0 + STEPS * MINUTE));
    // Per period. (With `-g` the client sorts rows that tie on their period by the
    // group's dict, which Python 3 cannot: one group per period is what it prints.)
    let stats = cells(&client(&address, &["statistics", "-m", "cpu_util", "-p", "600", "-q", &query]));
    assert_eq!(stats.len() - 1, 3, "three periods: {stats:?}");
    let count_column =
        stats[0].iter().position(|c| c == "Count").unwrap_or_else(|| panic!("a Count column: {stats:?}"));
    let counted: u64 = stats[1..].iter().map(|row| row[count_column].parse::<u64>().unwrap()).sum();
    assert_eq!(counted as usize, samples.iter().filter(|s| s.meter == "cpu_util").count());
    let grouped =
        cells(&client(&address, &["statistics", "-m", "cpu_util", "-g", "project_id", "-q", "resource_id=r3"]));
    assert_eq!(grouped.len() - 1, 1, "{grouped:?}");
    let group_column = grouped[0].iter().position(|c| c == "Group By").expect("a Group By column");
    assert!(grouped[1][group_column].contains("p2"), "{grouped:?}");

    let resources = cells(&client(&address, &["resource-list"]));
    let ids: Vec<&str> = resources[1..].iter().map(|row| row[0].as_str()).collect();
    assert_eq!(ids, ["r1", "r2", "r3"]);
    let shown = client(&address, &["resource-show", "r2"]);
    assert!(shown.contains("m1.large"), "{shown}");

    let found =
        cells(&client(&address, &["query-samples", "--filter", r#"{"=": {"resource_id": "r2"}}"#, "--limit", "2"]));
    assert_eq!(found.len() - 1, 2, "{found:?}");
    drop(api);
}

#[test]
fn pollen_query_answers_what_the_api_answers() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("samples.db").display());
    let samples = fill(&url);
    let (api, address) = start_api(&url, dir.path(), &[]);
    let range = [("--since", iso(T0)), ("--until", iso(T0 + STEPS * MINUTE))];
    let run = |args: &[&str]| {
        let output = pollen_command().args(["query"]).args(args).args(["--store", &url]).output().unwrap();
        assert!(output.status.success(), "pollen query {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let json: Value = serde_json::from_str(&run(&[
        "statistics",
        "--meter",
        "cpu_util",
        "--period",
        "10m",
        "--group-by",
        "resource_id",
        "--json",
        range[0].0,
        &range[0].1,
        range[1].0,
        &range[1].1,
    ]))
    .unwrap();
    let through_api = ok(
        &address,
        &format!(
            "/v2/meters/cpu_util/statistics?{}&period=600&groupby=resource_id",
            q(&[("timestamp", "ge", &iso(T0)), ("timestamp", "lt", &iso(T0 + STEPS * MINUTE))])
        ),
    );
    assert_eq!(json, through_api);

    let table = run(&["resources", "--project", "p1"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("resource_id  project_id  user_id  first_sample_timestamp"), "{table}");
    assert!(lines[1].starts_with("r1") && lines[2].starts_with("r2") && lines.len() == 3, "{table}");
    let latest = run(&["samples", "--meter", "disk.read.bytes", "--resource", "r3", "--limit", "1"]);
    let newest =
        samples.iter().filter(|s| s.resource == "r3" && s.meter == "disk.read.bytes").max_by_key(|s| s.at).unwrap();
    assert!(latest.lines().nth(1).unwrap().starts_with(&iso(newest.at)), "{latest}");
    let output = pollen_command().args(["query", "statistics", "--store", &url]).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("name the meter with --meter"));
    drop(api);
}

#[test]
fn the_collector_serves_the_api_over_what_it_stores() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let store = dir.path().join("samples.db");
    std::fs::write(
        dir.path().join("collector.yaml"),
        format!(
            "collector:\n  inputs:\n    - {{url: \"udp://127.0.0.1:{}\", sinks: [store]}}\n  api_listen: \"{address}\"\nsinks:\n  - name: store\n    publishers: ['sqlite://{}']\n",
            free_port(),
            store.display()
        ),
    )
    .unwrap();
    let mut command = pollen_command();
    command.args(["collect", "--config", "collector.yaml", "--log", "info"]).current_dir(dir.path());
    let mut collector = Running::spawn(command, dir.path().join("unused"));
    collector.wait_for_log("API serving", 1);
    fill(&format!("sqlite://{}", store.display()));
    let resources = ok(&address, "/v2/resources");
    assert_eq!(resources.as_array().unwrap().len(), 3, "{resources}");
    collector.stop();
}

/// A project, a user with the `member` role in it, and that user's token, made in
/// the machine's Keystone (`scripts/openstack.sh`) with the admin account's token.
async fn keystone_member(cloud: &Cloud) -> (String, String, String) {
    let name = format!("pollen-api-{}", uuid::Uuid::new_v4().simple());
    let project = cloud
        .send(
            cloud
                .http
                .post(format!("{KEYSTONE}/projects"))
                .json(&json!({"project": {"name": name, "domain_id": "default"}})),
        )
        .await["project"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let user = cloud
        .send(cloud.http.post(format!("{KEYSTONE}/users")).json(
            &json!({"user": {"name": name, "domain_id": "default", "password": "pollen-member", "default_project_id": project}}),
        ))
        .await["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let roles = cloud.get(format!("{KEYSTONE}/roles?name=member")).await;
    let member = roles["roles"][0]["id"].as_str().expect("Keystone has the member role").to_string();
    let granted = cloud
        .http
        .put(format!("{KEYSTONE}/projects/{project}/users/{user}/roles/{member}"))
        .header("x-auth-token", &cloud.token)
        .send()
        .await
        .unwrap();
    assert!(granted.status().is_success(), "the member role is granted: {}", granted.status());
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {"id": user, "password": "pollen-member"}}},
        "scope": {"project": {"id": project}}}});
    let response = cloud.http.post(format!("{KEYSTONE}/auth/tokens")).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201, "the member authenticates");
    let token = response.headers()["x-subject-token"].to_str().unwrap().to_string();
    (project, user, token)
}

#[test]
fn keystone_decides_who_sees_what() {
    if !openstack_is_up() {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let cloud = runtime.block_on(Cloud::connect());
    let (project, user, member_token) = runtime.block_on(keystone_member(&cloud));
    let database = TestDatabase::create();
    let own: &'static str = Box::leak(project.clone().into_boxed_str());
    fill_with(&database.url(), known_in([own, "another-project"]));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("api.yaml"),
        format!(
            "keystone:\n  auth_url: {KEYSTONE}\n  username: {USER}\n  password: {PASSWORD}\n  project_name: service\n  \
             user_domain_name: Default\n  project_domain_name: Default\n"
        ),
    )
    .unwrap();
    let (api, address) = start_api(&database.url(), dir.path(), &["--config", "api.yaml"]);

    let (status, all) = get(&address, "/v2/resources", Some(&cloud.token));
    assert_eq!((status, all.as_array().map(Vec::len)), (200, Some(3)), "an admin sees every project: {all}");
    let (status, mine) = get(&address, "/v2/resources", Some(&member_token));
    assert_eq!(status, 200, "{mine}");
    let ids: Vec<&str> = mine.as_array().unwrap().iter().map(|r| r["resource_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["r1", "r2"], "a member sees their project only");
    let (status, body) =
        get(&address, &format!("/v2/samples?{}", q(&[("project_id", "eq", "another-project")])), Some(&member_token));
    assert_eq!(
        (status, body["error_message"]["faultstring"].as_str()),
        (401, Some("Not Authorized to access project another-project"))
    );
    let (status, _) = get(&address, "/v2/resources", Some("gAAAAABnot-a-real-token"));
    assert_eq!(status, 401, "a token Keystone does not know");
    let (status, _) = get(&address, "/v2/resources", None);
    assert_eq!(status, 401, "no token");
    drop(api);
    runtime.block_on(async {
        cloud
            .http
            .delete(format!("{KEYSTONE}/users/{user}"))
            .header("x-auth-token", &cloud.token)
            .send()
            .await
            .unwrap();
        cloud
            .http
            .delete(format!("{KEYSTONE}/projects/{project}"))
            .header("x-auth-token", &cloud.token)
            .send()
            .await
            .unwrap();
    });
}

#[test]
fn a_collector_api_that_cannot_work_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let check = |text: &str| {
        std::fs::write(dir.path().join("collector.yaml"), text).unwrap();
        let output = pollen_command().args(["collect", "--check"]).current_dir(dir.path()).output().unwrap();
        (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let inputs = "collector:\n  inputs:\n    - {url: \"udp://127.0.0.1:4952\", sinks: [out]}\n";
    let (code, stderr) = check(&format!(
        "{inputs}  api_listen: \"0.0.0.0:8777\"\nsinks:\n  - {{name: out, publishers: ['database://']}}\n"
    ));
    assert_eq!(code, Some(78), "{stderr}");
    assert!(stderr.contains("collector.api: listen: 0.0.0.0:8777 is reachable from other machines"), "{stderr}");
    let (code, stderr) = check(&format!(
        "{inputs}  api_listen: \"127.0.0.1:8777\"\nsinks:\n  - {{name: out, publishers: ['file:///dev/null']}}\n"
    ));
    assert_eq!(code, Some(78), "{stderr}");
    assert!(stderr.contains("no sink stores into a database: give the API a `store`"), "{stderr}");
    let (code, stderr) = check(&format!(
        "{inputs}  api_listen: \"127.0.0.1:8777\"\n  api: {{listen: \"127.0.0.1:9999\"}}\nsinks:\n  - {{name: out, publishers: ['database://']}}\n"
    ));
    assert_eq!(code, Some(78), "{stderr}");
    assert!(
        stderr.contains("collector.api_listen: says 127.0.0.1:8777 and `api.listen` says 127.0.0.1:9999: keep one"),
        "{stderr}"
    );
    let (code, stderr) = check(&format!(
        "{inputs}  api_listen: \"0.0.0.0:8777\"\n  api: {{tokens: [{{token: a-long-enough-admin-token, admin: true}}]}}\nsinks:\n  - {{name: out, publishers: ['database://']}}\n"
    ));
    assert_eq!(code, Some(0), "tokens guard an API beyond loopback: {stderr}");
}
