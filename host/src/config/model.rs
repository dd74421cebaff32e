//! The shape of the pipeline file, as serde reads it. Unknown keys are errors.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The hypervisor URI used when the pipeline names none: libvirt's built-in test
/// driver, a real libvirt connection that needs no daemon.
pub const DEFAULT_LIBVIRT_URI: &str = "test:///default";

/// A whole pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// The agent's own settings.
    #[serde(default)]
    pub agent: Agent,
    /// What to poll and how often.
    #[serde(default)]
    pub sources: Vec<Source>,
    /// Where samples go.
    #[serde(default)]
    pub sinks: Vec<Sink>,
    /// The file this was read from.
    #[serde(skip)]
    pub origin: PathBuf,
    /// What was ignored while reading it (keys of Ceilometer's files Pollen has no use
    /// for); `validate` prints them, `run` logs them.
    #[serde(skip)]
    pub warnings: Vec<super::ConfigError>,
}

/// The `agent` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Agent {
    /// libvirt connection URI, e.g. `qemu:///system`.
    pub libvirt_uri: String,
    /// Each polling task waits a random 0 to `start_jitter` seconds before its first
    /// cycle.
    pub start_jitter: f64,
    /// Seconds a libvirt call may take before it counts as failed; below
    /// `call_wall_timeout`, so that a plugin waiting on libvirt is not cut off first.
    pub libvirt_timeout: f64,
    /// Folder of plugin components (`*.wasm`); relative to the pipeline file.
    pub plugin_dir: PathBuf,
    /// Folder of precompiled components; defaults to `$XDG_CACHE_HOME/pollen`
    /// (`~/.cache/pollen`).
    pub cache_dir: Option<PathBuf>,
    /// Folder of the agent's state (disk queues); defaults to Pollen's state
    /// directory ([`crate::store::state_dir`]); relative to the pipeline file.
    pub state_dir: Option<PathBuf>,
    /// The `source` field of every sample (Ceilometer's `sample_source`).
    pub sample_source: String,
    /// Memory limit of each plugin instance, in MiB, unless its own settings say.
    pub memory_limit_mib: u64,
    /// Deadline of each plugin call's own running time (not counting its waits on the
    /// host, e.g. on libvirt), in seconds, unless its own settings say.
    pub call_timeout: f64,
    /// Deadline of each plugin call's wall time, host waits included, in seconds,
    /// unless its own settings say.
    pub call_wall_timeout: f64,
    /// Largest plugin file the agent reads, MiB.
    pub max_plugin_mib: u64,
    /// Largest function a plugin may have, KiB (cranelift's time grows faster than a
    /// function's size).
    pub max_function_kib: u64,
    /// Seconds compiling one plugin may take.
    pub load_timeout: f64,
    /// Seconds `pollen run` waits, at start and at each reload, for plugins being
    /// compiled (new files, in parallel) before it starts the others; one still
    /// compiling then joins once compiled (a reload of its own).
    pub compile_wait: f64,
    /// Memory the compiler of one plugin may use, MiB (`pollen` compiles each plugin
    /// in a child process capped so).
    pub compile_memory_mib: u64,
    /// Lines a second each plugin may write to the agent's log (its `log` calls and
    /// its stderr; bursts of ten seconds' worth), unless its own settings say.
    pub log_lines_per_second: u32,
    /// Per-plugin settings, by plugin name (the `.wasm` file's stem).
    pub plugins: BTreeMap<String, PluginSettings>,
    /// Key of the metering messages' `message_signature` (Ceilometer's
    /// `telemetry_secret`); `POLLEN_TELEMETRY_SECRET` overrides it; empty disables
    /// signing.
    pub telemetry_secret: String,
    /// Addresses (`127.0.0.1:9101`) where the agent serves its samples to Prometheus
    /// at `/metrics` (Ceilometer's `prometheus_listen_addresses`); none by default.
    pub prometheus_listen: Vec<String>,
    /// Bounds and TLS of the requests plugins granted `http` make.
    pub http: HttpSettings,
    /// The OpenStack service credentials (Ceilometer's `[service_credentials]`), for
    /// plugins granted `openstack`; if this names no `auth_url`, those of
    /// `--config-file ceilometer.conf`, else of the `OS_*` environment variables.
    pub openstack: crate::openstack::Credentials,
    /// Folder of the heartbeat socket (Ceilometer's `[polling] heartbeat_socket_dir`):
    /// `ceilometer-<namespaces>.socket` there answers Ceilometer's heartbeat lines, and
    /// `pollen status`; none: no socket.
    pub heartbeat_socket_dir: Option<PathBuf>,
    /// Several agents sharing the work through Redis (Ceilometer's `[coordination]`);
    /// none: this agent polls everything.
    pub coordination: Option<CoordinationSettings>,
    /// Credentials of APIs other than OpenStack's, by name, for the plugins granted them
    /// (`agent.plugins.<name>.credentials`): the host adds them to those plugins'
    /// requests to their `hosts`.
    pub credentials: BTreeMap<String, CredentialConfig>,
    /// Folders of Ceilometer's dynamic-pollster definitions (`*.yaml`), run by the
    /// `dynamic` plugin; unset: `--config-file ceilometer.conf`'s
    /// `pollsters_definitions_dirs`, else Ceilometer's `/etc/ceilometer/pollsters.d`.
    pub pollsters_definitions_dirs: Option<Vec<PathBuf>>,
    /// The namespaces this agent polls, for the definitions' `namespaces` (`central`,
    /// `compute`); unset: `--polling-namespaces`.
    pub polling_namespaces: Option<Vec<String>>,
    /// The definitions read from those folders (by `load`), for the `dynamic` plugin.
    #[serde(skip)]
    pub dynamic_pollsters: Vec<super::dynamic::DynamicPollster>,
}

/// `agent.http`: what bounds every request a plugin makes through `wasi:http`, and
/// how TLS is checked.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Seconds to open a connection (TCP and TLS).
    pub connect_timeout: f64,
    /// Seconds a whole request may take, its response body read to the end; never
    /// past the call's `call_wall_timeout`.
    pub request_timeout: f64,
    /// Largest response body, MiB; a longer one fails in the plugin.
    pub max_response_mib: u64,
    /// Requests one plugin may have in flight at once, all its instances together.
    pub max_concurrent_requests: u32,
    /// PEM file of the CAs that HTTPS servers' certificates must chain to (instead
    /// of the bundled Mozilla roots); Ceilometer's `cafile`.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate. Logged as a warning at start: for test set-ups only.
    pub insecure: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            connect_timeout: 5.0,
            request_timeout: 30.0,
            max_response_mib: 16,
            max_concurrent_requests: 4,
            ca_file: None,
            insecure: false,
        }
    }
}

impl Default for Agent {
    fn default() -> Self {
        Self {
            libvirt_uri: DEFAULT_LIBVIRT_URI.into(),
            libvirt_timeout: 1.5,
            start_jitter: 0.0,
            plugin_dir: PathBuf::from("plugins/dist"),
            cache_dir: None,
            state_dir: None,
            sample_source: "openstack".into(),
            memory_limit_mib: 64,
            call_timeout: 2.0,
            call_wall_timeout: 60.0,
            log_lines_per_second: 20,
            max_plugin_mib: 32,
            max_function_kib: 512,
            load_timeout: 60.0,
            compile_wait: 5.0,
            compile_memory_mib: 512,
            plugins: BTreeMap::new(),
            telemetry_secret: String::new(),
            prometheus_listen: Vec::new(),
            http: HttpSettings::default(),
            openstack: Default::default(),
            heartbeat_socket_dir: None,
            coordination: None,
            credentials: BTreeMap::new(),
            pollsters_definitions_dirs: None,
            polling_namespaces: None,
            dynamic_pollsters: Vec::new(),
        }
    }
}

impl Agent {
    /// The OpenStack credentials in force: the pipeline's, else those of
    /// `ceilometer_conf` (Ceilometer's `[service_credentials]`), else the `OS_*`
    /// environment's.
    pub fn resolve_openstack(&mut self, ceilometer_conf: Option<&crate::openstack::Credentials>) {
        const OWN: &str = "agent.openstack of the pipeline file";
        if self.openstack.origin.is_empty() {
            self.openstack.origin = OWN.into();
        }
        let own = if self.openstack.origin == OWN { self.openstack.clone() } else { Default::default() };
        if let Some(found) = crate::openstack::Credentials::in_force(&own, ceilometer_conf) {
            self.openstack = found;
        }
    }

    /// Resolves relative paths against `base` (the pipeline file's folder).
    pub(super) fn resolve_paths(&mut self, base: &Path) {
        if self.plugin_dir.is_relative() {
            self.plugin_dir = base.join(&self.plugin_dir);
        }
        for dir in [&mut self.cache_dir, &mut self.state_dir].into_iter().flatten() {
            if dir.is_relative() {
                *dir = base.join(&*dir);
            }
        }
        if let Some(ca_file) = &mut self.http.ca_file {
            if ca_file.is_relative() {
                *ca_file = base.join(&*ca_file);
            }
        }
        for credential in self.credentials.values_mut() {
            let secrets = [
                credential.basic.as_mut().map(|b| &mut b.password),
                credential.bearer.as_mut().map(|b| &mut b.token),
                credential.header.as_mut().map(|h| &mut h.value),
            ];
            for file in secrets.into_iter().flatten().filter_map(|s| s.file.as_mut()) {
                if file.is_relative() {
                    *file = base.join(&*file);
                }
            }
        }
        if let Some(dir) = &mut self.heartbeat_socket_dir {
            if dir.is_relative() {
                *dir = base.join(&*dir);
            }
        }
        for dir in self.pollsters_definitions_dirs.iter_mut().flatten() {
            if dir.is_relative() {
                *dir = base.join(&*dir);
            }
        }
    }

    /// The settings of one plugin (defaults if the file has none for it), its grants
    /// always set: the file's, or the built-in plugin's defaults.
    pub fn plugin(&self, name: &str) -> PluginSettings {
        let mut settings = self.plugins.get(name).cloned().unwrap_or_default();
        settings.grants.get_or_insert_with(|| super::builtin::default_grants(name).to_vec());
        settings
    }

    /// The memory limit of one plugin, in bytes.
    pub fn memory_limit(&self, name: &str) -> usize {
        let mib = self.plugins.get(name).and_then(|p| p.memory_limit_mib).unwrap_or(self.memory_limit_mib);
        usize::try_from(mib.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX)
    }

    /// The deadline of one call's own running time, for one plugin.
    pub fn call_timeout(&self, name: &str) -> Duration {
        let seconds = self.plugins.get(name).and_then(|p| p.call_timeout).unwrap_or(self.call_timeout);
        Duration::try_from_secs_f64(seconds).unwrap_or(Duration::from_secs(2))
    }

    /// The deadline of one call's wall time, for one plugin.
    pub fn call_wall_timeout(&self, name: &str) -> Duration {
        let seconds = self.plugins.get(name).and_then(|p| p.call_wall_timeout).unwrap_or(self.call_wall_timeout);
        Duration::try_from_secs_f64(seconds).unwrap_or(Duration::from_secs(60))
    }

    /// The largest plugin file, bytes.
    pub fn max_plugin_bytes(&self) -> u64 {
        self.max_plugin_mib.saturating_mul(1024 * 1024)
    }

    /// The largest function of a plugin, bytes.
    pub fn max_function_bytes(&self) -> usize {
        usize::try_from(self.max_function_kib.saturating_mul(1024)).unwrap_or(usize::MAX)
    }

    /// The memory compiling one plugin may use, bytes.
    pub fn compile_memory_bytes(&self) -> u64 {
        self.compile_memory_mib.saturating_mul(1 << 20)
    }

    /// How long `pollen run` waits for plugins being compiled before it starts.
    pub fn compile_wait(&self) -> Duration {
        Duration::try_from_secs_f64(self.compile_wait).unwrap_or(Duration::from_secs(5))
    }

    /// The deadline of compiling one plugin.
    pub fn load_timeout(&self) -> Duration {
        Duration::try_from_secs_f64(self.load_timeout).unwrap_or(Duration::from_secs(60))
    }

    /// The log lines a second one plugin may write.
    pub fn log_lines_per_second(&self, name: &str) -> u32 {
        self.plugins.get(name).and_then(|p| p.log_lines_per_second).unwrap_or(self.log_lines_per_second)
    }

    /// The telemetry secret in force: the environment's `POLLEN_TELEMETRY_SECRET` if
    /// set, else the file's.
    pub fn telemetry_secret(&self) -> String {
        std::env::var("POLLEN_TELEMETRY_SECRET").unwrap_or_else(|_| self.telemetry_secret.clone())
    }

    /// The Prometheus endpoint's addresses (checked by `validate`: unparsable ones are
    /// left out here).
    pub fn prometheus_addresses(&self) -> Vec<std::net::SocketAddr> {
        self.prometheus_listen.iter().filter_map(|a| a.parse().ok()).collect()
    }

    /// The heartbeat socket's path, if `heartbeat_socket_dir` asks for one: named
    /// after this agent's namespaces (`compute` unless resolved otherwise).
    pub fn heartbeat_socket(&self) -> Option<PathBuf> {
        let dir = self.heartbeat_socket_dir.as_ref()?;
        let namespaces = self.polling_namespaces.clone().unwrap_or_else(|| vec!["compute".into()]);
        Some(crate::health::socket_path(dir, &namespaces))
    }

    /// The folder of the agent's state (disk queues).
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(crate::store::state_dir)
    }

    /// What its publishers need besides their URLs.
    pub fn publish_context(&self) -> crate::publish::PublishContext {
        crate::publish::PublishContext { telemetry_secret: self.telemetry_secret(), state_dir: self.state_dir() }
    }

    /// The folder of precompiled components.
    pub fn cache_dir(&self) -> PathBuf {
        if let Some(dir) = &self.cache_dir {
            return dir.clone();
        }
        let home_cache = std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache"));
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or(home_cache)
            .map_or_else(|| self.plugin_dir.join(".cache"), |dir| dir.join("pollen"))
    }
}

/// `agent.coordination`: the backend the agents share and how often they say they are alive.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinationSettings {
    /// `redis://host:port[/db]` (Ceilometer's `[coordination] backend_url`).
    pub backend_url: String,
    /// What the agents' groups are named after; agents of one cloud share it.
    #[serde(default = "default_group_prefix")]
    pub group_prefix: String,
    /// Seconds between two heartbeats (membership changes reach every agent within one).
    #[serde(default = "default_heartbeat")]
    pub heartbeat: f64,
    /// Seconds after which a member that stopped renewing is gone.
    #[serde(default = "default_membership_timeout")]
    pub membership_timeout: f64,
}

fn default_group_prefix() -> String {
    "pollen".into()
}

fn default_heartbeat() -> f64 {
    1.0
}

fn default_membership_timeout() -> f64 {
    10.0
}

impl CoordinationSettings {
    /// The defaults with this backend (Ceilometer's `[coordination] backend_url`).
    pub fn with_backend(backend_url: String) -> Self {
        Self {
            backend_url,
            group_prefix: default_group_prefix(),
            heartbeat: default_heartbeat(),
            membership_timeout: default_membership_timeout(),
        }
    }

    /// The heartbeat's period.
    pub fn heartbeat(&self) -> Duration {
        Duration::try_from_secs_f64(self.heartbeat).unwrap_or(Duration::from_secs(1))
    }

    /// How long a silent member stays one.
    pub fn membership_timeout(&self) -> Duration {
        Duration::try_from_secs_f64(self.membership_timeout).unwrap_or(Duration::from_secs(10))
    }
}

/// `agent.credentials.<name>`: one of `basic`, `bearer` and `header`, for `hosts`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialConfig {
    /// The origins it is for, as `allowed_hosts` writes them (`http://127.0.0.1:15672`).
    pub hosts: Vec<String>,
    /// HTTP basic auth.
    pub basic: Option<BasicCredential>,
    /// `Authorization: Bearer <token>`.
    pub bearer: Option<BearerCredential>,
    /// A header of its own, e.g. `X-Api-Key`.
    pub header: Option<HeaderCredential>,
}

/// Basic auth: a user name and a password from the environment or a file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicCredential {
    /// The user name.
    pub username: String,
    /// Where the password is.
    pub password: SecretSource,
}

/// A bearer token from the environment or a file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BearerCredential {
    /// Where the token is.
    pub token: SecretSource,
}

/// A header and its value from the environment or a file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderCredential {
    /// The header's name.
    pub name: String,
    /// Where its value is.
    pub value: SecretSource,
}

/// Where a secret is: `env: VARIABLE` or `file: /path` (its trailing newline cut).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// An environment variable's name.
    pub env: Option<String>,
    /// A file's path (relative to the pipeline file).
    pub file: Option<PathBuf>,
}

/// A capability that the pipeline grants a plugin. Nothing is granted by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    /// Read access to the hypervisor (`pollen:plugin/hypervisor`).
    Hypervisor,
    /// Outgoing HTTP(S) requests (`wasi:http/outgoing-handler`), to the origins of
    /// the plugin's `allowed_hosts` only.
    Http,
    /// The OpenStack catalog (`pollen:plugin/openstack`), and the agent's token on
    /// the plugin's requests to the catalog's endpoints.
    Openstack,
}

impl Grant {
    /// The name the pipeline file uses.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hypervisor => "hypervisor",
            Self::Http => "http",
            Self::Openstack => "openstack",
        }
    }
}

/// `agent.plugins.<name>`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSettings {
    /// Capabilities granted to the plugin; unset, a built-in plugin's defaults
    /// (`config::builtin`) and nothing for any other (read them through
    /// [`PluginSettings::grants`] of [`Agent::plugin`]).
    #[serde(default)]
    pub grants: Option<Vec<Grant>>,
    /// Parameters the plugin reads through `pollen:plugin/config` (scalars only).
    #[serde(default)]
    pub params: BTreeMap<String, serde_yaml::Value>,
    /// Origins the plugin may send requests to, with `grants: [http]`, as Spin's
    /// `allowed_outbound_hosts`: `https://glance.example:9292`, `http://127.0.0.1:*`,
    /// `https://*.example.com`.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Names of `agent.credentials` the host adds to its requests to their hosts.
    #[serde(default)]
    pub credentials: Vec<String>,
    /// Memory limit in MiB.
    pub memory_limit_mib: Option<u64>,
    /// Deadline of a call's own running time, in seconds.
    pub call_timeout: Option<f64>,
    /// Deadline of a call's wall time, host waits included, in seconds.
    pub call_wall_timeout: Option<f64>,
    /// Lines a second it may write to the agent's log.
    pub log_lines_per_second: Option<u32>,
}

impl PluginSettings {
    /// What is granted: as written, or nothing if unset (see [`Agent::plugin`] for a
    /// built-in plugin's defaults).
    pub fn grants(&self) -> &[Grant] {
        self.grants.as_deref().unwrap_or_default()
    }

    /// The parameters as text, as plugins read them.
    pub fn params_as_text(&self) -> Vec<(String, String)> {
        self.params.iter().filter_map(|(key, value)| scalar_text(value).map(|text| (key.clone(), text))).collect()
    }
}

/// The text of a scalar YAML value; `None` for sequences and mappings.
pub(super) fn scalar_text(value: &serde_yaml::Value) -> Option<String> {
    match value {
        serde_yaml::Value::String(text) => Some(text.clone()),
        serde_yaml::Value::Bool(flag) => Some(flag.to_string()),
        serde_yaml::Value::Number(number) => Some(number.to_string()),
        serde_yaml::Value::Null => Some(String::new()),
        _ => None,
    }
}

/// A source: meters polled together at one interval, and the sinks they go to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Unique name.
    pub name: String,
    /// Seconds between polls.
    #[serde(default = "default_interval")]
    pub interval: u64,
    /// Meter names; `*` and `?` match as in shell globs, `!name` excludes.
    pub meters: Vec<String>,
    /// Discoverers to find resources with; empty means each meter's default.
    #[serde(default)]
    pub discovery: Vec<String>,
    /// Static resource ids, polled in addition to discovered ones.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Names of the sinks that receive this source's samples.
    #[serde(default)]
    pub sinks: Vec<String>,
    /// Whether its resources are shared with the other agents of `agent.coordination`
    /// (each polls its share); unset: yes when coordination is set.
    #[serde(default)]
    pub partitioned: Option<bool>,
    /// This agent's share, while it runs with coordination (set by the schedule).
    #[serde(skip)]
    pub partition: Option<std::sync::Arc<crate::coordination::Partition>>,
    /// Meter patterns a sample must also match (from a Ceilometer pipeline source
    /// paired with a polling source); empty: no further filter.
    #[serde(skip)]
    pub also_meters: Vec<String>,
}

fn default_interval() -> u64 {
    600
}

impl Source {
    /// Whether this source selects `meter` (Ceilometer's rules: exclusions win; a
    /// list of only exclusions selects everything else).
    pub fn selects(&self, meter: &str) -> bool {
        patterns_select(&self.meters, meter)
            && (self.also_meters.is_empty() || patterns_select(&self.also_meters, meter))
    }
}

/// Whether Ceilometer's meter patterns select `meter`.
fn patterns_select(patterns: &[String], meter: &str) -> bool {
    let (excluded, included): (Vec<&String>, Vec<&String>) = patterns.iter().partition(|m| m.starts_with('!'));
    if excluded.iter().any(|m| glob_match(&m[1..], meter)) {
        return false;
    }
    included.is_empty() || included.iter().any(|m| glob_match(m, meter))
}

/// A sink: what is computed from the samples sent to it, and where they are
/// published.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sink {
    /// Unique name.
    pub name: String,
    /// Transformers the samples pass through, in order (Ceilometer's `transformers`;
    /// an empty `transformers:` is none).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub transformers: Vec<TransformerConfig>,
    /// Publisher URLs, e.g. `file:///var/log/pollen/samples.jsonl` or `stdout://`.
    #[serde(default)]
    pub publishers: Vec<String>,
}

/// One transformer of a sink: a transformer plugin and its parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerConfig {
    /// The plugin's name (its file's stem), e.g. `rate_of_change`.
    pub name: String,
    /// Its parameters, as Ceilometer writes them (`target: {name: cpu_util, ...}`).
    #[serde(default)]
    pub parameters: serde_yaml::Value,
}

impl TransformerConfig {
    /// The parameters as the plugin reads them: nested keys joined by dots
    /// (`target.name`), values as text. Errors name the keys that are lists.
    pub fn flat_parameters(&self) -> Result<Vec<(String, String)>, String> {
        let mut flat = Vec::new();
        flatten("", &self.parameters, &mut flat)?;
        Ok(flat)
    }
}

fn flatten(prefix: &str, value: &serde_yaml::Value, out: &mut Vec<(String, String)>) -> Result<(), String> {
    match value {
        serde_yaml::Value::Mapping(mapping) => {
            for (key, value) in mapping {
                let Some(key) = scalar_text(key) else {
                    return Err(format!("`{prefix}` has a key that is not text"));
                };
                let key = if prefix.is_empty() { key } else { format!("{prefix}.{key}") };
                flatten(&key, value, out)?;
            }
            Ok(())
        }
        serde_yaml::Value::Null if prefix.is_empty() => Ok(()),
        serde_yaml::Value::Tagged(tagged) => flatten(prefix, &tagged.value, out),
        serde_yaml::Value::Sequence(_) => {
            Err(format!("`{prefix}` is a list; transformer parameters are values or mappings"))
        }
        scalar => {
            out.push((prefix.to_string(), scalar_text(scalar).unwrap_or_default()));
            Ok(())
        }
    }
}

/// `key:` with nothing after it reads as an empty list.
fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// Shell-style glob (Ceilometer uses `fnmatch`): `*` any run, `?` any one character.
fn glob_match(pattern: &str, text: &str) -> bool {
    wildmatch::WildMatch::new(pattern).matches(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(meters: &[&str]) -> Source {
        Source {
            name: "s".into(),
            interval: 60,
            meters: meters.iter().map(|m| m.to_string()).collect(),
            discovery: vec![],
            resources: vec![],
            sinks: vec![],
            partitioned: None,
            partition: None,
            also_meters: vec![],
        }
    }

    #[test]
    fn meters_select_with_globs_and_exclusions() {
        assert!(source(&["cpu"]).selects("cpu"));
        assert!(!source(&["cpu"]).selects("cpu_util"));
        assert!(source(&["memory.*"]).selects("memory.usage"));
        assert!(!source(&["memory.*"]).selects("cpu"));
        assert!(source(&["*", "!cpu"]).selects("memory.usage"));
        assert!(!source(&["*", "!cpu"]).selects("cpu"));
        assert!(source(&["!disk.*"]).selects("cpu"));
        assert!(!source(&["!disk.*"]).selects("disk.root.size"));
        assert!(source(&["c?u"]).selects("cpu"));
    }
}
