//! Ceilometer's dynamic pollsters (issue 17), run by the `dynamic` plugin against the
//! real Keystone, Glance and Cinder of `scripts/openstack.sh` and RabbitMQ's
//! management API, each sample checked against what the API itself returns; and
//! hostile definitions (paging that loops or never ends, a 100 MB response, Python's
//! internals, huge repetitions), each refused or bounded while the other pollsters go on.

mod common;

use common::*;
use pollen_host::config;
use pollen_host::pipeline::cycle::run_cycle;
use pollen_host::pipeline::Agent;
use pollen_host::sample::Sample;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Writes `definitions` as `pollsters.d/<file>` in the workspace.
fn write_definitions(workspace: &Workspace, file: &str, definitions: &str) {
    let dir = workspace.path().join("pollsters.d");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(file), definitions).unwrap();
}

/// The `agent` lines of a central agent reading the workspace's `pollsters.d`,
/// followed by `agent_lines`.
fn reading_definitions(agent_lines: &str) -> String {
    format!("  pollsters_definitions_dirs: [pollsters.d]\n  polling_namespaces: [central]\n{agent_lines}")
}

/// A central agent of the workspace reading its `pollsters.d`, with `agent_lines`,
/// polling `meters` once a minute.
fn dynamic_agent(workspace: &Workspace, agent_lines: &str, meters: &str) -> Agent {
    let path =
        workspace.write_pipeline(&reading_definitions(agent_lines), &stdout_source(&format!("meters: {meters}")));
    let mut pipeline = config::load(&path).expect("pipeline");
    config::dynamic::resolve(&mut pipeline, None, "central").expect("definitions");
    Agent::build(pipeline).expect("agent")
}

/// Samples by meter name, each with its resource's id.
type Found = BTreeMap<String, Vec<(String, Sample)>>;

/// One cycle: its samples by meter name, and its failures (for the caller to check
/// once it has removed what it made).
async fn poll(agent: &Agent) -> (Found, Vec<String>) {
    let output = run_cycle(&agent.plugins, &agent.hypervisor, &agent.registry, &agent.pipeline.sources).await;
    let failures = output.failures.iter().map(|f| format!("{f:?}")).collect();
    let mut found: BTreeMap<String, Vec<(String, Sample)>> = BTreeMap::new();
    for sample in &output.samples[0] {
        let meter = agent.registry.meter(sample.meter).unwrap().name.clone();
        let id = agent.registry.resource(sample.resource).unwrap().id.to_string();
        found.entry(meter).or_default().push((id, *sample));
    }
    (found, failures)
}

/// A workspace with the central plugins the dynamic pollsters need, and
/// `definitions` as `pollsters.d/<file>`.
fn workspace(file: &str, definitions: &str) -> Workspace {
    let workspace = Workspace::new(&[central("dynamic"), central("keystone_endpoints")]);
    write_definitions(&workspace, file, definitions);
    workspace
}

const GRANTED: &str = "    dynamic: {grants: [openstack]}\n    keystone_endpoints: {grants: [openstack]}\n";

fn metadata(agent: &Agent, sample: &Sample) -> Value {
    json!(agent.registry.resource(sample.resource).unwrap().merged_metadata())
}

#[tokio::test(flavor = "multi_thread")]
async fn keystone_s_projects_and_users_are_polled_as_the_api_lists_them() {
    if !openstack_is_up() {
        return;
    }
    let _cloud = one_at_a_time().await;
    let cloud = Cloud::connect().await;
    let definitions = r#"
- name: dynamic.identity.project
  sample_type: gauge
  unit: project
  value_attribute: enabled
  value_mapping: {true: 1}
  default_value: 0
  endpoint_type: identity
  url_path: /v3/projects
  response_entries_key: projects
  next_sample_url_attribute: links.next
  project_id_attribute: id
  metadata_fields: [name, domain_id, "tags | ','.join(value)", "description | value or ''"]
  metadata_mapping: {name: display_name}
  preserve_mapped_metadata: false
- name: dynamic.identity.user
  sample_type: gauge
  unit: user
  value_attribute: ". | 1 if value.get('enabled', True) else 0"
  endpoint_type: identity
  url_path: "'/v3/users'"
  response_entries_key: users
  metadata_fields: ["name | value.upper()", domain_id]
"#;
    let workspace = workspace("test.yaml", definitions);
    let agent = dynamic_agent(&workspace, &with_account(None, GRANTED), "['dynamic.identity.*']");
    let (found, failures) = poll(&agent).await;
    assert!(failures.is_empty(), "{failures:?}");

    let projects = cloud.get(format!("{KEYSTONE}/projects")).await;
    let projects = projects["projects"].as_array().unwrap();
    let polled = &found["dynamic.identity.project"];
    assert_eq!(polled.len(), projects.len(), "one sample per project");
    for project in projects {
        let id = project["id"].as_str().unwrap();
        let (_, sample) = polled.iter().find(|(polled, _)| polled == id).unwrap_or_else(|| panic!("project {id}"));
        let enabled = if project["enabled"] == json!(true) { 1.0 } else { 0.0 };
        assert_eq!(sample.volume, enabled);
        let resource = agent.registry.resource(sample.resource).unwrap();
        assert_eq!(resource.project_id(), Some(id), "project_id_attribute: id");
        assert_eq!(resource.user_id(), None, "no user_id in a project");
        let tags: Vec<&str> = project["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        assert_eq!(
            metadata(&agent, sample),
            json!({
                "display_name": project["name"],
                "domain_id": project["domain_id"],
                "tags | ','.join(value)": tags.join(","),
                "description | value or ''": project["description"].as_str().unwrap_or(""),
            })
        );
    }
    let users = cloud.get(format!("{KEYSTONE}/users")).await;
    let users = users["users"].as_array().unwrap();
    let polled = &found["dynamic.identity.user"];
    assert_eq!(polled.len(), users.len());
    for user in users {
        let id = user["id"].as_str().unwrap();
        let (_, sample) = polled.iter().find(|(polled, _)| polled == id).unwrap();
        assert_eq!(sample.volume, 1.0);
        let name = user["name"].as_str().unwrap().to_uppercase();
        assert_eq!(metadata(&agent, sample), json!({"name | value.upper()": name, "domain_id": user["domain_id"]}));
    }
    let meter = agent.registry.meter(found["dynamic.identity.user"][0].1.meter).unwrap();
    assert_eq!((meter.kind.as_str(), meter.unit.as_str()), ("gauge", "user"));
}

#[tokio::test(flavor = "multi_thread")]
async fn glance_s_images_are_read_page_by_page() {
    if !openstack_is_up() {
        return;
    }
    let _cloud = one_at_a_time().await;
    let cloud = Cloud::connect().await;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let sizes = [Some(3usize), Some(5), None];
    let mut ours = Vec::new();
    for (index, size) in sizes.iter().enumerate() {
        ours.push((cloud.image(&format!("pollen-dynamic-{tag}-{index}"), *size).await, *size));
    }
    let definitions = r#"
- name: dynamic.image.size
  sample_type: gauge
  unit: B
  value_attribute: size
  skip_sample_values: [null]
  endpoint_type: image
  url_path: "v2/images?limit=1"
  response_entries_key: images
  next_sample_url_attribute: next
  project_id_attribute: owner
  metadata_fields: [name, status, container_format]
"#;
    let workspace = workspace("test.yaml", definitions);
    let agent = dynamic_agent(&workspace, &with_account(None, GRANTED), "[dynamic.image.size]");
    let (found, failures) = poll(&agent).await;
    let listed = cloud.get(format!("{GLANCE}/v2/images?limit=1000")).await;
    for (id, _) in &ours {
        cloud.delete(format!("{GLANCE}/v2/images/{id}")).await;
    }
    assert!(failures.is_empty(), "{failures:?}");
    let polled = &found["dynamic.image.size"];
    // Every image with a size, each once: one page of one image at a time.
    let sized: BTreeSet<&str> = listed["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| !i["size"].is_null())
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    let ids: Vec<&str> = polled.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids.iter().copied().collect::<BTreeSet<_>>(), sized);
    assert_eq!(ids.len(), sized.len(), "an image polled twice: {ids:?}");
    for (id, size) in &ours {
        let sample = polled.iter().find(|(polled, _)| polled == id);
        match size {
            None => assert!(sample.is_none(), "a queued image's null size is skipped"),
            Some(size) => {
                let (_, sample) = sample.unwrap();
                assert_eq!(sample.volume, *size as f64);
                let resource = agent.registry.resource(sample.resource).unwrap();
                assert_eq!(resource.project_id(), Some(cloud.project.as_str()));
                assert_eq!(metadata(&agent, sample)["status"], "active");
                assert_eq!(metadata(&agent, sample)["container_format"], "bare");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cinder_s_volumes_of_every_project_follow_the_links() {
    if !openstack_is_up() {
        return;
    }
    let _cloud = one_at_a_time().await;
    let cloud = Cloud::connect().await;
    let base = format!("{CINDER}/v3/{}", cloud.project);
    let mut volumes = Vec::new();
    for size in [1, 2] {
        let id = cloud.volume(&format!("pollen-dynamic-{}", uuid::Uuid::new_v4().simple()), size).await;
        assert_eq!(cloud.settled(format!("{base}/volumes/{id}"), "volume").await, "available");
        volumes.push((id, size));
    }
    let definitions = r#"
- name: dynamic.volume.size
  sample_type: gauge
  unit: GiB
  value_attribute: size
  endpoint_type: volumev3
  url_path: "volumes/detail?all_tenants=True&limit=1"
  headers:
    OpenStack-API-Version: "volume 3.64"
  response_entries_key: volumes
  next_sample_url_attribute: "volumes_links | filter(lambda v: v.get('rel') == 'next', value) | list(value) | value[0] | value.get('href')"
  project_id_attribute: "os-vol-tenant-attr:tenant_id"
  metadata_fields: [status, volume_type, "name | value or ''"]
  metadata_mapping: {status: volume_status}
"#;
    let workspace = workspace("test.yaml", definitions);
    let agent = dynamic_agent(&workspace, &with_account(None, GRANTED), "[dynamic.volume.size]");
    let (found, failures) = poll(&agent).await;
    let listed = cloud.get(format!("{base}/volumes/detail?all_tenants=True")).await;
    for (id, _) in &volumes {
        cloud.delete(format!("{base}/volumes/{id}")).await;
    }
    assert!(failures.is_empty(), "{failures:?}");
    let polled = &found["dynamic.volume.size"];
    let listed = listed["volumes"].as_array().unwrap();
    assert_eq!(polled.len(), listed.len(), "each volume once, a page each");
    for volume in listed {
        let id = volume["id"].as_str().unwrap();
        let (_, sample) = polled.iter().find(|(polled, _)| polled == id).unwrap();
        assert_eq!(Some(sample.volume), volume["size"].as_f64());
        let resource = agent.registry.resource(sample.resource).unwrap();
        assert_eq!(resource.project_id(), volume["os-vol-tenant-attr:tenant_id"].as_str());
        assert_eq!(resource.user_id(), volume["user_id"].as_str());
        assert_eq!(
            metadata(&agent, sample),
            json!({"status": volume["status"], "volume_status": volume["status"], "volume_type": volume["volume_type"],
                   "name | value or ''": volume["name"].as_str().unwrap_or("")})
        );
    }
    for (id, size) in &volumes {
        let (_, sample) = polled.iter().find(|(polled, _)| polled == id).unwrap();
        assert_eq!(sample.volume, *size as f64);
    }
}

/// The password of RabbitMQ's management API, in a file of the workspace.
fn rabbit_credential(workspace: &Workspace) -> String {
    let file = workspace.path().join("rabbit-password");
    std::fs::write(&file, "guest\n").unwrap();
    format!(
        "  credentials:\n    rabbitmq:\n      hosts: [\"http://127.0.0.1:15672\"]\n      basic: {{username: guest, password: {{file: {}}}}}\n",
        file.display()
    )
}

const RABBIT: &str = r#"
- name: dynamic.rabbitmq.listener.port.{protocol}
  sample_type: gauge
  unit: port
  value_attribute: "[listeners].port"
  url_path: http://127.0.0.1:15672/api/overview
  module: requests.auth
  authentication_object: HTTPBasicAuth
  authentication_parameters: "guest, not-this-one"
  response_entries_key: "."
  resource_id_attribute: node
- name: dynamic.rabbitmq.queue.messages
  sample_type: gauge
  unit: message
  value_attribute: ". | value.get('messages') or 0"
  url_path: http://127.0.0.1:15672/api/queues
  module: requests.auth
  authentication_object: HTTPBasicAuth
  resource_id_attribute: ". | value['vhost'] + '/' + value['name']"
  metadata_fields: [vhost, name, durable]
"#;

/// A non-OpenStack API with basic auth held by the host: RabbitMQ's management API.
/// Its listeners give a multi-metric pollster one meter per protocol.
#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_s_management_api_is_polled_with_the_agent_s_basic_credential() {
    if std::net::TcpStream::connect("127.0.0.1:15672").is_err() {
        assert!(std::env::var("CI").is_err(), "CI: RabbitMQ's management API is down (`scripts/setup.sh`)");
        eprintln!("skipped: RabbitMQ's management API is down; run `scripts/setup.sh`");
        return;
    }
    let workspace = Workspace::new(&[central("dynamic")]);
    write_definitions(&workspace, "rabbit.yaml", RABBIT);
    // `openstack` too: the plugin looks endpoints up for OpenStack definitions.
    let plugins = "    dynamic:\n      grants: [openstack, http]\n      allowed_hosts: [\"http://127.0.0.1:15672\"]\n      credentials: [rabbitmq]\n";
    let agent = reading_definitions(&format!("{}{}", rabbit_credential(&workspace), with_account(None, plugins)));
    let path = workspace.write_pipeline(&agent, &stdout_source("meters: ['dynamic.rabbitmq.*']"));
    let mut pipeline = config::load(&path).expect("pipeline");
    config::dynamic::resolve(&mut pipeline, None, "central").expect("definitions");
    assert!(
        pipeline.warnings.iter().any(|w| w.to_string().contains("authentication_parameters: is ignored")),
        "{:?}",
        pipeline.warnings
    );
    let agent = Agent::build(pipeline).expect("agent");
    let (found, failures) = poll(&agent).await;
    assert!(failures.is_empty(), "{failures:?}");

    let api = reqwest::Client::new();
    let get =
        |path: &str| api.get(format!("http://127.0.0.1:15672/api/{path}")).basic_auth("guest", Some("guest")).send();
    let overview: Value = get("overview").await.unwrap().json().await.unwrap();
    let queues: Value = get("queues").await.unwrap().json().await.unwrap();
    for listener in overview["listeners"].as_array().unwrap() {
        let meter = format!("dynamic.rabbitmq.listener.port.{}", listener["protocol"].as_str().unwrap());
        let polled = found.get(&meter).unwrap_or_else(|| panic!("{meter} in {:?}", found.keys()));
        assert_eq!(polled.len(), 1);
        assert_eq!(polled[0].0, overview["node"].as_str().unwrap());
        assert_eq!(Some(polled[0].1.volume), listener["port"].as_f64());
        let meter = agent.registry.meter(polled[0].1.meter).unwrap();
        assert_eq!((meter.kind.as_str(), meter.unit.as_str()), ("gauge", "port"));
    }
    let polled = &found["dynamic.rabbitmq.queue.messages"];
    let queues = queues.as_array().unwrap();
    assert_eq!(polled.len(), queues.len());
    for queue in queues {
        let id = format!("{}/{}", queue["vhost"].as_str().unwrap(), queue["name"].as_str().unwrap());
        let (_, sample) = polled.iter().find(|(polled, _)| *polled == id).unwrap();
        assert_eq!(sample.volume, queue["messages"].as_f64().unwrap_or(0.0));
        assert_eq!(
            metadata(&agent, sample),
            json!({"vhost": queue["vhost"], "name": queue["name"], "durable": queue["durable"]})
        );
    }

    // Without the credential, `validate` says what to write.
    let plugins = "    dynamic:\n      grants: [openstack, http]\n      allowed_hosts: [\"http://127.0.0.1:15672\"]\n";
    workspace.write_pipeline(
        &reading_definitions(&with_account(None, plugins)),
        &stdout_source("meters: ['dynamic.rabbitmq.*']"),
    );
    let validated = pollen_command()
        .args(["validate", "--config", "pipeline.yaml"])
        .current_dir(workspace.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&validated.stderr);
    assert_eq!(validated.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("rabbit.yaml: pollster `dynamic.rabbitmq.queue.messages`, url_path: asks for HTTP basic auth (`requests.auth.HTTPBasicAuth`) at http://127.0.0.1:15672: give a `basic` credential"), "{stderr}");
}

/// A credential of another API never reaches the plugin: `memory_scan`, granted a
/// basic credential for a stub, fetches it (the host adds the header; the stub answers
/// with the header it got, masked) and searches all its linear memory: neither the
/// password nor the header's value is there, though a line of the same answer is.
#[tokio::test(flavor = "multi_thread")]
async fn other_apis_credentials_stay_with_the_host() {
    if !openstack_is_up() {
        return;
    }
    const PASSWORD: &str = "pollen-api-password-of-the-stub";
    const CONTROL: &str = "pollen-control-line-of-the-answer";
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = received.clone();
    let (port, _) = stub_api(move |request, _| {
        let value = request.header("authorization").unwrap_or_default().to_string();
        let answer = format!("{}\n{CONTROL}\n", needle(value.get(TAIL..).unwrap_or_default()));
        kept.lock().unwrap().push(value);
        Answer::Json(answer)
    });
    let workspace = Workspace::new(&[hostile("memory_scan")]);
    let file = workspace.path().join("api-password");
    std::fs::write(&file, PASSWORD).unwrap();
    use base64::Engine as _;
    let header = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("scanner:{PASSWORD}")));
    let needles = [needle(&PASSWORD[TAIL..]), needle(&header[TAIL..]), needle(CONTROL)].join(",");
    let origin = format!("http://127.0.0.1:{port}");
    let agent = format!(
        "  credentials:\n    stub:\n      hosts: [\"{origin}\"]\n      basic: {{username: scanner, password: {{file: {}}}}}\n{}",
        file.display(),
        with_account(
            None,
            &format!("    memory_scan:\n      grants: [openstack, http]\n      allowed_hosts: [\"{origin}\"]\n      credentials: [stub]\n      params: {{url: \"{origin}/needles\", needles: \"{needles}\"}}\n")
        )
    );
    let agent = workspace.polling_agent(&agent, "meters: ['test.memory.*']");
    let (found, failures) = poll(&agent).await;
    assert!(failures.is_empty(), "{failures:?}");
    let volume = |id: &str| found["test.memory.found"].iter().find(|(found, _)| found == id).map(|(_, s)| s.volume);
    assert_eq!(volume("needle-2"), Some(1.0), "a line of the answer is found: {found:?}");
    assert_eq!(volume("needle-0"), Some(0.0), "the password is in the plugin's memory");
    assert_eq!(volume("needle-1"), Some(0.0), "the header is in the plugin's memory");
    assert_eq!(volume("needle-3"), Some(0.0), "the header the stub got is in the plugin's memory");
    assert_eq!(*received.lock().unwrap(), [header], "the host added the credential");
}

/// What a [`stub_api`] answers.
enum Answer {
    Json(String),
    /// A body of this many bytes (announced, then written until the peer leaves).
    Huge(u64),
}

/// An API on a port of its own: `answer(request, requests so far)`; each response
/// has the `Date` of now. Returns its port and the paths it was asked.
fn stub_api(
    answer: impl Fn(&Request, usize) -> Answer + Send + 'static,
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = asked.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let Some(request) = read_request(&mut reader) else { continue };
            let count = {
                let mut asked = kept.lock().unwrap();
                asked.push(request.path.clone());
                asked.len()
            };
            let date = httpdate(std::time::SystemTime::now());
            match answer(&request, count) {
                Answer::Json(body) => {
                    let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ndate: {date}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
                    let _ = stream.write_all(format!("{head}{body}").as_bytes());
                }
                Answer::Huge(size) => {
                    let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ndate: {date}\r\ncontent-length: {size}\r\nconnection: close\r\n\r\n");
                    let _ = stream.write_all(head.as_bytes());
                    let chunk = vec![b' '; 1 << 20];
                    for _ in 0..size >> 20 {
                        if stream.write_all(&chunk).is_err() {
                            break;
                        }
                    }
                }
            }
        }
    });
    (port, asked)
}

/// An IMF-fixdate.
fn httpdate(time: std::time::SystemTime) -> String {
    let seconds = time.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let name = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][month as usize - 1];
    format!("{weekday}, {day:02} {name} {year} {:02}:{:02}:{:02} GMT", rest / 3600, rest / 60 % 60, rest % 60)
}

#[test]
fn http_dates_are_imf_fixdates_the_plugin_reads_back() {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_160_150);
    assert_eq!(httpdate(time), "Tue, 01 Dec 2026 21:22:30 GMT");
    for seconds in [0, 951_782_400, 1_078_056_000, 4_102_444_799] {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds);
        assert_eq!(pollen_dynamic::http_date::parse(&httpdate(time)), Some(seconds), "{}", httpdate(time));
    }
}

/// `extra_metadata_fields`: the project's name from the real Keystone, and a field
/// from a catalog service that counts its requests: a cached response is not asked
/// again on the next cycle, an uncached one is.
#[tokio::test(flavor = "multi_thread")]
async fn extra_metadata_comes_from_child_requests_and_their_cache_is_honoured() {
    if !openstack_is_up() {
        return;
    }
    let _cloud = one_at_a_time().await;
    let cloud = Cloud::connect().await;
    let name = format!("pollen-dynamic-{}", uuid::Uuid::new_v4().simple());
    let image = cloud.image(&name, Some(7)).await;
    let (port, asked) = stub_api(|request, _| {
        let project = request.path.rsplit('/').next().unwrap_or_default();
        Answer::Json(json!({"account": {"id": project, "plan": format!("plan-of-{project}")}}).to_string())
    });
    let stub = cloud.register_beside_the_cloud(&format!("http://127.0.0.1:{port}")).await;
    let definitions = format!(
        r#"
- name: dynamic.image.size
  sample_type: gauge
  unit: B
  value_attribute: size
  skip_sample_values: [null]
  endpoint_type: image
  url_path: "v2/images?limit=1000"
  project_id_attribute: owner
  metadata_fields: [name]
  extra_metadata_fields:
    - name: project_name
      endpoint_type: identity
      url_path: "'/v3/projects/' + str(sample['project_id'])"
      value: name
    - name: plan
      endpoint_type: {service}
      url_path: "'/accounts/' + sample['project_id']"
      value: plan
      extra_metadata_fields_cache_seconds: 3600
    - name: plan_again
      endpoint_type: {service}
      url_path: "'/uncached/' + extra_metadata_captured['plan']"
      value: id
      extra_metadata_fields_cache_seconds: 0
"#,
        service = stub.service_type
    );
    let workspace = workspace("test.yaml", &definitions);
    let agent = dynamic_agent(&workspace, &with_account(Some(&stub.region), GRANTED), "[dynamic.image.size]");
    let (first, first_failures) = poll(&agent).await;
    let after_first = asked.lock().unwrap().clone();
    let (second, second_failures) = poll(&agent).await;
    let after_second = asked.lock().unwrap().clone();
    cloud.delete(format!("{GLANCE}/v2/images/{image}")).await;
    cloud.unregister(stub).await;
    assert!(first_failures.is_empty() && second_failures.is_empty(), "{first_failures:?} {second_failures:?}");

    let project = cloud.get(format!("{KEYSTONE}/projects/{}", cloud.project)).await;
    for found in [&first, &second] {
        let (_, sample) = found["dynamic.image.size"].iter().find(|(id, _)| *id == image).expect("our image");
        // `plan_again` asks `/uncached/<plan>`, whose id the stub answers is that plan.
        let plan = format!("plan-of-{}", cloud.project);
        assert_eq!(
            metadata(&agent, sample),
            json!({"name": name, "project_name": project["project"]["name"],
                   "plan": plan, "plan_again": plan})
        );
    }
    let projects: BTreeSet<String> = after_first.iter().filter(|p| p.starts_with("/accounts/")).cloned().collect();
    let cached = |asked: &[String]| asked.iter().filter(|p| p.starts_with("/accounts/")).count();
    let uncached = |asked: &[String]| asked.iter().filter(|p| p.starts_with("/uncached/")).count();
    assert_eq!(cached(&after_first), projects.len(), "one request per project: {after_first:?}");
    assert_eq!(cached(&after_second), projects.len(), "the second cycle used the cache: {after_second:?}");
    assert!(uncached(&after_second) > uncached(&after_first), "a field of no cache is asked every cycle");
}

/// Hostile definitions against a catalog service: paging that loops, paging that
/// never ends, a 100 MB response, an expression that would make a gigabyte. Each is
/// bounded, with a clear message, and the good definition beside them still polls.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_definitions_are_bounded_and_the_others_go_on() {
    if !openstack_is_up() {
        return;
    }
    let cloud = Cloud::connect().await;
    let (port, asked) = stub_api(|request, _| {
        let path = request.path.as_str();
        let item = |id: &str| json!({"id": id, "v": 1, "name": "n"});
        match path.split('?').next().unwrap_or_default() {
            "/good" => Answer::Json(json!({"items": [item("good")]}).to_string()),
            "/loop" => Answer::Json(json!({"items": [item("loop")], "next": "/loop"}).to_string()),
            "/pages" => {
                let page: u64 = path.rsplit('=').next().and_then(|n| n.parse().ok()).unwrap_or(0);
                let body =
                    json!({"items": [item(&format!("page-{page}"))], "next": format!("/pages?page={}", page + 1)});
                Answer::Json(body.to_string())
            }
            "/huge" => Answer::Huge(100 << 20),
            _ => Answer::Json(json!({"items": [item("repeat")]}).to_string()),
        }
    });
    let stub = cloud.register(&format!("http://127.0.0.1:{port}")).await;
    let definition = |name: &str, path: &str, value: &str| {
        format!(
            "- name: hostile.{name}\n  sample_type: gauge\n  unit: u\n  value_attribute: \"{value}\"\n  endpoint_type: {}\n  url_path: {path}\n  response_entries_key: items\n  next_sample_url_attribute: next\n",
            stub.service_type
        )
    };
    let definitions = [
        definition("good", "/good", "v"),
        definition("loop", "/loop", "v"),
        definition("pages", "/pages?page=0", "v"),
        definition("huge", "/huge", "v"),
        definition("repeat", "/repeat", "name | len(value * 1000000000)"),
    ]
    .concat();
    let workspace = workspace("hostile.yaml", &definitions);
    let agent_lines = reading_definitions(&with_account(Some(&stub.region), GRANTED));
    workspace.write_pipeline(&agent_lines, &stdout_source("meters: ['hostile.*']"));
    // `pollen poll --once` itself: its samples on stdout, what stopped each listing on stderr.
    let output = pollen_command()
        .args(["poll", "--once", "--config", "pipeline.yaml", "--log", "warn"])
        .current_dir(workspace.path())
        .output()
        .unwrap();
    let asked = asked.lock().unwrap().clone();
    cloud.unregister(stub).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let samples = json_lines(&String::from_utf8_lossy(&output.stdout));
    let count = |meter: &str| samples.iter().filter(|s| s["name"] == meter).count();
    assert_eq!(count("hostile.good"), 1, "the good definition still polls: {stderr}");
    assert_eq!(count("hostile.loop"), 1, "the page read before the loop is kept: {stderr}");
    assert_eq!(asked.iter().filter(|p| *p == "/loop").count(), 1, "a page already read is not asked again");
    assert!(stderr.contains("the listing loops: its next page http://127.0.0.1:"), "{stderr}");
    assert_eq!(count("hostile.pages"), 1000, "at most 1000 pages by default");
    assert_eq!(asked.iter().filter(|p| p.starts_with("/pages")).count(), 1000);
    assert!(stderr.contains("more than 1000 pages (the `max_pages` parameter of the dynamic plugin)"), "{stderr}");
    assert_eq!(count("hostile.huge"), 0);
    assert_eq!(output.status.code(), Some(1), "its call failed, and `poll` says so: {stderr}");
    assert!(stderr.contains("dynamic:hostile.huge"), "{stderr}");
    assert!(stderr.contains("response body over the host's limit of 16777216 bytes"), "{stderr}");
    assert_eq!(count("hostile.repeat"), 0);
    assert!(stderr.contains("1 entries gave no sample; the first: `name | len(value * 1000000000)`: repeating the string would make one over 1048576 bytes"), "{stderr}");
}

fn validate(workspace: &Workspace, definitions: &str) -> (Option<i32>, String) {
    write_definitions(workspace, "bad.yaml", definitions);
    workspace
        .write_pipeline(&reading_definitions(&with_account(None, GRANTED)), &stdout_source("meters: ['dynamic.*']"));
    let output = pollen_command()
        .args(["validate", "--config", "pipeline.yaml"])
        .current_dir(workspace.path())
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr),
    )
}

/// `pollen validate` reports every problem of every definition with its file, line
/// and column: Python's internals, a dunder attribute, an unknown key, a shell command.
#[test]
fn validate_reports_each_problem_with_its_file_line_and_column() {
    // With the discoverer its definitions default to (`endpoint`): without it, that
    // is a problem of its own.
    let workspace = Workspace::new(&[central("dynamic"), central("keystone_endpoints")]);
    let (code, text) = validate(
        &workspace,
        r#"- name: dynamic.evil
  sample_type: gauge
  unit: u
  value_attribute: "status | __import__('os').system('id')"
  endpoint_type: compute
  url_path: servers
  metadata_fields:
    - "name | value.__class__.__mro__"
  respone_entries_key: servers
- name: dynamic.shell
  sample_type: gauge
  unit: u
  value_attribute: out
  host_command: "cat /etc/shadow"
"#,
    );
    assert_eq!(code, Some(78), "{text}");
    // As the pipeline names the folder: relative to where `pollen` runs.
    let file = "pollsters.d/bad.yaml";
    for expected in [
        format!("{file}:4:30: pollster `dynamic.evil`, value_attribute: `__import__`: names with double underscores (Python's internals) are refused"),
        format!("{file}:8:21: pollster `dynamic.evil`, metadata_fields[0]: `__class__`: names with double underscores"),
        format!("{file}:9:3: pollster `dynamic.evil`, respone_entries_key: unknown key (did you mean `response_entries_key`?)"),
        format!("{file}:14:17: pollster `dynamic.shell`, host_command: is refused: Pollen runs no command"),
    ] {
        assert!(text.contains(&expected), "missing `{expected}` in:\n{text}");
    }
    let (code, text) = validate(
        &workspace,
        "- name: dynamic.identity.project\n  sample_type: gauge\n  unit: project\n  value_attribute: enabled\n  endpoint_type: identity\n  url_path: /v3/projects\n",
    );
    assert_eq!(code, Some(0), "{text}");
}

/// Keystone's projects, for the tests of `pollen run`.
const PROJECTS: &str = "- name: dynamic.identity.project\n  sample_type: gauge\n  unit: project\n  value_attribute: enabled\n  value_mapping: {true: 1}\n  endpoint_type: identity\n  url_path: /v3/projects\n  response_entries_key: projects\n";
/// Keystone's users.
const USERS: &str = "- name: dynamic.identity.user\n  sample_type: gauge\n  unit: user\n  value_attribute: \". | 1 if value else 0\"\n  endpoint_type: identity\n  url_path: /v3/users\n  response_entries_key: users\n";

/// A pipeline polling the dynamic meters every second into a file; the file.
fn running_pipeline(workspace: &Workspace) -> std::path::PathBuf {
    let out = workspace.path().join("samples.jsonl");
    let rest = format!(
        "sources:\n  - name: dynamic\n    interval: 1\n    meters: ['dynamic.*']\n    sinks: [out]\nsinks:\n  - name: out\n    publishers: ['file://{}']\n",
        out.display()
    );
    workspace.write_pipeline(&reading_definitions(&with_account(None, GRANTED)), &rest);
    out
}

/// Definitions are reloaded on SIGHUP: a broken file keeps the running ones, a new
/// definition is polled after the next reload.
#[test]
fn a_reload_keeps_the_running_definitions_when_the_new_ones_are_broken() {
    if !openstack_is_up() {
        return;
    }
    let workspace = workspace("a.yaml", PROJECTS);
    let out = running_pipeline(&workspace);
    let mut agent = Running::start(&workspace, &[], out);
    agent.wait_for("project samples", |s| s.iter().any(|s| s["name"] == "dynamic.identity.project"));

    write_definitions(&workspace, "b.yaml", "- name: dynamic.identity.user\n  sample_type: gauge\n  unit: user\n  value_attribute: \"enabled | __import__('os')\"\n");
    agent.signal("HUP");
    agent.wait_for_log("the new configuration is refused", 1);
    let before = agent.count("dynamic.identity.project");
    agent.wait_for("more project samples after the refused reload", |s| {
        s.iter().filter(|s| s["name"] == "dynamic.identity.project").count() > before
    });

    write_definitions(&workspace, "b.yaml", USERS);
    agent.signal("HUP");
    agent.wait_for("user samples after the reload", |s| s.iter().any(|s| s["name"] == "dynamic.identity.user"));
    let stderr = agent.stop();
    assert!(stderr.contains("b.yaml:4:"), "the refusal says where: {stderr}");
}

/// With `--watch`, a definition dropped into the folder is polled without a signal.
#[test]
fn watch_loads_a_definition_dropped_into_the_folder() {
    if !openstack_is_up() {
        return;
    }
    let workspace = workspace("a.yaml", PROJECTS);
    let out = running_pipeline(&workspace);
    let mut agent = Running::start(&workspace, &["--watch"], out);
    agent.wait_for("project samples", |s| s.iter().any(|s| s["name"] == "dynamic.identity.project"));
    write_definitions(&workspace, "b.yaml", USERS);
    agent.wait_for("user samples, the new file read", |s| s.iter().any(|s| s["name"] == "dynamic.identity.user"));
    let stderr = agent.stop();
    assert!(stderr.contains("configuration or plugin files changed"), "{stderr}");
}

/// Ceilometer's own files, unchanged: `ceilometer.conf` names the folder of
/// definitions (`[DEFAULT] pollsters_definitions_dirs`), `polling.yaml` selects the
/// dynamic meter, and `--polling-namespaces central` grants the plugin the catalog.
#[test]
fn ceilometer_conf_names_the_definitions_of_ceilometer_s_central_agent() {
    if !openstack_is_up() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let definitions = dir.path().join("pollsters.d");
    std::fs::create_dir_all(&definitions).unwrap();
    std::fs::write(definitions.join("keystone.yaml"), format!("{PROJECTS}  project_id_attribute: id\n")).unwrap();
    let conf =
        ceilometer_conf(dir.path(), PASSWORD, &format!("pollsters_definitions_dirs = {}\n", definitions.display()));
    let polling = dir.path().join("polling.yaml");
    std::fs::write(&polling, "---\nsources:\n    - name: dynamic_pollsters\n      interval: 300\n      meters:\n        - dynamic.identity.project\n").unwrap();
    let output = pollen_command()
        .args(["poll", "--once", "--polling-namespaces", "central", "--polling"])
        .arg(&polling)
        .arg("--config-file")
        .arg(&conf)
        .arg("--plugin-dir")
        .arg(repo().join("plugins/dist-central"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let samples = json_lines(&String::from_utf8_lossy(&output.stdout));
    assert!(!samples.is_empty(), "{stderr}");
    assert!(samples.iter().all(|s| s["name"] == "dynamic.identity.project" && s["unit"] == "project"), "{samples:?}");
    assert!(samples.iter().all(|s| s["resource_id"] == s["project_id"]), "{samples:?}");
}
