//! Names the pipeline gives that no loaded plugin answers to: a source's
//! `discovery:` entry, the discoverer a selected meter defaults to, an
//! `agent.plugins` entry. Each is an error with a did-you-mean, so that a misspelt
//! name stops `validate` and `run` instead of polling nothing.

use super::PluginSet;
use crate::config::{ConfigError, Pipeline};
use crate::suggest::did_you_mean;

/// Every name of `pipeline` that no plugin of `plugins` answers to.
pub fn unanswered(pipeline: &Pipeline, plugins: &PluginSet) -> Vec<ConfigError> {
    let file = &pipeline.origin;
    let discoverers: Vec<&str> = plugins.discoverers.keys().map(String::as_str).collect();
    let mut problems = Vec::new();
    for (index, source) in pipeline.sources.iter().enumerate() {
        for (at, entry) in source.discovery.iter().enumerate() {
            // Ceilometer's `name:parameter`: the name picks the plugin.
            let name = entry.split_once(':').map_or(entry.as_str(), |(name, _)| name);
            if !plugins.discoverers.contains_key(name) {
                problems.push(ConfigError::at(
                    file,
                    format!("sources[{index}].discovery[{at}]"),
                    format!(
                        "no plugin provides the discoverer `{name}`{}; its meters would get no resources",
                        did_you_mean(name, discoverers.iter().copied())
                    ),
                ));
            }
        }
        if !source.discovery.is_empty() || !source.resources.is_empty() {
            continue;
        }
        for pollster in plugins.pollsters() {
            for spec in pollster.info.meters.iter().filter(|spec| source.selects(&spec.meter.name)) {
                let Some(entry) = spec.default_discoverer.as_deref() else { continue };
                let name = entry.split_once(':').map_or(entry, |(name, _)| name);
                if !plugins.discoverers.contains_key(name) {
                    problems.push(ConfigError::at(
                        file,
                        format!("sources[{index}].meters"),
                        format!(
                            "the meter `{}` (plugin `{}`) is discovered by `{name}`, which no plugin provides{}; \
                             add that plugin, or give the source a `discovery:`",
                            spec.meter.name,
                            pollster.name(),
                            did_you_mean(name, discoverers.iter().copied())
                        ),
                    ));
                }
            }
        }
    }
    let loaded: Vec<&str> = plugins.all.iter().map(|p| p.name()).collect();
    let builtin = crate::config::builtin::COMPUTE_PLUGINS.iter().chain(crate::config::builtin::CENTRAL_DISCOVERERS);
    let builtin: Vec<&str> = builtin.copied().collect();
    for name in pipeline.agent.plugins.keys() {
        // The built-ins' default grants name them whether or not they are in the folder.
        if !loaded.contains(&name.as_str()) && !builtin.contains(&name.as_str()) {
            problems.push(ConfigError::at(
                file,
                format!("agent.plugins.{name}"),
                format!(
                    "names no plugin in {}{}; its settings would go unused",
                    pipeline.agent.plugin_dir.display(),
                    did_you_mean(name, loaded.iter().copied())
                ),
            ));
        }
    }
    problems
}

/// A meter pattern of the sources that no loaded pollster provides.
pub struct Unprovided {
    /// The pattern, as the sources write it.
    pub pattern: String,
    /// The sources listing it.
    pub sources: Vec<String>,
    /// ` (did you mean `cpu`?)`, or nothing.
    pub suggestion: String,
}

/// Every meter pattern of `pipeline`'s sources (but `!exclusions`) no pollster of
/// `plugins` provides: a warning for `validate` and `run` (a plugin may be dropped
/// in later), an error for `poll --once`.
pub fn unprovided_meters(pipeline: &Pipeline, plugins: &PluginSet) -> Vec<Unprovided> {
    let provided: Vec<&str> =
        plugins.pollsters().flat_map(|p| p.info.meters.iter()).map(|spec| spec.meter.name.as_str()).collect();
    let mut found: Vec<Unprovided> = Vec::new();
    for source in &pipeline.sources {
        for pattern in source.meters.iter().filter(|m| !m.starts_with('!')) {
            let matcher = wildmatch::WildMatch::new(pattern);
            if provided.iter().any(|name| matcher.matches(name)) {
                continue;
            }
            match found.iter_mut().find(|u| &u.pattern == pattern) {
                Some(entry) => entry.sources.push(source.name.clone()),
                None => found.push(Unprovided {
                    pattern: pattern.clone(),
                    sources: vec![source.name.clone()],
                    suggestion: did_you_mean(pattern, provided.iter().copied()),
                }),
            }
        }
    }
    found
}
