//! Checks that need the whole file: names, references, numbers, publisher URLs.

use super::error::ConfigError;
use super::model::{scalar_text, Agent, Grant, Pipeline};
use crate::caps::http::{AllowedHosts, HttpClient};
use crate::publish::PublisherConfig;
use std::collections::BTreeSet;

/// Every problem of a parsed pipeline, in document order.
pub(super) fn check(pipeline: &Pipeline) -> Vec<ConfigError> {
    let file = pipeline.origin.as_path();
    let mut problems = Vec::new();
    let mut fail = |path: String, message: String| problems.push(ConfigError::at(file, path, message));

    let agent = &pipeline.agent;
    if agent.memory_limit_mib == 0 {
        fail("agent.memory_limit_mib".into(), "must be at least 1 (MiB)".into());
    }
    if !(agent.call_timeout > 0.0 && agent.call_timeout.is_finite()) {
        fail("agent.call_timeout".into(), "must be a positive number of seconds".into());
    }
    if !(agent.load_timeout > 0.0 && agent.load_timeout.is_finite()) {
        fail("agent.load_timeout".into(), "must be a positive number of seconds".into());
    }
    if !(agent.compile_wait >= 0.0 && agent.compile_wait.is_finite()) {
        fail("agent.compile_wait".into(), "must be zero or a positive number of seconds".into());
    }
    for (key, value) in [
        ("max_plugin_mib", agent.max_plugin_mib),
        ("max_function_kib", agent.max_function_kib),
        ("compile_memory_mib", agent.compile_memory_mib),
    ] {
        if value == 0 {
            fail(format!("agent.{key}"), "must be at least 1".into());
        }
    }
    if agent.log_lines_per_second == 0 {
        fail("agent.log_lines_per_second".into(), "must be at least 1".into());
    }
    if !(agent.start_jitter >= 0.0 && agent.start_jitter.is_finite()) {
        fail("agent.start_jitter".into(), "must be 0 or a positive number of seconds".into());
    }
    if !(agent.libvirt_timeout > 0.0 && agent.libvirt_timeout.is_finite()) {
        fail("agent.libvirt_timeout".into(), "must be a positive number of seconds".into());
    } else if agent.libvirt_timeout >= agent.call_wall_timeout {
        fail(
            "agent.libvirt_timeout".into(),
            format!(
                "must be below agent.call_wall_timeout ({}), or a plugin waiting on libvirt is cut off before libvirt's own timeout",
                agent.call_wall_timeout
            ),
        );
    }
    if !(agent.call_wall_timeout > 0.0 && agent.call_wall_timeout.is_finite()) {
        fail("agent.call_wall_timeout".into(), "must be a positive number of seconds".into());
    } else if agent.call_wall_timeout < agent.call_timeout {
        fail(
            "agent.call_wall_timeout".into(),
            format!("must be at least agent.call_timeout ({}): wall time includes the call's own", agent.call_timeout),
        );
    }
    for (index, address) in agent.prometheus_listen.iter().enumerate() {
        if address.parse::<std::net::SocketAddr>().is_err() {
            fail(
                format!("agent.prometheus_listen[{index}]"),
                format!("`{address}` is not an address and port, e.g. `127.0.0.1:9101` or `[::1]:9101`"),
            );
        }
    }
    check_http(agent, &mut fail);
    if let Some(coordination) = &agent.coordination {
        check_coordination(coordination, &mut fail);
    }
    for (name, plugin) in &agent.plugins {
        if plugin.memory_limit_mib == Some(0) {
            fail(format!("agent.plugins.{name}.memory_limit_mib"), "must be at least 1 (MiB)".into());
        }
        if plugin.call_timeout.is_some_and(|t| !(t > 0.0 && t.is_finite())) {
            fail(format!("agent.plugins.{name}.call_timeout"), "must be a positive number of seconds".into());
        }
        if plugin.call_wall_timeout.is_some_and(|t| !(t > 0.0 && t.is_finite())) {
            fail(format!("agent.plugins.{name}.call_wall_timeout"), "must be a positive number of seconds".into());
        } else if agent.call_wall_timeout(name) < agent.call_timeout(name) {
            fail(
                format!("agent.plugins.{name}.call_wall_timeout"),
                format!(
                    "must be at least the plugin's call_timeout ({:?}): wall time includes the call's own",
                    agent.call_timeout(name)
                ),
            );
        }
        for (key, value) in &plugin.params {
            if scalar_text(value).is_none() {
                fail(
                    format!("agent.plugins.{name}.params.{key}"),
                    "must be a string, number or boolean; plugins read parameters as text".into(),
                );
            }
        }
    }

    let mut sink_names = BTreeSet::new();
    for (index, sink) in pipeline.sinks.iter().enumerate() {
        if !sink_names.insert(sink.name.as_str()) {
            fail(format!("sinks[{index}].name"), format!("sink `{}` is defined twice", sink.name));
        }
        if sink.publishers.is_empty() {
            fail(format!("sinks[{index}].publishers"), format!("sink `{}` has no publisher", sink.name));
        }
        for (t, transformer) in sink.transformers.iter().enumerate() {
            if let Err(message) = transformer.flat_parameters() {
                fail(format!("sinks[{index}].transformers[{t}].parameters"), message);
            }
        }
        for (p, url) in sink.publishers.iter().enumerate() {
            if let Err(error) = PublisherConfig::parse(url) {
                fail(format!("sinks[{index}].publishers[{p}]"), error.to_string());
            }
        }
    }

    let mut source_names = BTreeSet::new();
    let mut used_sinks = BTreeSet::new();
    for (index, source) in pipeline.sources.iter().enumerate() {
        if !source_names.insert(source.name.as_str()) {
            fail(format!("sources[{index}].name"), format!("source `{}` is defined twice", source.name));
        }
        if source.interval == 0 {
            fail(format!("sources[{index}].interval"), "must be at least 1 (seconds)".into());
        }
        if source.meters.is_empty() {
            fail(format!("sources[{index}].meters"), "lists no meter; use `\"*\"` for all".into());
        }
        if source.sinks.is_empty() {
            fail(format!("sources[{index}].sinks"), format!("source `{}` sends to no sink", source.name));
        }
        for sink in &source.sinks {
            used_sinks.insert(sink.as_str());
            if !sink_names.contains(sink.as_str()) {
                let known: Vec<&str> = sink_names.iter().copied().collect();
                fail(
                    format!("sources[{index}].sinks"),
                    format!(
                        "unknown sink `{sink}`{}; the sinks are: {}",
                        crate::suggest::did_you_mean(sink, known.iter().map(|k| &**k)),
                        known.join(", ")
                    ),
                );
            }
        }
    }
    for (index, sink) in pipeline.sinks.iter().enumerate() {
        if !used_sinks.contains(sink.name.as_str()) {
            fail(
                format!("sinks[{index}]"),
                format!("no source sends to sink `{}`; add it to a source's `sinks`, or remove it", sink.name),
            );
        }
    }
    problems
}

/// `agent.http`, and each plugin's `allowed_hosts` with its `http` grant.
fn check_http(agent: &Agent, fail: &mut impl FnMut(String, String)) {
    let http = &agent.http;
    for (key, value) in [("connect_timeout", http.connect_timeout), ("request_timeout", http.request_timeout)] {
        if !(value > 0.0 && value.is_finite()) {
            fail(format!("agent.http.{key}"), "must be a positive number of seconds".into());
        }
    }
    if http.max_response_mib == 0 {
        fail("agent.http.max_response_mib".into(), "must be at least 1 (MiB)".into());
    }
    if http.max_concurrent_requests == 0 {
        fail("agent.http.max_concurrent_requests".into(), "must be at least 1".into());
    }
    let granted = agent.plugins.values().any(|p| p.grants().contains(&Grant::Http));
    if granted || http.ca_file.is_some() {
        if let Err(error) = HttpClient::new(http) {
            fail("agent.http.ca_file".into(), error.to_string());
        }
    }
    for (name, plugin) in &agent.plugins {
        let grants_http = plugin.grants().contains(&Grant::Http);
        if grants_http && plugin.allowed_hosts.is_empty() {
            fail(
                format!("agent.plugins.{name}.allowed_hosts"),
                "the plugin is granted `http` but may reach no origin; list them, e.g. `allowed_hosts: [\"https://glance.example:9292\"]`".into(),
            );
        }
        if !grants_http && !plugin.allowed_hosts.is_empty() {
            fail(
                format!("agent.plugins.{name}.allowed_hosts"),
                "has no effect without the `http` grant; add `http` to the plugin's `grants`".into(),
            );
        }
        if let Err((index, why)) = AllowedHosts::parse(&plugin.allowed_hosts) {
            fail(format!("agent.plugins.{name}.allowed_hosts[{index}]"), why);
        }
        for (index, credential) in plugin.credentials.iter().enumerate() {
            if !agent.credentials.contains_key(credential) {
                let known: Vec<&str> = agent.credentials.keys().map(String::as_str).collect();
                fail(
                    format!("agent.plugins.{name}.credentials[{index}]"),
                    format!(
                        "`{credential}` is not in agent.credentials{}",
                        crate::suggest::did_you_mean(credential, known)
                    ),
                );
            } else if !grants_http {
                fail(
                    format!("agent.plugins.{name}.credentials"),
                    "has no effect without the `http` grant; add `http` to the plugin's `grants`".into(),
                );
            }
        }
    }
    for (name, credential) in &agent.credentials {
        if let Err(why) = crate::caps::http::HostCredential::resolve(name, credential) {
            fail(format!("agent.credentials.{name}"), why);
        }
    }
}

fn check_coordination(settings: &super::CoordinationSettings, fail: &mut impl FnMut(String, String)) {
    let scheme = settings.backend_url.split_once("://").map(|(scheme, _)| scheme);
    if !matches!(scheme, Some("redis" | "rediss")) || redis::Client::open(settings.backend_url.as_str()).is_err() {
        fail(
            "agent.coordination.backend_url".into(),
            format!(
                "`{}` is not a Redis URL: write `redis://host:port` (Pollen coordinates through Redis only)",
                settings.backend_url
            ),
        );
    }
    if !(settings.heartbeat > 0.0 && settings.heartbeat.is_finite()) {
        fail("agent.coordination.heartbeat".into(), "must be a positive number of seconds".into());
    } else if !(settings.membership_timeout >= 2.0 * settings.heartbeat && settings.membership_timeout.is_finite()) {
        fail(
            "agent.coordination.membership_timeout".into(),
            format!("must be at least twice the heartbeat ({} s), or a live member may be dropped", settings.heartbeat),
        );
    }
    if settings.group_prefix.is_empty() {
        fail("agent.coordination.group_prefix".into(), "must not be empty".into());
    }
}

/// The OpenStack credentials, if a plugin is granted `openstack`: (option, problem).
/// Checked once every source of them is known (`--config-file`), by the command line.
pub(crate) fn check_openstack(agent: &Agent) -> Vec<(String, String)> {
    // Those the pipeline grants it, and the built-ins granted it by default whose
    // file is in the plugin folder.
    let mut granted: Vec<String> = agent
        .plugins
        .iter()
        .filter(|(_, p)| p.grants().contains(&Grant::Openstack))
        .map(|(name, _)| name.clone())
        .collect();
    granted.extend(
        super::builtin::CENTRAL_DISCOVERERS
            .iter()
            .filter(|name| agent.plugins.get(**name).is_none_or(|p| p.grants.is_none()))
            .filter(|name| agent.plugin_dir.join(format!("{name}.wasm")).is_file())
            .map(|name| name.to_string()),
    );
    let Some(first) = granted.first() else {
        return Vec::new();
    };
    let credentials = &agent.openstack;
    if !credentials.is_set() {
        return vec![(
            format!("agent.plugins.{first}.grants"),
            "grants `openstack`, but the agent has no service credentials: set `agent.openstack` (auth_url, username, password, user_domain_name, project_name, project_domain_name), give Ceilometer's ceilometer.conf with --config-file, or set the OS_* variables".into(),
        )];
    }
    credentials
        .problems()
        .into_iter()
        .map(|(option, problem)| {
            (format!("agent.openstack.{option}"), format!("{problem} (credentials from {})", credentials.origin))
        })
        .collect()
}
