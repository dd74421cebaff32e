//! `gnocchi://`: Ceilometer's default publisher. Samples are grouped per resource and
//! metric and sent as one batch of measures per call through Gnocchi's REST API
//! (`POST /v1/batch/resources/metrics/measures?create_metrics=true`). Resources that
//! do not exist yet are created on Gnocchi's first refusal (their type and attributes
//! from a resource-definition file in the format of Ceilometer's
//! `gnocchi_resources.yaml`; a missing resource type or archive policy is created
//! too), then the batch is sent again; resources known to exist are cached, and their
//! attributes updated when they change. Meters the definitions do not list are not
//! sent (a warning names each once).
//!
//! URL: `gnocchi://[USER@]HOST[:PORT][/PATH]` with Gnocchi's `basic` authentication
//! (user `admin` by default), or Keystone (`auth_mode=keystone`, or credentials given)
//! with `os_auth_url`, `os_username`, `os_password`, `os_project_name`,
//! `os_user_domain_name`, `os_project_domain_name`, `os_interface` (each else from
//! the `OS_*` environment); without a host, Gnocchi is found in Keystone's catalog,
//! so Ceilometer's plain `gnocchi://` works. Options: `archive_policy` (for every
//! metric), `timeout` (seconds, 6.05), `filter_project` (samples of this project are
//! not sent: Gnocchi's own; default `service`), `resources_definition_file`,
//! `max_retries` (2), `ssl=1`, `verify_ssl`.

mod auth;
mod resources;

pub use auth::{AuthMode, KeystoneCredentials};
pub use resources::{AttributePath, Definitions};

use super::http::{client, HttpOptions};
use super::options::Query;
use super::{Batch, Delivery, PublishError, Publisher, CHUNK};
use auth::Auth;
use backon::ExponentialBuilder;
use reqwest::StatusCode;
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::time::Duration;

/// The Gnocchi publisher's settings, from its URL.
#[derive(Debug, Clone, PartialEq)]
pub struct GnocchiOptions {
    /// Gnocchi's URL; `None`: from Keystone's catalog.
    pub endpoint: Option<String>,
    /// How to authenticate.
    pub auth: AuthMode,
    /// The archive policy of every metric, instead of the definitions'.
    pub archive_policy: Option<String>,
    /// Samples of this project (a name in Keystone mode, else an id) are not sent.
    pub filter_project: Option<String>,
    /// The definitions file; `None`: Pollen's built-in one.
    pub resources_definition_file: Option<PathBuf>,
    /// Timeout, retries and TLS.
    pub http: HttpOptions,
}

impl GnocchiOptions {
    /// Reads a `gnocchi://` URL.
    pub fn from_url(url: &url::Url) -> Result<Self, String> {
        let mut query = Query::new(url);
        let ssl = query.flag("ssl")?;
        let timeout: f64 = query.parse("timeout", 6.05)?;
        let max_retries: usize = query.parse("max_retries", 2)?;
        let verify_ssl = query.flag_or("verify_ssl", true)?;
        let auth_mode = query.text("auth_mode");
        let archive_policy = query.text("archive_policy").filter(|p| !p.is_empty());
        let filter_project = query.text("filter_project").unwrap_or_else(|| "service".into());
        let resources_definition_file = query.text("resources_definition_file").map(PathBuf::from);
        let mut keystone_options = HashMap::new();
        for key in [
            "os_auth_url",
            "os_username",
            "os_password",
            "os_project_name",
            "os_user_domain_name",
            "os_project_domain_name",
            "os_interface",
        ] {
            if let Some(value) = query.text(key) {
                keystone_options.insert(key, value);
            }
        }
        query.finish()?;
        let keystone = KeystoneCredentials::from_options(|key| keystone_options.get(key).cloned())?;
        let host = url.host_str().filter(|h| !h.is_empty());
        let auth = match (auth_mode.as_deref(), keystone) {
            (Some("keystone") | None, Some(credentials))
                if auth_mode.is_some() || host.is_none() || !keystone_options.is_empty() =>
            {
                AuthMode::Keystone(credentials)
            }
            (Some("keystone"), None) => return Err("`auth_mode=keystone` needs `os_auth_url` (or OS_AUTH_URL)".into()),
            (Some("basic") | None, _) => {
                AuthMode::Basic(if url.username().is_empty() { "admin".into() } else { url.username().to_string() })
            }
            (Some(other), _) => return Err(format!("`auth_mode={other}`: `basic` or `keystone`")),
        };
        let endpoint = match host {
            Some(host) => {
                let port = url.port().map(|p| format!(":{p}")).unwrap_or_else(|| ":8041".into());
                let host =
                    if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.to_string() };
                Some(format!(
                    "{}://{host}{port}{}",
                    if ssl { "https" } else { "http" },
                    url.path().trim_end_matches('/')
                ))
            }
            None if matches!(auth, AuthMode::Keystone(_)) => None,
            None => {
                return Err("names no Gnocchi: give `gnocchi://HOST:8041` (basic authentication), or Keystone \
                            credentials (`os_auth_url`..., or the OS_* environment) to find it in the catalog"
                    .into())
            }
        };
        let timeout =
            Duration::try_from_secs_f64(timeout).map_err(|_| format!("timeout `{timeout}` is not a duration"))?;
        let http = HttpOptions {
            target: endpoint.clone().unwrap_or_default(),
            timeout,
            max_retries,
            batch: true,
            verify_ssl,
            ca_file: None,
            client_identity: None,
        };
        Ok(Self {
            endpoint,
            auth,
            archive_policy,
            filter_project: Some(filter_project).filter(|p| !p.is_empty()),
            resources_definition_file,
            http,
        })
    }
}

/// What one batch call of Gnocchi answered.
enum BatchOutcome {
    Accepted,
    /// These resources (by original id) do not exist.
    UnknownResources(Vec<String>),
    Failed(String),
}

/// Sends measures to Gnocchi.
pub struct GnocchiPublisher {
    url: String,
    options: GnocchiOptions,
    definitions: Definitions,
    client: reqwest::Client,
    auth: Auth,
    endpoint: Option<String>,
    filtered_project_id: Option<Option<String>>,
    policies_ready: bool,
    /// Resources known to exist, with the hash of the attributes last sent.
    known: HashMap<String, u64>,
    /// Meters already warned about (not in the definitions).
    unlisted: HashSet<String>,
    /// Whether sending failed after its retries since [`Publisher::take_unreachable`]
    /// last asked.
    unreachable: bool,
}

impl GnocchiPublisher {
    /// The publisher for a `gnocchi://` URL (reads the definitions file).
    pub fn new(url: &str, options: GnocchiOptions) -> Result<Self, PublishError> {
        let error = |message: String| PublishError::Url { url: url.to_string(), message };
        let definitions = match &options.resources_definition_file {
            Some(path) => Definitions::read(path).map_err(error)?,
            None => Definitions::builtin(),
        };
        let client = client(&options.http).map_err(error)?;
        Ok(Self {
            url: url.into(),
            auth: Auth::new(options.auth.clone()),
            endpoint: options.endpoint.clone(),
            options,
            definitions,
            client,
            filtered_project_id: None,
            policies_ready: false,
            known: HashMap::new(),
            unlisted: HashSet::new(),
            unreachable: false,
        })
    }

    /// Gnocchi's URL (from the catalog on first use, in Keystone mode).
    async fn endpoint(&mut self) -> Result<String, String> {
        if let Some(endpoint) = &self.endpoint {
            return Ok(endpoint.clone());
        }
        let found = self.auth.catalog_endpoint(&self.client).await?;
        let endpoint = found.ok_or("Keystone's catalog has no `metric` endpoint (Gnocchi)")?;
        self.endpoint = Some(endpoint.trim_end_matches('/').to_string());
        Ok(endpoint)
    }

    /// One authenticated request; a 401 renews a Keystone token once.
    async fn request(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), String> {
        let endpoint = self.endpoint().await?;
        for attempt in 0..2 {
            let (header, value) = self.auth.header(&self.client).await?;
            let mut request = self
                .client
                .request(method.clone(), format!("{endpoint}{path}"))
                .header(header, value)
                .header(reqwest::header::ACCEPT, "application/json");
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.map_err(|e| format!("{method} {path}: {e}"))?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && attempt == 0 && matches!(self.options.auth, AuthMode::Keystone(_))
            {
                self.auth.invalidate();
                continue;
            }
            let text = response.text().await.unwrap_or_default();
            let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            return Ok((status, value));
        }
        unreachable!("the loop returns")
    }

    /// Creates the definitions' archive policies that Gnocchi lacks (once).
    async fn ensure_policies(&mut self) -> Result<(), String> {
        if self.policies_ready {
            return Ok(());
        }
        for policy in self.definitions.archive_policies.clone() {
            let (status, answer) = self.request(reqwest::Method::POST, "/v1/archive_policy", Some(&policy)).await?;
            if !(status.is_success() || status == StatusCode::CONFLICT) {
                tracing::warn!(publisher = %self.url, policy = %policy["name"], %status, %answer, "cannot create an archive policy");
            }
        }
        self.policies_ready = true;
        Ok(())
    }

    async fn post_batch(&mut self, body: &Value) -> Result<BatchOutcome, String> {
        let (status, answer) = self
            .request(reqwest::Method::POST, "/v1/batch/resources/metrics/measures?create_metrics=true", Some(body))
            .await?;
        if status.is_success() {
            return Ok(BatchOutcome::Accepted);
        }
        let cause = &answer["description"]["cause"];
        if status == StatusCode::BAD_REQUEST && cause == "Unknown resources" {
            let unknown = answer["description"]["detail"]
                .as_array()
                .map(|d| d.iter().filter_map(|r| r["original_resource_id"].as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            return Ok(BatchOutcome::UnknownResources(unknown));
        }
        Ok(BatchOutcome::Failed(format!("Gnocchi answered {status}: {answer}")))
    }

    /// Creates a resource (and its type, if Gnocchi lacks it); one that exists is fine.
    async fn create_resource(&mut self, resource_type: &str, body: &Value) -> Result<(), String> {
        let path = format!("/v1/resource/{resource_type}");
        let (mut status, mut answer) = self.request(reqwest::Method::POST, &path, Some(body)).await?;
        if status == StatusCode::NOT_FOUND && answer.to_string().contains("does not exist") {
            self.create_resource_type(resource_type).await?;
            (status, answer) = self.request(reqwest::Method::POST, &path, Some(body)).await?;
        }
        if status.is_success() || status == StatusCode::CONFLICT {
            Ok(())
        } else {
            Err(format!("creating {resource_type} {}: Gnocchi answered {status}: {answer}", body["id"]))
        }
    }

    async fn create_resource_type(&mut self, name: &str) -> Result<(), String> {
        let attributes: Map<String, Value> = self
            .definitions
            .resources
            .iter()
            .find(|r| r.resource_type == name)
            .map(|r| {
                r.attributes
                    .keys()
                    .map(|a| (a.clone(), json!({"type": "string", "required": false, "max_length": 255})))
                    .collect()
            })
            .unwrap_or_default();
        let body = json!({"name": name, "attributes": attributes});
        let (status, answer) = self.request(reqwest::Method::POST, "/v1/resource_type", Some(&body)).await?;
        if status.is_success() || status == StatusCode::CONFLICT {
            tracing::info!(publisher = %self.url, resource_type = name, "created a Gnocchi resource type");
            Ok(())
        } else {
            Err(format!("creating resource type {name}: Gnocchi answered {status}: {answer}"))
        }
    }

    /// Brings the attributes of resources Gnocchi has up to date (when they changed
    /// since last sent).
    async fn update_attributes(&mut self, resources: &HashMap<String, (String, Value)>) {
        for (id, (resource_type, body)) in resources {
            let hash = hash_of(body);
            if self.known.get(id) == Some(&hash) {
                continue;
            }
            let mut attributes = body.clone();
            if let Some(map) = attributes.as_object_mut() {
                map.remove("id");
                map.remove("metrics");
            }
            let path = format!("/v1/resource/{resource_type}/{}", encode_id(id));
            match self.request(reqwest::Method::PATCH, &path, Some(&attributes)).await {
                Ok((status, _)) if status.is_success() => {
                    self.known.insert(id.clone(), hash);
                }
                Ok((status, answer)) => {
                    tracing::warn!(publisher = %self.url, resource = %id, %status, %answer, "cannot update the resource's attributes")
                }
                Err(error) => {
                    tracing::warn!(publisher = %self.url, resource = %id, %error, "cannot update the resource's attributes")
                }
            }
        }
    }

    /// Some of a batch's samples: measures and the resources they belong to.
    async fn send(&mut self, batch: &Batch, samples: &[crate::sample::Sample]) -> Result<Delivery, String> {
        self.ensure_policies().await?;
        if self.filtered_project_id.is_none() {
            let id = match (&self.options.filter_project, &self.options.auth) {
                (Some(name), AuthMode::Keystone(_)) => self.auth.project_id(&self.client, name).await.unwrap_or(None),
                (filter, _) => filter.clone(),
            };
            self.filtered_project_id = Some(id);
        }
        let filtered = self.filtered_project_id.clone().flatten();
        let mut measures: Map<String, Value> = Map::new();
        let mut resources: HashMap<String, (String, Value)> = HashMap::new();
        let (mut count, mut skipped) = (0u64, 0u64);
        let mut unlisted = BTreeSet::new();
        batch.for_each_record_of(samples, |record| {
            if filtered.is_some() && record.resource().project_id() == filtered.as_deref() {
                skipped += 1;
                return;
            }
            let Some((definition, policy)) = self.definitions.find(&record.meter.name) else {
                unlisted.insert(record.meter.name.clone());
                skipped += 1;
                return;
            };
            let policy = self.options.archive_policy.clone().or(policy);
            let id = &record.resource().id;
            let metric = measures
                .entry(id.clone())
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("an object")
                .entry(record.meter.name.clone())
                .or_insert_with(|| {
                    let mut metric = json!({"unit": record.meter.unit, "measures": []});
                    if let Some(policy) = &policy {
                        metric["archive_policy_name"] = json!(policy);
                    }
                    metric
                });
            if let Some(list) = metric["measures"].as_array_mut() {
                list.push(json!({"timestamp": record.timestamp, "value": record.volume}));
            }
            let (_, body) = resources.entry(id.to_string()).or_insert_with(|| {
                let mut body = Map::new();
                body.insert("id".into(), json!(id));
                body.insert("user_id".into(), json!(record.resource().user_id()));
                body.insert("project_id".into(), json!(record.resource().project_id()));
                body.extend(definition.attributes_of(record.resource()));
                (definition.resource_type.clone(), Value::Object(body))
            });
            if let Some(metrics) = body.as_object_mut() {
                let entry = metrics.entry("metrics").or_insert_with(|| json!({}));
                entry[&record.meter.name] = match &policy {
                    Some(policy) => json!({"archive_policy_name": policy}),
                    None => json!({}),
                };
            }
            count += 1;
        });
        for meter in unlisted {
            if self.unlisted.insert(meter.clone()) {
                tracing::warn!(publisher = %self.url, %meter, "meter not in the Gnocchi resource definitions; not sent");
            }
        }
        if measures.is_empty() {
            return Ok(Delivery { sent: 0, dropped: skipped });
        }
        let body = Value::Object(measures);
        match self.post_batch(&body).await? {
            BatchOutcome::Accepted => {}
            BatchOutcome::UnknownResources(unknown) => {
                for id in unknown {
                    let Some((resource_type, resource)) = resources.get(&id).cloned() else { continue };
                    self.create_resource(&resource_type, &resource).await?;
                    self.known.insert(id, hash_of(&resource));
                }
                match self.post_batch(&body).await? {
                    BatchOutcome::Accepted => {}
                    BatchOutcome::UnknownResources(still) => {
                        return Err(format!("resources still unknown after creating them: {still:?}"))
                    }
                    BatchOutcome::Failed(error) => return Err(error),
                }
            }
            BatchOutcome::Failed(error) => return Err(error),
        }
        self.update_attributes(&resources).await;
        Ok(Delivery { sent: count, dropped: skipped })
    }
}

/// A resource id in a URL path.
fn encode_id(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

fn hash_of(value: &Value) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    value.to_string().hash(&mut hasher);
    hasher.finish()
}

impl Publisher for GnocchiPublisher {
    async fn publish(&mut self, batch: &Batch) -> Result<Delivery, PublishError> {
        // One call to Gnocchi per CHUNK samples: bounded requests however large the batch.
        let mut delivery = Delivery::default();
        for chunk in batch.samples.chunks(CHUNK) {
            let done = self.publish_chunk(batch, chunk).await;
            delivery.sent += done.sent;
            delivery.dropped += done.dropped;
        }
        Ok(delivery)
    }

    fn take_unreachable(&mut self) -> bool {
        std::mem::take(&mut self.unreachable)
    }

    async fn flush(&mut self) -> Result<Delivery, PublishError> {
        Ok(Delivery::default())
    }
}

impl GnocchiPublisher {
    /// Sends some samples, retried with backoff; what still fails is dropped and counted.
    async fn publish_chunk(&mut self, batch: &Batch, samples: &[crate::sample::Sample]) -> Delivery {
        use backon::BackoffBuilder;
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_times(self.options.http.max_retries)
            .build();
        loop {
            match self.send(batch, samples).await {
                Ok(delivery) => return delivery,
                Err(error) if let Some(delay) = delays.next() => {
                    tracing::warn!(publisher = %self.url, %error, retry_in_ms = delay.as_millis() as u64, "sending to Gnocchi failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(error) => {
                    self.unreachable = true;
                    let count = samples.len() as u64;
                    tracing::error!(publisher = %self.url, %error, samples = count, "sending to Gnocchi failed after retries; samples dropped");
                    return Delivery { sent: 0, dropped: count };
                }
            }
        }
    }
}
