//! The central agent against the real Keystone, Glance and Cinder of
//! `scripts/openstack.sh` (issue 16): images and volumes are made through the APIs,
//! polled, and every sample checked against what the API itself says of them, with
//! Ceilometer 27's names, units, owners and metadata keys from the table taken from
//! its source (`tests/data/ceilometer/central-meters.tsv`).

mod common;

use common::*;
use pollen_host::pipeline::cycle::run_cycle;
use pollen_host::pipeline::Agent;
use pollen_host::sample::Sample;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// One row of the oracle table.
struct Row {
    kind: String,
    unit: String,
    resource_id: String,
    user_id: String,
    project_id: String,
    volume: String,
    /// Ceilometer's key, and the path in the API's JSON it is read from.
    metadata: Vec<(String, String)>,
}

fn oracle() -> BTreeMap<String, Row> {
    let text = std::fs::read_to_string(repo().join("tests/data/ceilometer/central-meters.tsv")).expect("the table");
    let mut rows = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')).skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let metadata = f[8]
            .split(',')
            .map(|pair| {
                let (key, from) = pair.split_once("<-").expect("key<-path");
                (key.to_string(), from.to_string())
            })
            .collect();
        rows.insert(
            f[0].to_string(),
            Row {
                kind: f[1].into(),
                unit: f[2].into(),
                resource_id: f[4].into(),
                user_id: f[5].into(),
                project_id: f[6].into(),
                volume: f[7].into(),
                metadata,
            },
        );
    }
    rows
}

/// The value at `path` in `json` (`a`, `a.b`, `a[0].b`), null where absent; Glance's
/// `tags` are `[]` when absent (openstacksdk's default).
fn at(json: &Value, path: &str) -> Value {
    let mut value = json;
    for part in path.split('.') {
        let (key, index) = match part.strip_suffix("[0]") {
            Some(key) => (key, true),
            None => (part, false),
        };
        value = match value.get(key) {
            Some(found) if index => match found.get(0) {
                Some(first) => first,
                None => return Value::Null,
            },
            Some(found) => found,
            None if path == "tags" => return json!([]),
            None => return Value::Null,
        };
    }
    value.clone()
}

fn central_agent(workspace: &Workspace) -> Agent {
    let agent = with_account(Some("RegionOne"), &granted(&["glance_images", "cinder_volumes"]));
    workspace.polling_agent(&agent, "meters: [image.size, volume.size]")
}

/// Checks one sample against the table and the API's JSON of its resource.
fn check(agent: &Agent, sample: &Sample, row: &Row, api: &Value) {
    let meter = agent.registry.meter(sample.meter).unwrap();
    assert_eq!((meter.kind.as_str(), meter.unit.as_str()), (row.kind.as_str(), row.unit.as_str()), "{}", meter.name);
    let resource = agent.registry.resource(sample.resource).unwrap();
    assert_eq!(Value::from(&*resource.id), at(api, &row.resource_id), "{} resource id", meter.name);
    let owner = |field: &str| if field == "-" { Value::Null } else { at(api, field) };
    assert_eq!(resource.user_id().map_or(Value::Null, Value::from), owner(&row.user_id), "{} user", meter.name);
    assert_eq!(
        resource.project_id().map_or(Value::Null, Value::from),
        owner(&row.project_id),
        "{} project",
        meter.name
    );
    assert_eq!(Some(sample.volume), at(api, &row.volume).as_f64(), "{} volume", meter.name);
    let metadata = resource.merged_metadata();
    let keys: Vec<&String> = metadata.keys().collect();
    let mut expected: Vec<&String> = row.metadata.iter().map(|(key, _)| key).collect();
    expected.sort();
    assert_eq!(keys, expected, "{} metadata keys", meter.name);
    for (key, from) in &row.metadata {
        assert_eq!(metadata[key], at(api, from), "{} metadata `{key}` (from `{from}`)", meter.name);
    }
}

/// Polls `meter` once, through `discoverer` (granted the catalog) and `pollster`, and
/// checks its sample on the resource `api` describes (the API's JSON of it) against
/// the table and `api`.
async fn check_polled(discoverer: &str, pollster: &str, meter: &str, api: &Value) {
    let workspace = Workspace::new(&[central(discoverer), central(pollster)]);
    let agent = with_account(None, &granted(&[discoverer]));
    let agent = workspace.polling_agent(&agent, &format!("meters: [{meter}]"));
    let output = run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources).await;
    assert!(output.failures.is_empty(), "{:?}", output.failures);
    let id = api["id"].as_str().expect("the API's object has an id");
    let ours: Vec<&Sample> =
        output.samples[0].iter().filter(|s| *agent.registry.resource(s.resource).unwrap().id == *id).collect();
    assert_eq!(ours.len(), 1, "{meter} of {id}");
    check(&agent, ours[0], &oracle()[meter], api);
}

#[tokio::test(flavor = "multi_thread")]
async fn images_and_volumes_are_polled_with_ceilometer_s_names_owners_and_metadata() {
    if !openstack_is_up() {
        return;
    }
    let _cloud = one_at_a_time().await;
    let cloud = Cloud::connect().await;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let sized = [
        (cloud.image(&format!("pollen-{tag}-a"), Some(1000)).await, 1000),
        (cloud.image(&format!("pollen-{tag}-b"), Some(4096)).await, 4096),
    ];
    let queued = cloud.image(&format!("pollen-{tag}-queued"), None).await;
    let volumes =
        [cloud.volume(&format!("pollen-{tag}-1"), 1).await, cloud.volume(&format!("pollen-{tag}-2"), 2).await];

    let workspace = Workspace::new(&[
        central("glance_images"),
        central("image_size"),
        central("cinder_volumes"),
        central("volume_size"),
    ]);
    let agent = central_agent(&workspace);
    let output = run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources).await;
    assert!(output.failures.is_empty(), "{:?}", output.failures);
    let oracle = oracle();
    let on = |id: &str, meter: &str| -> Vec<Sample> {
        output.samples[0]
            .iter()
            .filter(|s| agent.registry.meter(s.meter).unwrap().name == meter)
            .filter(|s| &*agent.registry.resource(s.resource).unwrap().id == id)
            .copied()
            .collect()
    };

    for (id, bytes) in &sized {
        let api = cloud.get(format!("{GLANCE}/v2/images/{id}")).await;
        assert_eq!(api["size"], *bytes);
        let samples = on(id, "image.size");
        assert_eq!(samples.len(), 1, "one image.size sample for {id}");
        check(&agent, &samples[0], &oracle["image.size"], &api);
    }
    assert!(on(&queued, "image.size").is_empty(), "an image without a size has no sample");
    for id in &volumes {
        let api = cloud.get(format!("{CINDER}/v3/{}/volumes/{id}", cloud.project)).await;
        let samples = on(id, "volume.size");
        assert_eq!(samples.len(), 1, "one volume.size sample for {id}");
        check(&agent, &samples[0], &oracle["volume.size"], &api["volume"]);
    }

    // A second cycle reports the unchanged images and volumes by id only (a volume
    // another test deleted may still be going away), and says the same of ours.
    let again = run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources).await;
    assert!(again.failures.is_empty(), "{:?}", again.failures);
    assert!(output.changed_resources >= sized.len() + 1 + volumes.len(), "the first cycle reports everything in full");
    assert!(again.changed_resources <= 3, "{} resources reported changed again", again.changed_resources);
    let ours = |samples: &[Sample]| -> Vec<(pollen_host::registry::ResourceHandle, f64)> {
        let mut ids: Vec<&String> = sized.iter().map(|(id, _)| id).chain(&volumes).collect();
        ids.sort();
        let mut found: Vec<_> = samples
            .iter()
            .filter(|s| ids.binary_search(&&agent.registry.resource(s.resource).unwrap().id.to_string()).is_ok())
            .map(|s| (s.resource, s.volume))
            .collect();
        found.sort_by_key(|(handle, _)| *handle);
        found
    };
    assert_eq!(ours(&again.samples[0]), ours(&output.samples[0]), "the same resources, the same volumes");

    for (id, _) in &sized {
        cloud.delete(format!("{GLANCE}/v2/images/{id}")).await;
    }
    cloud.delete(format!("{GLANCE}/v2/images/{queued}")).await;
    for id in &volumes {
        cloud.delete(format!("{CINDER}/v3/{}/volumes/{id}", cloud.project)).await;
    }
}

/// Snapshots of a volume Cinder's volume service made `available`: polled as
/// Ceilometer's `volume.snapshot.size`.
#[tokio::test(flavor = "multi_thread")]
async fn snapshots_are_polled_with_ceilometer_s_names_owners_and_metadata() {
    if !openstack_is_up() {
        return;
    }
    let _cloud = one_at_a_time().await;
    let cloud = Cloud::connect().await;
    let fields = json!({"name": "pollen-snapshot", "description": "made by a test", "metadata": {"k": "v"}});
    let made = cloud.of_a_volume(1, "snapshot", fields).await;
    assert_eq!(made.status, "available");

    let api = cloud.get(made.url()).await;
    check_polled("cinder_snapshots", "volume_snapshot_size", "volume.snapshot.size", &api["snapshot"]).await;
    cloud.remove(made).await;
}

/// A backup of a volume, polled as Ceilometer's `volume.backup.size` whatever its
/// status (here the backup service cannot read the fake driver's volumes, so the
/// backup ends in `error`; it still holds its size, and Ceilometer still polls it).
#[tokio::test(flavor = "multi_thread")]
async fn backups_are_polled_with_ceilometer_s_names_owners_and_metadata() {
    if !openstack_is_up() {
        return;
    }
    let _cloud = one_at_a_time().await;
    let cloud = Cloud::connect().await;
    let made = cloud.of_a_volume(2, "backup", json!({"name": "pollen-backup", "description": "made by a test"})).await;
    assert!(["available", "error"].contains(&made.status.as_str()), "backup {}: {}", made.id, made.status);

    let api = cloud.get(made.url()).await;
    assert_eq!(api["backup"]["size"], 2, "a backup holds its volume's size");
    assert!(api["backup"]["user_id"].is_string() && api["backup"]["os-backup-project-attr:project_id"].is_string());
    check_polled("cinder_backups", "volume_backup_size", "volume.backup.size", &api["backup"]).await;
    cloud.remove(made).await;
}

/// Cinder's pools and services, polled as Ceilometer's
/// `volume.provider.pool.capacity.*` and `volume.service.health`: every sample checked
/// against what the API says of the pool or service, with the table's keys.
#[tokio::test(flavor = "multi_thread")]
async fn pools_and_services_are_polled_as_ceilometer_computes_them() {
    if !openstack_is_up() {
        return;
    }
    let cloud = Cloud::connect().await;
    let base = format!("{CINDER}/v3/{}", cloud.project);
    let workspace = Workspace::new(&[
        central("cinder_pools"),
        central("volume_pool_capacity"),
        central("cinder_services"),
        central("volume_service_health"),
    ]);
    let agent = with_account(None, &granted(&["cinder_pools", "cinder_services"]));
    let agent = workspace.polling_agent(&agent, "meters: ['volume.provider.*', volume.service.health]");
    // The other tests of this file create and delete volumes meanwhile, which moves a
    // pool's allocated capacity: the cycle counts only when the pools read the same
    // figures just before and just after it.
    let pools_url = format!("{base}/scheduler-stats/get_pools?detail=True");
    let mut attempts = 0;
    let (output, pools) = loop {
        attempts += 1;
        let before = cloud.get(pools_url.clone()).await;
        let output = run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources).await;
        let after = cloud.get(pools_url.clone()).await;
        if pool_figures(&before) == pool_figures(&after) {
            break (output, after);
        }
        assert!(attempts < 30, "the pools kept changing across {attempts} cycles: {before} then {after}");
    };
    assert!(output.failures.is_empty(), "{:?}", output.failures);
    let oracle = oracle();
    let polled: BTreeMap<(String, String), &Sample> = output.samples[0]
        .iter()
        .map(|s| {
            let meter = agent.registry.meter(s.meter).unwrap().name.clone();
            ((meter, agent.registry.resource(s.resource).unwrap().id.to_string()), s)
        })
        .collect();
    let keys_of = |meter: &str| {
        let mut keys: Vec<String> = oracle[meter].metadata.iter().map(|(k, _)| k.clone()).collect();
        keys.sort();
        keys
    };

    let pools = pools["pools"].as_array().unwrap();
    assert!(!pools.is_empty(), "Cinder's volume service reports its pool");
    for pool in pools {
        let name = pool["name"].as_str().unwrap();
        let caps = &pool["capabilities"];
        let number = |key: &str| caps[key].as_f64();
        let provisioned = number("provisioned_capacity_gb").filter(|p| *p != 0.0);
        let expected = [
            ("total", number("total_capacity_gb")),
            ("free", number("free_capacity_gb")),
            ("provisioned", provisioned),
            ("allocated", number("allocated_capacity_gb")),
        ];
        for (kind, volume) in expected {
            let meter = format!("volume.provider.pool.capacity.{kind}");
            let row = &oracle[&meter];
            let sample = polled.get(&(meter.clone(), name.to_string()));
            assert_eq!(sample.map(|s| s.volume), volume, "{meter} of {name} (capabilities {caps})");
            let Some(sample) = sample else { continue };
            let resource = agent.registry.resource(sample.resource).unwrap();
            assert_eq!((resource.user_id(), resource.project_id()), (None, None));
            let metadata = resource.merged_metadata();
            assert_eq!(metadata.keys().cloned().collect::<Vec<_>>(), keys_of(&meter), "{meter} metadata keys");
            assert_eq!(metadata["provider"], name.split('#').next().unwrap(), "{}", row.unit);
            assert_eq!(metadata["pool_name"], caps["pool_name"]);
            assert_eq!((row.kind.as_str(), row.unit.as_str()), ("gauge", "GiB"));
        }
    }

    let services = cloud.get(format!("{base}/os-services")).await;
    let services = services["services"].as_array().unwrap();
    assert!(services.len() >= 3, "scheduler, volume and backup: {services:?}");
    for service in services {
        let id = format!("{}@{}", service["binary"].as_str().unwrap(), service["host"].as_str().unwrap());
        let sample = polled[&("volume.service.health".to_string(), id.clone())];
        let up = if service["state"] == "up" { 1.0 } else { 0.0 };
        assert_eq!(sample.volume, up, "{id}");
        let metadata = agent.registry.resource(sample.resource).unwrap().merged_metadata();
        assert_eq!(metadata.keys().cloned().collect::<Vec<_>>(), keys_of("volume.service.health"));
        for key in ["binary", "host", "status", "zone"] {
            assert_eq!(metadata[key], service[key], "{id} `{key}`");
        }
    }
}

/// What the pool meters read of each pool in a `get_pools?detail=True` answer (its
/// report's timestamp left out, as it moves without the figures moving).
fn pool_figures(pools: &Value) -> Vec<(Value, [Value; 4])> {
    let keys = ["total_capacity_gb", "free_capacity_gb", "provisioned_capacity_gb", "allocated_capacity_gb"];
    let pools = pools["pools"].as_array().map(Vec::as_slice).unwrap_or_default();
    pools.iter().map(|pool| (pool["name"].clone(), keys.map(|key| pool["capabilities"][key].clone()))).collect()
}

/// A service that answers every request with the masked tail of the token it carried
/// (see [`credentials_stay_with_the_host`]), then a line that is no secret.
fn token_echo(control: &'static str) -> (u16, Tokens) {
    catalog_stub(move |_, token| ("200 OK", format!("{}\n{control}\n", needle(token.get(TAIL..).unwrap_or_default()))))
}

/// The password and the token never reach a plugin, the log or a sample. A plugin
/// granted `openstack` reads the catalog, then fetches a catalog endpoint (the host
/// adds the token; the service answers with the token it got, masked), and searches
/// all its linear memory, freed allocations included: neither the password nor the
/// token is there, though a line of the same answer is.
#[tokio::test(flavor = "multi_thread")]
async fn credentials_stay_with_the_host() {
    if !openstack_is_up() {
        return;
    }
    let cloud = Cloud::connect().await;
    const CONTROL: &str = "pollen-control-line-of-the-answer";
    let (port, tokens) = token_echo(CONTROL);
    let stub = cloud.register(&format!("http://127.0.0.1:{port}")).await;
    let needles = [needle(&PASSWORD[TAIL..]), needle(CONTROL)].join(",");
    let workspace = Workspace::new(&[hostile("memory_scan")]);
    let scan = format!(
        "    memory_scan:\n      grants: [openstack]\n      params: {{service: {}, needles: \"{needles}\"}}\n",
        stub.service_type
    );
    let agent = workspace.polling_agent(&with_account(Some(&stub.region), &scan), "meters: ['test.memory.*']");
    let output = run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources).await;
    cloud.unregister(stub).await;
    assert!(output.failures.is_empty(), "{:?}", output.failures);
    let mut found = BTreeMap::new();
    for sample in &output.samples[0] {
        let resource = agent.registry.resource(sample.resource).unwrap();
        let text = serde_json::to_string(&resource.merged_metadata()).unwrap();
        assert!(!text.contains(&PASSWORD[TAIL..]), "a sample carries the password");
        found.insert(resource.id.to_string(), sample.volume);
    }
    let tokens = tokens.lock().unwrap().clone();
    assert!(
        matches!(tokens.as_slice(), [token] if token.len() > TAIL + 32),
        "the host added a token (lengths {:?})",
        tokens.iter().map(String::len).collect::<Vec<_>>()
    );
    assert!(found["memory"] >= 1024.0 * 1024.0, "the whole memory is searched: {found:?}");
    assert!(found["needle-1"] >= 1.0, "a line of the answer is found: {found:?}");
    assert_eq!(found["needle-0"], 0.0, "the password is in the plugin's memory");
    assert_eq!(found["needle-2"], 0.0, "the token is in the plugin's memory");
}

/// `pollen poll --once --polling-namespaces central` with Ceilometer 27's own
/// `polling.yaml` and a `ceilometer.conf`, as `ceilometer-polling --polling-namespaces
/// central --config-file ceilometer.conf` would be run.
fn poll_central(conf: Option<&std::path::Path>, command: &str) -> std::process::Output {
    let mut pollen = pollen_command();
    pollen
        .args([command, "--polling-namespaces", "central", "--polling"])
        .arg(repo().join("tests/data/ceilometer/polling-27.0.0.yaml"))
        .arg("--plugin-dir")
        .arg(repo().join("plugins/dist-central"));
    if command == "poll" {
        pollen.arg("--once");
    }
    if let Some(conf) = conf {
        pollen.arg("--config-file").arg(conf);
    }
    for variable in ["OS_AUTH_URL", "OS_USERNAME", "OS_PASSWORD", "OS_PROJECT_NAME", "OS_CLOUD"] {
        pollen.env_remove(variable);
    }
    pollen.output().expect("pollen runs")
}

#[tokio::test(flavor = "multi_thread")]
async fn ceilometer_s_central_files_run_unchanged() {
    if !openstack_is_up() {
        return;
    }
    let _cloud = one_at_a_time().await;
    let cloud = Cloud::connect().await;
    let volume = cloud.volume(&format!("pollen-{}", uuid::Uuid::new_v4().simple()), 3).await;
    let dir = tempfile::tempdir().unwrap();
    let output = poll_central(Some(&ceilometer_conf(dir.path(), PASSWORD, "")), "poll");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let samples = json_lines(&String::from_utf8_lossy(&output.stdout));
    let ours: Vec<&Value> = samples.iter().filter(|s| s["resource_id"] == volume.as_str()).collect();
    assert_eq!(ours.len(), 1, "{stderr}");
    assert_eq!(
        (&ours[0]["name"], &ours[0]["unit"], &ours[0]["volume"]),
        (&json!("volume.size"), &json!("GiB"), &json!(3.0))
    );
    assert_eq!(ours[0]["project_id"], cloud.project.as_str());
    assert!(!stderr.contains(PASSWORD), "the log shows the password: {stderr}");
    cloud.delete(format!("{CINDER}/v3/{}/volumes/{volume}", cloud.project)).await;
}

#[test]
fn missing_credentials_are_a_validate_error_naming_the_option() {
    let output = poll_central(None, "validate");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("grants `openstack`, but the agent has no service credentials"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("ceilometer.conf");
    std::fs::write(&conf, "[service_credentials]\nauth_url = http://127.0.0.1:5000/v3\nusername = ceilometer\n")
        .unwrap();
    let output = poll_central(Some(&conf), "validate");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    for option in ["agent.openstack.password", "agent.openstack.project_name"] {
        assert!(stderr.contains(option), "{option}: {stderr}");
    }
    assert!(stderr.contains("[service_credentials] of"), "names where they came from: {stderr}");
}

/// Keystone refusing the credentials costs the central meters, not the agent: the
/// cycle runs, says why once, and never prints the password.
#[test]
fn refused_credentials_fail_the_cycle_with_keystone_s_reason() {
    if !openstack_is_up() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let wrong = "not-the-password-4711";
    let output = poll_central(Some(&ceilometer_conf(dir.path(), wrong, "")), "poll");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "the discoverers failed: {stderr}");
    // Three discoverers (volumes, volume_snapshots, volume_backups) failed: one line.
    assert_eq!(stderr.matches("refused the service credentials (401)").count(), 1, "{stderr}");
    assert!(stderr.contains("cinder_backups, cinder_snapshots, cinder_volumes"), "{stderr}");
    assert!(!stderr.contains(wrong), "the log shows the password: {stderr}");
}

/// The shipped `central.yaml` is valid as it is (its credentials are those of
/// `scripts/openstack.sh`) and polls the cloud.
#[test]
fn the_shipped_central_pipeline_polls_the_cloud() {
    let output = pollen_command().args(["validate", "--config"]).arg(repo().join("central.yaml")).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    if !openstack_is_up() {
        return;
    }
    let output =
        pollen_command().args(["poll", "--once", "--config"]).arg(repo().join("central.yaml")).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains(PASSWORD), "the log shows the password: {stderr}");
}

/// A stub service on 127.0.0.1 that answers 401 to its first request and 200 to the
/// others, and keeps the `X-Auth-Token` of each.
fn refusing_once() -> (u16, Tokens) {
    catalog_stub(|seen, _| if seen == 1 { ("401 Unauthorized", String::new()) } else { ("200 OK", "ok".into()) })
}

/// A plugin granted `openstack` reaches a catalog endpoint without an `allowed_hosts`
/// entry; the host puts the token on its request, and when the service refuses it
/// (401) authenticates again and sends the request once more with the new one.
#[tokio::test(flavor = "multi_thread")]
async fn catalog_requests_carry_the_token_and_a_401_renews_it() {
    if !openstack_is_up() {
        return;
    }
    let cloud = Cloud::connect().await;
    let (port, seen) = refusing_once();
    let url = format!("http://127.0.0.1:{port}");
    let stub = cloud.register(&url).await;
    let region = stub.region.clone();
    let workspace = Workspace::new(&[builtin("local_instances"), hostile("http_probe")]);
    let plugins = format!(
        "    local_instances: {{grants: [hypervisor]}}\n    http_probe:\n      grants: [openstack]\n      params: {{url: \"{url}/v1/things\"}}\n"
    );
    let agent_extra = with_account(Some(&region), &plugins);
    let agent = workspace.polling_agent(&agent_extra, "meters: ['test.http.*']");
    let output = run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources).await;

    cloud.unregister(stub).await;
    assert!(output.failures.is_empty(), "{:?}", output.failures);
    let statuses: Vec<f64> = output.samples[0]
        .iter()
        .filter(|s| agent.registry.meter(s.meter).unwrap().name == "test.http.status")
        .map(|s| s.volume)
        .collect();
    assert_eq!(statuses, [200.0], "the plugin saw the answer to the request sent again");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "sent twice: {seen:?}");
    assert!(seen.iter().all(|token| token.len() > 20), "both carried a token: {seen:?}");
    assert_ne!(seen[0], seen[1], "the second carried a new token");
}

/// Ceilometer's `endpoint:<type>` and `tenant` discoveries: the parameter of a
/// `name:param` entry reaches the discoverer (each has an instance of its own), and a
/// pollster polls the endpoints found; the tenants are Keystone's projects.
#[tokio::test(flavor = "multi_thread")]
async fn endpoint_and_tenant_discoveries_find_the_catalog_s_endpoints_and_the_projects() {
    if !openstack_is_up() {
        return;
    }
    let workspace =
        Workspace::new(&[central("keystone_endpoints"), central("keystone_tenants"), hostile("http_probe")]);
    let plugins = format!(
        "{}    http_probe:\n      grants: [openstack]\n      params: {{url: \"{GLANCE}/v2/images?limit=1\"}}\n",
        granted(&["keystone_endpoints", "keystone_tenants"])
    );
    let agent_extra = with_account(Some("RegionOne"), &plugins);
    let agent =
        workspace.polling_agent(&agent_extra, "meters: [test.http.status]\n    discovery: [\"endpoint:image\"]");
    let output = run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources).await;
    assert!(output.failures.is_empty(), "{:?}", output.failures);
    let polled: Vec<(String, f64)> = output.samples[0]
        .iter()
        .map(|s| (agent.registry.resource(s.resource).unwrap().id.to_string(), s.volume))
        .collect();
    assert_eq!(polled, [(GLANCE.to_string(), 200.0)], "one sample, on the image endpoint, its request authenticated");

    let discover = |name: &'static str, param: Option<&'static str>| {
        let plugin = agent.plugins.discoverers[name].clone();
        let snapshot = agent.hypervisor.cycle();
        tokio::task::spawn_blocking(move || plugin.discover(snapshot, param))
    };
    let ids = |found: pollen_host::plugin::Discovered| -> Vec<String> {
        found.resources.iter().map(|(_, r)| r.id.to_string()).collect()
    };
    let volume = ids(discover("endpoint", Some("volumev3")).await.unwrap().expect("volumev3 endpoints"));
    let cloud = Cloud::connect().await;
    assert_eq!(volume, [format!("{CINDER}/v3/{}", cloud.project)]);
    assert!(ids(discover("endpoint", Some("no-such-service")).await.unwrap().unwrap()).is_empty());
    let error = discover("endpoint", None).await.unwrap().err().expect("a type is needed");
    assert!(error.to_string().contains("endpoint:<type>"), "{error}");

    let tenants = ids(discover("tenant", None).await.unwrap().expect("projects"));
    let projects = cloud.get(format!("{KEYSTONE}/projects")).await;
    let mut expected: Vec<String> =
        projects["projects"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_string()).collect();
    let mut tenants = tenants;
    expected.sort();
    tenants.sort();
    assert_eq!(tenants, expected, "every domain's projects");
}

/// `pollen plugins inspect` shows a central plugin's OpenStack and HTTP imports and
/// whether the pipeline grants them (the catalog's endpoints come with `openstack`).
#[test]
fn inspect_shows_the_openstack_and_http_imports_and_their_grants() {
    let inspect = |config: Option<&str>| -> Value {
        let mut command = pollen_command();
        command.args(["plugins", "inspect", "--json"]).arg(repo().join("plugins/dist-central/glance_images.wasm"));
        if let Some(config) = config {
            command.arg("--config").arg(repo().join(config));
        }
        command.env_remove("OS_AUTH_URL");
        let output = command.current_dir(std::env::temp_dir()).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let grant_of = |info: &Value, prefix: &str| -> (Value, Value) {
        let import =
            info["imports"].as_array().unwrap().iter().find(|i| i["name"].as_str().unwrap().starts_with(prefix));
        let import = import.unwrap_or_else(|| panic!("no {prefix} import: {info}"));
        (import["grant"].clone(), import["verdict"].clone())
    };
    let granted = inspect(Some("central.yaml"));
    assert_eq!(granted["kind"], "discoverer");
    assert_eq!(grant_of(&granted, "pollen:plugin/openstack@"), (json!("openstack"), json!("granted")));
    assert_eq!(
        grant_of(&granted, "wasi:http/outgoing-handler@"),
        (json!("http"), json!("granted")),
        "through openstack"
    );
    // Without a pipeline file, a built-in central discoverer has its default grant.
    let bare = inspect(None);
    assert_eq!(grant_of(&bare, "pollen:plugin/openstack@"), (json!("openstack"), json!("granted")));
    assert_eq!(grant_of(&bare, "wasi:http/outgoing-handler@"), (json!("http"), json!("granted")));
    let detail =
        bare["imports"].as_array().unwrap().iter().find(|i| i["grant"] == "openstack").unwrap()["detail"].clone();
    assert_eq!(detail, "granted: openstack (default)");
}
