//! Ceilometer's dynamic-pollster definitions (`pollsters.d/*.yaml`): the folders
//! named by `agent.pollsters_definitions_dirs` (else `ceilometer.conf`'s
//! `pollsters_definitions_dirs`, else Ceilometer's `/etc/ceilometer/pollsters.d`),
//! read and checked here with every problem at its line and column; the `dynamic`
//! plugin runs each definition in an instance of its own.

use super::error::{ConfigError, ConfigErrors};
use super::model::Pipeline;
use super::yaml_places::Places;
use pollen_dynamic::{Definition, DefinitionError};
use std::path::{Path, PathBuf};

/// Ceilometer's default folder of definitions.
pub const DEFAULT_DIR: &str = "/etc/ceilometer/pollsters.d";

/// The plugin (file stem) that runs the definitions.
pub const DYNAMIC_PLUGIN: &str = "dynamic";

/// One definition, checked, for the `dynamic` plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicPollster {
    /// Its meter's name (`name`).
    pub name: String,
    /// The file it is defined in.
    pub file: PathBuf,
    /// The definition as written, in JSON (what the plugin's `definition` parameter carries).
    pub definition: serde_json::Value,
}

/// Reads the definitions of the folders in force into the pipeline's agent: its
/// `agent.pollsters_definitions_dirs`, else `ceilometer_conf`'s, else Ceilometer's
/// default; for its `agent.polling_namespaces`, else `namespace` (the command line's
/// `--polling-namespaces`). Their warnings join the pipeline's.
pub fn resolve(
    pipeline: &mut Pipeline,
    ceilometer_conf: Option<&super::ceilometer_conf::CeilometerConf>,
    namespace: &str,
) -> Result<(), ConfigErrors> {
    let agent = &mut pipeline.agent;
    if agent.pollsters_definitions_dirs.is_none() {
        agent.pollsters_definitions_dirs = ceilometer_conf.and_then(|conf| conf.definitions_dirs());
    }
    let dirs = agent.pollsters_definitions_dirs.clone().unwrap_or_else(|| vec![PathBuf::from(DEFAULT_DIR)]);
    let namespaces = agent.polling_namespaces.get_or_insert_with(|| vec![namespace.to_string()]).clone();
    let mut loaded = load(&dirs, &namespaces);
    for pollster in &loaded.pollsters {
        if let Some(problem) = reach_problem(agent, pollster) {
            loaded.problems.push(ConfigError::at(
                &pollster.file,
                format!("pollster `{}`, url_path", pollster.name),
                problem,
            ));
        }
    }
    if !loaded.problems.is_empty() {
        return Err(ConfigErrors(loaded.problems));
    }
    agent.dynamic_pollsters = loaded.pollsters;
    pipeline.warnings.extend(loaded.warnings);
    Ok(())
}

/// Why the `dynamic` plugin could not reach a non-OpenStack definition's URL as it
/// asks: its origin not granted (`http`, `allowed_hosts`), or no basic credential
/// for it where the definition maps to `requests.auth.HTTPBasicAuth`.
fn reach_problem(agent: &super::Agent, pollster: &DynamicPollster) -> Option<String> {
    use pollen_dynamic::definition::{Api, ExternalAuth, UrlPath};
    let (definition, _) = Definition::parse(&pollster.definition).ok()?;
    let Api::External { auth } = definition.api else { return None };
    let UrlPath::Literal(url) = &definition.url_path else { return None };
    let origin = crate::caps::http::Origin::of(&url.parse().ok()?)?;
    let settings = agent.plugin(DYNAMIC_PLUGIN);
    let allowed = crate::caps::http::AllowedHosts::parse(&settings.allowed_hosts).ok()?;
    if !settings.grants().contains(&super::Grant::Http) || !allowed.allows(&origin) {
        return Some(format!(
            "polls {origin}, which the dynamic plugin may not reach: grant it `http` and add \"{origin}\" to agent.plugins.{DYNAMIC_PLUGIN}.allowed_hosts"
        ));
    }
    if auth == ExternalAuth::Basic {
        let covered = settings.credentials.iter().filter_map(|name| Some((name, agent.credentials.get(name)?))).any(
            |(name, config)| {
                config.basic.is_some()
                    && crate::caps::http::HostCredential::resolve(name, config).is_ok_and(|c| c.serves(&origin))
            },
        );
        if !covered {
            return Some(format!(
                "asks for HTTP basic auth (`requests.auth.HTTPBasicAuth`) at {origin}: give a `basic` credential for it in agent.credentials (its password from `env` or `file`) and list it in agent.plugins.{DYNAMIC_PLUGIN}.credentials"
            ));
        }
    }
    None
}

/// What the folders hold.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The definitions that run in this agent's namespaces, each name once.
    pub pollsters: Vec<DynamicPollster>,
    /// What is wrong (a definition with a problem does not run).
    pub problems: Vec<ConfigError>,
    /// What is ignored.
    pub warnings: Vec<ConfigError>,
}

/// Reads every `*.yaml` of `dirs`, in order and by file name, as Ceilometer does
/// (`PollingManager.load_dynamic_pollsters`): a definition whose `namespaces` do not
/// include one of `namespaces` is left out, and a name already defined is skipped.
/// A folder that does not exist is a warning, unless it is Ceilometer's default.
pub fn load(dirs: &[PathBuf], namespaces: &[String]) -> Loaded {
    let mut loaded = Loaded::default();
    for dir in dirs {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) => {
                if dir != Path::new(DEFAULT_DIR) {
                    loaded
                        .warnings
                        .push(ConfigError::new(dir, format!("no dynamic pollsters read from this folder: {error}")));
                }
                continue;
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "yaml") && path.is_file())
            .collect();
        files.sort();
        for file in files {
            load_file(&file, namespaces, &mut loaded);
        }
    }
    loaded
}

/// Whether a definition's `namespaces` (a name or a list; `central` when unset, as
/// Ceilometer defaults it) include one of `namespaces`. One whose `namespaces` is of
/// neither shape is checked (and refused for it).
fn for_these_namespaces(definition: &serde_json::Value, namespaces: &[String]) -> bool {
    match definition.get("namespaces") {
        None | Some(serde_json::Value::Null) => namespaces.iter().any(|n| n == "central"),
        Some(serde_json::Value::String(one)) => namespaces.contains(one),
        Some(serde_json::Value::Array(list)) if list.iter().all(serde_json::Value::is_string) => {
            list.iter().filter_map(serde_json::Value::as_str).any(|n| namespaces.iter().any(|m| m == n))
        }
        Some(_) => true,
    }
}

fn load_file(file: &Path, namespaces: &[String], loaded: &mut Loaded) {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(error) => return loaded.problems.push(ConfigError::new(file, format!("cannot read the file: {error}"))),
    };
    let document: serde_yaml::Value = match serde_yaml::from_str(&text) {
        Ok(document) => document,
        Err(error) => return loaded.problems.push(ConfigError::from_yaml(file, &error)),
    };
    let items = match document {
        serde_yaml::Value::Null => return,
        serde_yaml::Value::Sequence(items) => items,
        _ => {
            return loaded
                .problems
                .push(ConfigError::new(file, "a dynamic pollsters file is a list of definitions (`- name: ...`)"))
        }
    };
    let places = Places::of(&text);
    for (index, item) in items.into_iter().enumerate() {
        let json = match serde_json::to_value(&item) {
            Ok(json) => json,
            Err(error) => {
                let place = places.nearest(&format!("[{index}]")).map(|p| p.value);
                loaded.problems.push(ConfigError { location: place, ..ConfigError::new(file, error.to_string()) });
                continue;
            }
        };
        let label = match json.get("name").and_then(|n| n.as_str()) {
            Some(name) => format!("pollster `{name}`"),
            None => format!("definition {}", index + 1),
        };
        let locate = |problem: &DefinitionError| {
            let path = if problem.key.is_empty() { format!("[{index}]") } else { format!("[{index}].{}", problem.key) };
            let place = places.get(&path);
            let location = match (place, problem.offset) {
                (Some(place), Some(offset)) => {
                    Some((place.value.0, place.value.1 + usize::from(place.quoted) + offset))
                }
                (Some(place), None) if problem.message.starts_with("unknown key") => place.key.or(Some(place.value)),
                (Some(place), None) => Some(place.value),
                (None, _) => places.nearest(&path).map(|p| p.value),
            };
            let path = if problem.key.is_empty() { label.clone() } else { format!("{label}, {}", problem.key) };
            ConfigError { location, ..ConfigError::at(file, path, problem.message.clone()) }
        };
        // A definition for another agent (Ceilometer's central ones in a folder a compute
        // agent reads too) is left out unchecked, as Ceilometer leaves it: its problems
        // are that agent's to report.
        if !for_these_namespaces(&json, namespaces) {
            tracing::debug!(definition = %label, "dynamic pollster not for this agent's namespaces; left out");
            continue;
        }
        match Definition::parse(&json) {
            Ok((definition, warnings)) => {
                loaded.warnings.extend(warnings.iter().map(&locate));
                if !definition.namespaces.iter().any(|n| namespaces.contains(n)) {
                    tracing::debug!(pollster = %definition.name, namespaces = ?definition.namespaces,
                        "dynamic pollster not for this agent's namespaces; left out");
                    continue;
                }
                if let Some(first) = loaded.pollsters.iter().find(|p| p.name == definition.name) {
                    let message = format!(
                        "is already defined in {}; this one is skipped (as Ceilometer does)",
                        first.file.display()
                    );
                    loaded.warnings.push(locate(&DefinitionError {
                        key: "name".into(),
                        offset: None,
                        message,
                        warning: true,
                    }));
                    continue;
                }
                loaded.pollsters.push(DynamicPollster {
                    name: definition.name,
                    file: file.to_path_buf(),
                    definition: json,
                });
            }
            Err(problems) => {
                for problem in &problems {
                    let error = locate(problem);
                    if problem.warning {
                        loaded.warnings.push(error);
                    } else {
                        loaded.problems.push(error);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    const GOOD: &str = "- name: dynamic.image.size\n  sample_type: gauge\n  unit: B\n  value_attribute: size\n  endpoint_type: image\n  url_path: v2/images\n";

    #[test]
    fn definitions_are_read_in_order_with_ceilometer_s_rules() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yaml", GOOD);
        write(dir.path(), "b.yaml", &format!("{GOOD}- name: compute.only\n  sample_type: gauge\n  unit: u\n  value_attribute: v\n  endpoint_type: compute\n  url_path: servers\n  namespaces: compute\n"));
        write(dir.path(), "ignored.txt", "not yaml");
        let loaded = load(&[dir.path().to_path_buf(), PathBuf::from(DEFAULT_DIR)], &["central".to_string()]);
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        let names: Vec<&str> = loaded.pollsters.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["dynamic.image.size"]);
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        let warning = loaded.warnings[0].to_string();
        assert!(
            warning.contains("b.yaml:1:9: pollster `dynamic.image.size`, name: is already defined in"),
            "{warning}"
        );
        let compute = load(&[dir.path().to_path_buf()], &["compute".to_string()]);
        assert_eq!(compute.pollsters.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["compute.only"]);
        // A broken central definition does not stop a compute agent reading the folder.
        write(dir.path(), "c.yaml", "- name: central.broken\n  value_attribute: \"x | __import__('os')\"\n");
        let compute = load(&[dir.path().to_path_buf()], &["compute".to_string()]);
        assert!(compute.problems.is_empty(), "{:?}", compute.problems);
        let central = load(&[dir.path().to_path_buf()], &["central".to_string()]);
        assert!(central.problems.iter().any(|p| p.to_string().contains("c.yaml")), "{:?}", central.problems);
    }

    #[test]
    fn problems_say_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "bad.yaml",
            "- name: dynamic.x\n  sample_type: gauge\n  unit: u\n  valu_attribute: v\n  endpoint_type: image\n  url_path: v2/images\n  metadata_fields:\n    - \"name | value.__class__\"\n",
        );
        let loaded = load(&[dir.path().to_path_buf()], &["central".to_string()]);
        let problems: Vec<String> = loaded.problems.iter().map(ToString::to_string).collect();
        let file = dir.path().join("bad.yaml");
        let file = file.display();
        assert!(
            problems.contains(&format!(
                "{file}:4:3: pollster `dynamic.x`, valu_attribute: unknown key (did you mean `value_attribute`?)"
            )),
            "{problems:#?}"
        );
        assert!(
            problems.contains(&format!("{file}:1:3: pollster `dynamic.x`, value_attribute: is required")),
            "{problems:#?}"
        );
        // The expression's column: the quote, then `name | value.` (13 characters).
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with(&format!("{file}:8:21: pollster `dynamic.x`, metadata_fields[0]: `__class__`"))),
            "{problems:#?}"
        );
        assert!(loaded.pollsters.is_empty());
        write(dir.path(), "bad.yaml", "- name: [unclosed\n");
        let loaded = load(&[dir.path().to_path_buf()], &["central".to_string()]);
        assert!(loaded.problems[0].location.is_some(), "{:?}", loaded.problems);
        let missing = load(&[dir.path().join("nope")], &["central".to_string()]);
        assert!(missing.warnings[0].to_string().contains("no dynamic pollsters read from this folder"));
    }
}
