//! The OpenStack services of `scripts/openstack.sh` as the central and dynamic
//! pollsters' tests reach them: the agent's account, a client with its token that
//! makes and removes images, volumes and catalog entries, and stub services.

use super::*;
use serde_json::{json, Value};

pub const KEYSTONE: &str = "http://127.0.0.1:5000/v3";
pub const GLANCE: &str = "http://127.0.0.1:9292";
pub const CINDER: &str = "http://127.0.0.1:8776";
/// The central agent's account (`scripts/openstack.sh`).
pub const USER: &str = "ceilometer";
pub const PASSWORD: &str = "pollen-ceilometer";

/// Held by the tests that create resources or count what a cycle found: one at a time,
/// so that none sees another's volumes appear between two cycles.
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static CLOUD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    CLOUD.lock().await
}

pub fn openstack_is_up() -> bool {
    let up =
        ["127.0.0.1:5000", "127.0.0.1:9292", "127.0.0.1:8776"].iter().all(|a| std::net::TcpStream::connect(a).is_ok());
    if !up {
        assert!(
            std::env::var("CI").is_err(),
            "CI: Keystone, Glance or Cinder is down (`scripts/openstack.sh start`, in `make setup`)"
        );
        eprintln!("skipped: Keystone, Glance or Cinder is down; run `scripts/openstack.sh start`");
    }
    up
}

/// A client of the services, with the agent's account's token.
pub struct Cloud {
    pub http: reqwest::Client,
    pub token: String,
    pub project: String,
}

impl Cloud {
    pub async fn connect() -> Self {
        let http = reqwest::Client::new();
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {"name": USER, "domain": {"name": "Default"}, "password": PASSWORD}}},
            "scope": {"project": {"name": "service", "domain": {"name": "Default"}}}}});
        let response = http.post(format!("{KEYSTONE}/auth/tokens")).json(&body).send().await.expect("Keystone answers");
        assert_eq!(response.status(), 201, "the test account authenticates");
        let token = response.headers()["x-subject-token"].to_str().unwrap().to_string();
        let body: Value = response.json().await.unwrap();
        let project = body["token"]["project"]["id"].as_str().unwrap().to_string();
        Self { http, token, project }
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Value {
        let response = request
            .header("x-auth-token", &self.token)
            .header("openstack-api-version", "volume 3.64")
            .send()
            .await
            .expect("the service answers");
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{status}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// A raw image holding `bytes` bytes, or none (it stays `queued`, without a size).
    pub async fn image(&self, name: &str, bytes: Option<usize>) -> String {
        let made = self
            .send(self.http.post(format!("{GLANCE}/v2/images")).json(&json!({
                "name": name, "disk_format": "raw", "container_format": "bare", "tags": ["pollen-test"], "min_ram": 64,
            })))
            .await;
        let id = made["id"].as_str().unwrap().to_string();
        if let Some(bytes) = bytes {
            let upload = self
                .http
                .put(format!("{GLANCE}/v2/images/{id}/file"))
                .header("content-type", "application/octet-stream")
                .body(vec![b'p'; bytes]);
            self.send(upload).await;
        }
        id
    }

    pub async fn volume(&self, name: &str, size: u32) -> String {
        let made = self
            .send(
                self.http
                    .post(format!("{CINDER}/v3/{}/volumes", self.project))
                    .json(&json!({"volume": {"name": name, "size": size}})),
            )
            .await;
        made["volume"]["id"].as_str().unwrap().to_string()
    }

    pub async fn get(&self, url: String) -> Value {
        self.send(self.http.get(url)).await
    }

    /// Waits until the object at `url` is no more (404).
    pub async fn gone(&self, url: String) {
        let started = std::time::Instant::now();
        loop {
            let response = self.http.get(&url).header("x-auth-token", &self.token).send().await.expect("answers");
            if response.status() == 404 {
                return;
            }
            assert!(started.elapsed() < SAFETY_NET, "{url} still there after {SAFETY_NET:?}");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// Waits until the object at `url` (under `key`) has left `creating`; its status.
    pub async fn settled(&self, url: String, key: &str) -> String {
        let started = std::time::Instant::now();
        loop {
            let status = self.get(url.clone()).await[key]["status"].as_str().unwrap_or_default().to_string();
            if status != "creating" {
                return status;
            }
            assert!(started.elapsed() < SAFETY_NET, "{url} still creating after {SAFETY_NET:?}");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    pub async fn delete(&self, url: String) {
        let _ = self.http.delete(url).header("x-auth-token", &self.token).send().await;
    }

    /// A volume of `size` GiB, once Cinder made it `available`, then a `kind`
    /// (`snapshot`, `backup`) of it with `fields`, once it left `creating`.
    pub async fn of_a_volume(&self, size: u32, kind: &'static str, mut fields: Value) -> OfAVolume {
        let base = format!("{CINDER}/v3/{}", self.project);
        let volume = self.volume(&format!("pollen-{}", uuid::Uuid::new_v4().simple()), size).await;
        assert_eq!(self.settled(format!("{base}/volumes/{volume}"), "volume").await, "available");
        fields["volume_id"] = json!(volume);
        let made = self.send(self.http.post(format!("{base}/{kind}s")).json(&json!({ kind: fields }))).await;
        let id = made[kind]["id"].as_str().unwrap().to_string();
        let status = self.settled(format!("{base}/{kind}s/{id}"), kind).await;
        OfAVolume { base, volume, kind, id, status }
    }

    /// Deletes what [`Cloud::of_a_volume`] made: the object, once it is gone its volume.
    pub async fn remove(&self, made: OfAVolume) {
        self.delete(made.url()).await;
        self.gone(made.url()).await;
        self.delete(format!("{}/volumes/{}", made.base, made.volume)).await;
    }

    /// Registers `url` in Keystone's catalog: a service of a type of its own, public,
    /// in a region of its own (so that no other test's agent sees it).
    pub async fn register(&self, url: &str) -> Registered {
        self.register_in(url, None).await
    }

    /// The same in `RegionOne`, beside the cloud's own services (its type is still its
    /// own, so no other test's discovery finds it).
    pub async fn register_beside_the_cloud(&self, url: &str) -> Registered {
        self.register_in(url, Some("RegionOne")).await
    }

    async fn register_in(&self, url: &str, existing_region: Option<&str>) -> Registered {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let own_region = existing_region.is_none();
        let region = existing_region.map_or_else(|| format!("PollenTest-{tag}"), str::to_string);
        let service_type = format!("pollen-{tag}");
        if own_region {
            self.send(self.http.post(format!("{KEYSTONE}/regions")).json(&json!({"region": {"id": region}}))).await;
        }
        let made = self
            .send(
                self.http
                    .post(format!("{KEYSTONE}/services"))
                    .json(&json!({"service": {"type": service_type, "name": "stub"}})),
            )
            .await;
        let service = made["service"]["id"].as_str().unwrap().to_string();
        let made = self
            .send(self.http.post(format!("{KEYSTONE}/endpoints")).json(&json!({"endpoint": {
                "service_id": service, "interface": "public", "url": url, "region_id": region}})))
            .await;
        let endpoint = made["endpoint"]["id"].as_str().unwrap().to_string();
        Registered { region, service_type, service, endpoint, own_region }
    }

    /// Removes what [`Cloud::register`] added.
    pub async fn unregister(&self, stub: Registered) {
        let region = stub.own_region.then_some(("regions", stub.region));
        for (kind, id) in [("endpoints", stub.endpoint), ("services", stub.service)].into_iter().chain(region) {
            self.delete(format!("{KEYSTONE}/{kind}/{id}")).await;
        }
    }
}

/// A snapshot or backup of a volume of its own (see [`Cloud::of_a_volume`]).
pub struct OfAVolume {
    /// The project's Cinder URL.
    pub base: String,
    pub volume: String,
    pub kind: &'static str,
    pub id: String,
    /// Its status once it left `creating`.
    pub status: String,
}

impl OfAVolume {
    pub fn url(&self) -> String {
        format!("{}/{}s/{}", self.base, self.kind, self.id)
    }
}

/// A stub service in Keystone's catalog.
pub struct Registered {
    pub region: String,
    pub service_type: String,
    pub service: String,
    pub endpoint: String,
    /// Whether its region was made for it (and is removed with it).
    pub own_region: bool,
}

/// The `agent` lines of the agent's account (`agent.openstack`, in `region` if one
/// is given), then `plugins` (YAML lines under `agent.plugins`).
pub fn with_account(region: Option<&str>, plugins: &str) -> String {
    let region = region.map(|r| format!("    region_name: {r}\n")).unwrap_or_default();
    format!("{}{region}  plugins:\n{plugins}", account())
}

/// `agent.openstack` with the agent's account.
pub fn account() -> String {
    format!("  openstack:\n    auth_url: {KEYSTONE}\n    username: {USER}\n    password: {PASSWORD}\n    user_domain_name: Default\n    project_name: service\n    project_domain_name: Default\n")
}

/// `agent.plugins` lines granting `openstack` to each of `names`.
pub fn granted(names: &[&str]) -> String {
    names.iter().map(|name| format!("    {name}: {{grants: [openstack]}}\n")).collect()
}

/// The tokens a [`catalog_stub`] was sent, in order.
pub type Tokens = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// A service on a port of its own that records the `X-Auth-Token` of every request
/// and answers `answer(tokens so far, this token)`: the status line and the body.
pub fn catalog_stub(answer: impl Fn(usize, &str) -> (&'static str, String) + Send + 'static) -> (u16, Tokens) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Tokens::default();
    let kept = seen.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let Some(request) = read_request(&mut reader) else { continue };
            let token = request.header("x-auth-token").unwrap_or_default().to_string();
            let (status, body) = {
                let mut seen = kept.lock().unwrap();
                seen.push(token.clone());
                answer(seen.len(), &token)
            };
            let head = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
            let _ = stream.write_all(format!("{head}{body}").as_bytes());
        }
    });
    (port, seen)
}

/// `text`'s bytes XORed with 0x5A, in hex: a needle for the `memory_scan` plugin.
pub fn needle(text: &str) -> String {
    text.bytes().map(|b| format!("{:02x}", b ^ 0x5A)).collect()
}

/// Where a secret's tail starts: the bytes of a freed allocation from here on are
/// still what they were (the allocator writes its free-list links over the first).
pub const TAIL: usize = 8;

/// Writes a `ceilometer.conf` whose `[service_credentials]` are the agent's account
/// with this password, and `default_options` (lines) in its `[DEFAULT]`.
pub fn ceilometer_conf(dir: &std::path::Path, password: &str, default_options: &str) -> std::path::PathBuf {
    let path = dir.join("ceilometer.conf");
    let text = format!(
        "[DEFAULT]\ntransport_url = rabbit://guest:guest@127.0.0.1:5672/\n{default_options}\n[service_credentials]\nauth_type = password\nauth_url = {KEYSTONE}\nusername = {USER}\npassword = {password}\nuser_domain_name = Default\nproject_name = service\nproject_domain_name = Default\nregion_name = RegionOne\ninterface = publicURL\n"
    );
    std::fs::write(&path, text).expect("write ceilometer.conf");
    path
}
