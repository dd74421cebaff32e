//! The collector's file: its inputs, the secrets it checks signatures with, and the
//! pipeline's sinks it hands what it receives to.

use crate::config::{ConfigError, ConfigErrors, Sink};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// A whole collector file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorFile {
    /// The collector's own settings.
    pub collector: CollectorSettings,
    /// Where what it receives goes (publishers, as in the agent's pipeline).
    pub sinks: Vec<Sink>,
    /// The file this was read from.
    #[serde(skip)]
    pub origin: PathBuf,
}

/// The `collector` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorSettings {
    /// What it listens to.
    pub inputs: Vec<InputConfig>,
    /// Secrets a message's `message_signature` may be made with (several, for
    /// rotation); `POLLEN_TELEMETRY_SECRETS` (comma-separated) adds to them; none:
    /// signatures are not checked.
    #[serde(default)]
    pub telemetry_secrets: Vec<String>,
    /// How long stored samples are kept, per meter pattern (the first rule that
    /// matches decides; a meter none matches is kept for ever), enforced on every
    /// database publisher of the sinks.
    #[serde(default)]
    pub retention: Vec<crate::store::RetentionRule>,
    /// Addresses to serve the collector's own `/metrics`, `/healthz` and `/readyz` on.
    #[serde(default)]
    pub prometheus_listen: Vec<String>,
    /// Serve Ceilometer's v2 read API too (`listen`, default 127.0.0.1:8777; `store`,
    /// default the sinks' first database publisher; `tokens` or `keystone`).
    #[serde(default)]
    pub api: Option<crate::api::ApiSettings>,
    /// Serve the read API on this address, with the rest of `api` as it is (or its
    /// defaults): `api_listen: X` is `api: {listen: X}`, beside `prometheus_listen`.
    #[serde(default)]
    pub api_listen: Option<String>,
}

/// One input.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// `udp://host:port` (one msgpack metering message per datagram) or
    /// `tcp://host:port` (frames of an 8-byte little-endian length and msgpack).
    pub url: String,
    /// The sinks its samples go to.
    pub sinks: Vec<String>,
}

/// What an input takes messages from.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Datagrams on this address.
    Udp(std::net::SocketAddr),
    /// Length-prefixed frames on connections to this address.
    Tcp(std::net::SocketAddr),
    /// RabbitMQ's notification queues.
    Amqp(super::amqp::AmqpInput),
}

impl InputConfig {
    /// What its URL names.
    pub fn parse(&self) -> Result<Input, String> {
        let (scheme, rest) = self.url.split_once("://").unwrap_or_default();
        let address = || {
            let address = rest.trim_end_matches('/');
            address.parse().map_err(|_| format!("`{address}` is not an address and port, e.g. `127.0.0.1:4952`"))
        };
        match scheme {
            "udp" => address().map(Input::Udp),
            "tcp" => address().map(Input::Tcp),
            "amqp" | "rabbit" => super::amqp::AmqpInput::from_url(&self.url).map(Input::Amqp),
            _ => Err(format!(
                "`{}` is not an input: write `amqp://user:password@host:5672/`, `udp://host:port` or `tcp://host:port`",
                self.url
            )),
        }
    }
}

impl CollectorFile {
    /// The first database a sink stores into: what the API reads unless told.
    pub fn first_store(&self) -> Option<&str> {
        self.sinks
            .iter()
            .flat_map(|sink| &sink.publishers)
            .map(String::as_str)
            .find(|url| crate::store::StoreUrl::parse(url).is_ok())
    }

    /// Reads and checks the file at `path`: every problem at once.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            ConfigErrors::one(ConfigError::new(path, format!("cannot read the collector file: {error}")))
        })?;
        Self::parse(&text, path)
    }

    /// Reads and checks a file's text (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigErrors> {
        let mut file: CollectorFile =
            serde_yaml::from_str(text).map_err(|error| ConfigErrors::one(ConfigError::from_yaml(path, &error)))?;
        file.origin = path.to_path_buf();
        let mut problems = Vec::new();
        if let Some(listen) = file.collector.api_listen.take() {
            let api = file.collector.api.get_or_insert_with(Default::default);
            if api.listen != crate::api::DEFAULT_LISTEN && api.listen != listen {
                problems.push(ConfigError::at(
                    path,
                    "collector.api_listen",
                    format!("says {listen} and `api.listen` says {}: keep one", api.listen),
                ));
            }
            api.listen = listen;
        }
        if let Ok(extra) = std::env::var("POLLEN_TELEMETRY_SECRETS") {
            file.collector
                .telemetry_secrets
                .extend(extra.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from));
        }
        if file.collector.inputs.is_empty() {
            problems.push(ConfigError::at(
                path,
                "collector.inputs",
                "lists no input; add e.g. `- {url: \"udp://0.0.0.0:4952\", sinks: [store]}`",
            ));
        }
        for (index, address) in file.collector.prometheus_listen.iter().enumerate() {
            if address.parse::<std::net::SocketAddr>().is_err() {
                problems.push(ConfigError::at(
                    path,
                    format!("collector.prometheus_listen[{index}]"),
                    format!("`{address}` is not an address and port, e.g. `127.0.0.1:9102`"),
                ));
            }
        }
        if let Some(api) = &file.collector.api {
            if let Err(why) = api.check() {
                problems.push(ConfigError::at(path, "collector.api", why));
            }
            if let Err(why) = api.store_url(file.first_store()) {
                problems.push(ConfigError::at(path, "collector.api", why));
            }
            if api.store.is_none() && file.first_store().is_none() {
                problems.push(ConfigError::at(
                    path,
                    "collector.api",
                    "no sink stores into a database: give the API a `store` to read, or add `database://` to a sink",
                ));
            }
        }
        for (index, input) in file.collector.inputs.iter().enumerate() {
            if let Err(why) = input.parse() {
                problems.push(ConfigError::at(path, format!("collector.inputs[{index}].url"), why));
            }
            for name in &input.sinks {
                if !file.sinks.iter().any(|s| &s.name == name) {
                    let known: Vec<&str> = file.sinks.iter().map(|s| s.name.as_str()).collect();
                    problems.push(ConfigError::at(
                        path,
                        format!("collector.inputs[{index}].sinks"),
                        format!("no sink is named `{name}`{}", crate::suggest::did_you_mean(name, known)),
                    ));
                }
            }
        }
        for (index, sink) in file.sinks.iter().enumerate() {
            if sink.publishers.is_empty() {
                problems.push(ConfigError::at(
                    path,
                    format!("sinks[{index}].publishers"),
                    "lists no publisher: what its inputs receive would be lost; add e.g. `database://`",
                ));
            }
            if !sink.transformers.is_empty() {
                problems.push(ConfigError::at(
                    path,
                    format!("sinks[{index}].transformers"),
                    "the collector runs no transformers yet; transform in the agent",
                ));
            }
            for (at, url) in sink.publishers.iter().enumerate() {
                if let Err(error) = crate::publish::PublisherConfig::parse(url) {
                    problems.push(ConfigError::at(path, format!("sinks[{index}].publishers[{at}]"), error.to_string()));
                }
            }
        }
        if problems.is_empty() {
            return Ok(file);
        }
        let places = crate::config::yaml_places::Places::of(text);
        for problem in &mut problems {
            if let Some(place) = problem.path.as_deref().and_then(|path| places.nearest(path)) {
                problem.location = Some(place.value);
            }
        }
        Err(ConfigErrors(problems))
    }
}
