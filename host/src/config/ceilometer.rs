//! Ceilometer's own files, as they are: `polling.yaml` (what is polled, how often) and
//! `pipeline.yaml` (which meters go to which sinks, their transformers and
//! publishers), including the older pipeline files whose sources carry `interval`.
//!
//! They become one Pollen [`Pipeline`]:
//! - `polling.yaml` and `pipeline.yaml`: one Pollen source per pair of a polling
//!   source and a pipeline source, polling the polling source's meters at its
//!   interval and sending those the pipeline source also selects to its sinks (the
//!   cycle still polls each meter once);
//! - `pipeline.yaml` alone: its sources are polled as they are (`interval` defaults
//!   to 600 s, as in Ceilometer);
//! - `polling.yaml` alone: what `ceilometer-polling` does, every sample to the
//!   notification bus (`notifier://`).
//!
//! Keys Pollen has no use for are warned about, by key, and ignored; publisher URLs
//! and transformers Pollen lacks are errors, as in a Pollen file. The agent's own
//! settings come from a Pollen file's `agent` section if one is given, else from
//! defaults, which grant the built-in plugins what they need (`config::builtin`).

use super::error::{ConfigError, ConfigErrors};
use super::model::{Agent, Pipeline, Sink, Source, TransformerConfig};
use serde_yaml::Value;
use std::path::{Path, PathBuf};

/// Where `make plugins` puts the built-in central plugins (the compute ones go to
/// `agent.plugin_dir`'s default, `plugins/dist`).
pub const CENTRAL_PLUGIN_DIR: &str = "plugins/dist-central";

/// Which of Ceilometer's polling agents Pollen stands in for (`ceilometer-polling
/// --polling-namespaces`): it picks the built-in plugins and their grants when no
/// Pollen file gives the agent's settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Namespace {
    /// The compute agent: the hypervisor's meters (`plugins/dist`).
    #[default]
    Compute,
    /// The central agent: the OpenStack APIs' meters (`plugins/dist-central`).
    Central,
}

impl Namespace {
    /// Ceilometer's name for it, as dynamic pollsters' `namespaces` write it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Compute => "compute",
            Self::Central => "central",
        }
    }
}

/// Ceilometer's default polling interval for a pipeline source that names none.
const DEFAULT_INTERVAL: u64 = 600;

/// What to read.
pub struct CeilometerFiles<'a> {
    /// `polling.yaml`, if given.
    pub polling: Option<&'a Path>,
    /// `pipeline.yaml`, if given.
    pub pipeline: Option<&'a Path>,
    /// The agent's settings, if given (a Pollen file's `agent` section).
    pub agent: Option<Agent>,
    /// Which agent, for the settings when `agent` is none.
    pub namespace: Namespace,
}

/// One Ceilometer file, parsed.
struct Document {
    path: PathBuf,
    root: Value,
}

impl Document {
    fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| ConfigError::new(path, format!("cannot read the file: {error}")))?;
        let root: Value = serde_yaml::from_str(&text).map_err(|error| ConfigError::from_yaml(path, &error))?;
        Ok(Self { path: path.to_path_buf(), root })
    }

    /// Calls `f` with each entry of a top-level list (`sources`, `sinks`) and its name;
    /// an entry that is not a mapping with a name is reported instead, and keys outside
    /// `known` are warned about.
    fn each_named(
        &self,
        key: &str,
        known: &[&str],
        problems: &mut Vec<ConfigError>,
        warnings: &mut Vec<ConfigError>,
        mut f: impl FnMut(&Entry<'_>, String, &mut Vec<ConfigError>),
    ) {
        let items = match self.root.get(key) {
            None | Some(Value::Null) => return,
            Some(Value::Sequence(items)) => items,
            Some(_) => return problems.push(ConfigError::at(&self.path, key, "must be a list")),
        };
        for (index, value) in items.iter().enumerate() {
            let entry = Entry { value, place: format!("{key}[{index}]"), file: &self.path };
            if !value.is_mapping() {
                problems.push(ConfigError::at(&self.path, entry.place, "must be a mapping with a name"));
                continue;
            }
            entry.warn_unknown(known, warnings);
            match entry.text("name", problems) {
                Some(name) => f(&entry, name, problems),
                None => problems.push(ConfigError::at(&self.path, format!("{}.name", entry.place), "is required")),
            }
        }
    }
}

/// Reads what an entry of a Ceilometer file holds, warning about keys it ignores.
struct Entry<'a> {
    value: &'a Value,
    place: String,
    file: &'a Path,
}

impl Entry<'_> {
    fn text(&self, key: &str, problems: &mut Vec<ConfigError>) -> Option<String> {
        match self.value.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(Value::Number(number)) => Some(number.to_string()),
            Some(_) => {
                problems.push(ConfigError::at(self.file, format!("{}.{key}", self.place), "must be text"));
                None
            }
        }
    }

    fn texts(&self, key: &str, problems: &mut Vec<ConfigError>) -> Vec<String> {
        match self.value.get(key) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Sequence(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(index, item)| match item {
                    Value::String(text) => Some(text.clone()),
                    Value::Number(number) => Some(number.to_string()),
                    _ => {
                        let place = format!("{}.{key}[{index}]", self.place);
                        problems.push(ConfigError::at(self.file, place, "must be text"));
                        None
                    }
                })
                .collect(),
            Some(_) => {
                problems.push(ConfigError::at(self.file, format!("{}.{key}", self.place), "must be a list"));
                Vec::new()
            }
        }
    }

    fn interval(&self, problems: &mut Vec<ConfigError>) -> Option<u64> {
        let value = self.value.get("interval")?;
        match value.as_u64() {
            Some(seconds) => Some(seconds),
            None => {
                let place = format!("{}.interval", self.place);
                problems.push(ConfigError::at(self.file, place, "must be a whole number of seconds"));
                None
            }
        }
    }

    /// Warns about every key but `known`.
    fn warn_unknown(&self, known: &[&str], warnings: &mut Vec<ConfigError>) {
        let Some(mapping) = self.value.as_mapping() else { return };
        for key in mapping.keys() {
            let key = key.as_str().unwrap_or("?");
            if !known.contains(&key) {
                warnings.push(ConfigError::at(
                    self.file,
                    format!("{}.{key}", self.place),
                    format!("ignored: Pollen reads only {} here", known.join(", ")),
                ));
            }
        }
    }
}

/// A source as a Ceilometer file gives it.
struct CeilometerSource {
    name: String,
    interval: Option<u64>,
    meters: Vec<String>,
    resources: Vec<String>,
    discovery: Vec<String>,
    sinks: Vec<String>,
}

impl CeilometerSource {
    /// The Pollen source polling this one's meters, sending those `also_meters` also
    /// selects to `sinks`.
    fn polled(&self, also_meters: Vec<String>, sinks: Vec<String>) -> Source {
        Source {
            name: self.name.clone(),
            interval: self.interval.unwrap_or(DEFAULT_INTERVAL),
            meters: self.meters.clone(),
            also_meters,
            discovery: self.discovery.clone(),
            resources: self.resources.clone(),
            sinks,
            partitioned: None,
            partition: None,
        }
    }
}

fn sources(
    document: &Document,
    problems: &mut Vec<ConfigError>,
    warnings: &mut Vec<ConfigError>,
) -> Vec<CeilometerSource> {
    let known = ["name", "interval", "meters", "resources", "discovery", "sinks"];
    let mut found = Vec::new();
    document.each_named("sources", &known, problems, warnings, |entry, name, problems| {
        found.push(CeilometerSource {
            name,
            interval: entry.interval(problems),
            meters: entry.texts("meters", problems),
            resources: entry.texts("resources", problems),
            discovery: entry.texts("discovery", problems),
            sinks: entry.texts("sinks", problems),
        })
    });
    found
}

fn sinks(document: &Document, problems: &mut Vec<ConfigError>, warnings: &mut Vec<ConfigError>) -> Vec<Sink> {
    let mut found = Vec::new();
    let known = ["name", "transformers", "publishers"];
    document.each_named("sinks", &known, problems, warnings, |entry, name, problems| {
        let transformers = match entry.value.get("transformers") {
            None | Some(Value::Null) => Vec::new(),
            Some(list) => match serde_yaml::from_value::<Vec<TransformerConfig>>(list.clone()) {
                Ok(transformers) => transformers,
                Err(error) => {
                    let place = format!("{}.transformers", entry.place);
                    problems.push(ConfigError::at(&document.path, place, error.to_string()));
                    Vec::new()
                }
            },
        };
        found.push(Sink { name, transformers, publishers: entry.texts("publishers", problems) });
    });
    found
}

/// The agent settings used when no Pollen file gives them: the defaults (the
/// built-in plugins granted what they need, `config::builtin`), with (`central`) the
/// built-in central plugins' folder.
pub fn default_agent(namespace: Namespace) -> Agent {
    let mut agent = Agent::default();
    if namespace == Namespace::Central {
        agent.plugin_dir = CENTRAL_PLUGIN_DIR.into();
    }
    agent
}

/// Reads Ceilometer's files into one pipeline, with the warnings about what was
/// ignored. Every problem of every file is reported at once.
pub fn load(files: CeilometerFiles<'_>) -> Result<Pipeline, ConfigErrors> {
    let (mut problems, mut warnings) = (Vec::new(), Vec::new());
    let mut read =
        |path: Option<&Path>| path.and_then(|path| Document::read(path).map_err(|error| problems.push(error)).ok());
    let (polling, pipeline) = (read(files.polling), read(files.pipeline));
    if !problems.is_empty() {
        return Err(ConfigErrors(problems));
    }
    let origin = files.pipeline.or(files.polling).unwrap_or(Path::new("pipeline.yaml")).to_path_buf();
    let mut result = Pipeline {
        agent: files.agent.unwrap_or_else(|| default_agent(files.namespace)),
        sources: Vec::new(),
        sinks: Vec::new(),
        origin: origin.clone(),
        warnings: Vec::new(),
    };

    for document in polling.iter().chain(pipeline.iter()) {
        if document.root.is_sequence() {
            problems.push(ConfigError::new(
                &document.path,
                "a list at the top is Ceilometer's pre-Liberty pipeline format; write it as `sources` and `sinks`",
            ));
        }
    }
    match (&polling, &pipeline) {
        (Some(polling), Some(pipeline)) => {
            let polled = sources(polling, &mut problems, &mut warnings);
            for (index, source) in polled.iter().enumerate() {
                if !source.sinks.is_empty() {
                    warnings.push(ConfigError::at(
                        &polling.path,
                        format!("sources[{index}].sinks"),
                        "ignored: with a pipeline file, its sources say where samples go",
                    ));
                }
            }
            let routes = sources(pipeline, &mut problems, &mut warnings);
            for (index, route) in routes.iter().enumerate() {
                for (key, set) in [
                    ("interval", route.interval.is_some()),
                    ("resources", !route.resources.is_empty()),
                    ("discovery", !route.discovery.is_empty()),
                ] {
                    if set {
                        warnings.push(ConfigError::at(
                            &pipeline.path,
                            format!("sources[{index}].{key}"),
                            "ignored: with a polling file, its sources say what is polled and how often",
                        ));
                    }
                }
            }
            for source in &polled {
                for route in &routes {
                    let pair = Source {
                        name: format!("{}/{}", source.name, route.name),
                        ..source.polled(route.meters.clone(), route.sinks.clone())
                    };
                    result.sources.push(pair);
                }
            }
            result.sinks = sinks(pipeline, &mut problems, &mut warnings);
        }
        (None, Some(pipeline)) => {
            for source in sources(pipeline, &mut problems, &mut warnings) {
                result.sources.push(source.polled(Vec::new(), source.sinks.clone()));
            }
            result.sinks = sinks(pipeline, &mut problems, &mut warnings);
        }
        (Some(polling), None) => {
            for source in sources(polling, &mut problems, &mut warnings) {
                result.sources.push(source.polled(Vec::new(), vec!["notifier".into()]));
            }
            result.sinks = vec![Sink {
                name: "notifier".into(),
                transformers: Vec::new(),
                publishers: vec!["notifier://".into()],
            }];
            warnings.push(ConfigError::new(
                &polling.path,
                "no pipeline file: every sample goes to the notification bus (`notifier://`), as ceilometer-polling does",
            ));
        }
        (None, None) => problems.push(ConfigError::new(&origin, "give --polling, --pipeline or both")),
    }
    // A pipeline source that no polling source feeds is not an error here: Ceilometer
    // accepts it (its meters may come from notifications).
    result.sinks.retain(|sink| {
        let used = result.sources.iter().any(|s| s.sinks.contains(&sink.name));
        if !used {
            warnings.push(ConfigError::new(&origin, format!("sink `{}` receives nothing; ignored", sink.name)));
        }
        used
    });
    problems.extend(super::check::check(&result));
    if !problems.is_empty() {
        return Err(ConfigErrors(problems));
    }
    result.warnings = warnings;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn polling_and_pipeline_sources_pair_up() {
        let dir = tempfile::tempdir().unwrap();
        let polling = write(
            dir.path(),
            "polling.yaml",
            "sources:\n  - name: fast\n    interval: 60\n    meters: [cpu, memory.usage]\n    discovery: [local_instances]\n    extra_key: 1\n  - name: slow\n    interval: 600\n    meters: ['disk.*']\n",
        );
        let pipeline = write(
            dir.path(),
            "pipeline.yaml",
            "sources:\n  - name: all\n    meters: ['*']\n    sinks: [raw]\n  - name: cpu\n    interval: 5\n    meters: [cpu]\n    sinks: [util]\nsinks:\n  - name: raw\n    publishers: ['stdout://']\n  - name: util\n    transformers:\n      - name: rate_of_change\n        parameters:\n          target: {name: cpu_util, scale: '100.0 / 10**9'}\n    publishers: ['stdout://']\n    retry: 3\n",
        );
        let loaded = load(CeilometerFiles {
            polling: Some(&polling),
            pipeline: Some(&pipeline),
            agent: None,
            namespace: Namespace::Compute,
        })
        .unwrap();
        let sources: Vec<(&str, u64, bool, bool)> = loaded
            .sources
            .iter()
            .map(|s| (s.name.as_str(), s.interval, s.selects("cpu"), s.selects("disk.device.read.bytes")))
            .collect();
        assert_eq!(
            sources,
            vec![
                ("fast/all", 60, true, false),
                ("fast/cpu", 60, true, false),
                ("slow/all", 600, false, true),
                ("slow/cpu", 600, false, false),
            ]
        );
        assert_eq!(loaded.sources[0].discovery, vec!["local_instances"]);
        assert_eq!(loaded.sources[1].sinks, vec!["util"]);
        let util = &loaded.sinks[1];
        assert_eq!(util.transformers[0].name, "rate_of_change");
        assert!(util.transformers[0].flat_parameters().unwrap().contains(&("target.name".into(), "cpu_util".into())));
        let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
        assert!(warnings.iter().any(|w| w.contains("polling.yaml: sources[0].extra_key: ignored")), "{warnings:?}");
        assert!(warnings.iter().any(|w| w.contains("pipeline.yaml: sources[1].interval: ignored")), "{warnings:?}");
        assert!(warnings.iter().any(|w| w.contains("pipeline.yaml: sinks[1].retry: ignored")), "{warnings:?}");
        assert!(
            loaded.agent.plugin("cpu").grants().contains(&crate::config::Grant::Hypervisor),
            "compute plugins granted by default"
        );
    }

    #[test]
    fn a_polling_file_alone_publishes_to_the_notification_bus() {
        let dir = tempfile::tempdir().unwrap();
        let polling =
            write(dir.path(), "polling.yaml", "sources:\n  - name: all\n    interval: 300\n    meters: ['*']\n");
        let loaded = load(CeilometerFiles {
            polling: Some(&polling),
            pipeline: None,
            agent: None,
            namespace: Namespace::Compute,
        })
        .unwrap();
        assert_eq!(loaded.sources[0].sinks, vec!["notifier"]);
        assert_eq!(loaded.sinks[0].publishers, vec!["notifier://"]);
    }

    #[test]
    fn problems_are_reported_with_file_and_place() {
        let dir = tempfile::tempdir().unwrap();
        let bad_yaml = write(dir.path(), "pipeline.yaml", "sources:\n  - name: a\n   meters: [x]\n");
        let errors = load(CeilometerFiles {
            polling: None,
            pipeline: Some(&bad_yaml),
            agent: None,
            namespace: Namespace::Compute,
        })
        .unwrap_err();
        assert!(errors.0[0].location.is_some(), "{errors}");
        let legacy = write(dir.path(), "old.yaml", "- name: meter_pipeline\n  interval: 600\n");
        let errors = load(CeilometerFiles {
            polling: None,
            pipeline: Some(&legacy),
            agent: None,
            namespace: Namespace::Compute,
        })
        .unwrap_err();
        assert!(errors.to_string().contains("pre-Liberty"), "{errors}");
        let unnamed = write(
            dir.path(),
            "unnamed.yaml",
            "sources:\n  - meters: [cpu]\n    sinks: [s]\nsinks:\n  - name: s\n    publishers: ['kafka://x']\n",
        );
        let errors = load(CeilometerFiles {
            polling: None,
            pipeline: Some(&unnamed),
            agent: None,
            namespace: Namespace::Compute,
        })
        .unwrap_err()
        .to_string();
        assert!(errors.contains("sources[0].name: is required"), "{errors}");
    }
}
