//! Which Gnocchi resource type a meter belongs to and the resource's attributes: a
//! definitions file in the format of Ceilometer's `gnocchi_resources.yaml`.

use crate::sample::Resource;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// Pollen's default definitions (the compute meters).
const DEFAULT: &str = include_str!("../../../data/gnocchi_resources.yaml");

/// A whole definitions file.
#[derive(Debug, Clone, Deserialize)]
pub struct Definitions {
    /// The archive policy of metrics whose definition names none.
    #[serde(default)]
    pub archive_policy_default: Option<String>,
    /// Archive policies to create in Gnocchi if missing, as Gnocchi's API takes them.
    #[serde(default)]
    pub archive_policies: Vec<serde_json::Value>,
    /// Resource types and their meters.
    pub resources: Vec<ResourceDefinition>,
}

/// One resource type's entry.
#[derive(Debug, Clone, Deserialize)]
pub struct ResourceDefinition {
    /// Gnocchi's resource type, e.g. `instance`.
    pub resource_type: String,
    /// Meter names (shell globs allowed) and their settings.
    #[serde(default)]
    pub metrics: BTreeMap<String, Option<MetricDefinition>>,
    /// Attribute name → where its value is read from the sample.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// One meter's settings.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MetricDefinition {
    /// Its archive policy.
    pub archive_policy_name: Option<String>,
}

impl Definitions {
    /// Pollen's default definitions.
    pub fn builtin() -> Self {
        serde_yaml::from_str(DEFAULT).expect("the built-in gnocchi_resources.yaml parses")
    }

    /// Reads a definitions file.
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let definitions: Self = serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        for resource in &definitions.resources {
            for (name, expression) in &resource.attributes {
                AttributePath::parse(expression)
                    .map_err(|e| format!("{}: {}: attribute `{name}`: {e}", path.display(), resource.resource_type))?;
            }
        }
        Ok(definitions)
    }

    /// The definition a meter belongs to, and its archive policy (the meter's own,
    /// else the file's default).
    pub fn find(&self, meter: &str) -> Option<(&ResourceDefinition, Option<String>)> {
        self.resources.iter().find_map(|resource| {
            let (_, settings) = resource
                .metrics
                .iter()
                .find(|(pattern, _)| *pattern == meter || wildmatch::WildMatch::new(pattern).matches(meter))?;
            let policy = settings
                .as_ref()
                .and_then(|s| s.archive_policy_name.clone())
                .or_else(|| self.archive_policy_default.clone());
            Some((resource, policy))
        })
    }
}

impl ResourceDefinition {
    /// The attributes of a resource, as Gnocchi takes them (text; absent ones left out).
    pub fn attributes_of(&self, resource: &Resource) -> Map<String, Value> {
        let metadata = resource.merged_metadata();
        let mut attributes = Map::new();
        for (name, expression) in &self.attributes {
            let Ok(path) = AttributePath::parse(expression) else { continue };
            if let Some(value) = path.read(&metadata) {
                attributes.insert(name.clone(), value);
            }
        }
        attributes
    }
}

/// `resource_metadata.KEY`, `resource_metadata.(a|b|(c.d))`, `resource_metadata.a.b`:
/// alternatives, each a dotted path into the metadata; the first present wins.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributePath {
    alternatives: Vec<Vec<String>>,
}

impl AttributePath {
    /// Parses an attribute expression.
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some(rest) = text.trim().strip_prefix("resource_metadata.") else {
            return Err(format!("`{text}`: Pollen reads attributes from `resource_metadata.…`"));
        };
        let alternatives: Vec<&str> = match rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
            Some(inner) => split_top_level(inner),
            None => vec![rest],
        };
        let alternatives: Vec<Vec<String>> = alternatives
            .into_iter()
            .map(|a| a.trim().trim_start_matches('(').trim_end_matches(')').split('.').map(str::to_string).collect())
            .collect();
        if alternatives.iter().any(|a: &Vec<String>| a.iter().any(|k| k.is_empty() || k.contains(['(', ')', '|']))) {
            return Err(format!("`{text}` is not `resource_metadata.KEY` or `resource_metadata.(KEY|KEY)`"));
        }
        Ok(Self { alternatives })
    }

    /// The value in `metadata`, as text (Gnocchi's attributes are strings here).
    pub fn read(&self, metadata: &Map<String, Value>) -> Option<Value> {
        self.alternatives.iter().find_map(|path| {
            let mut value = metadata.get(&path[0])?;
            for key in &path[1..] {
                value = value.get(key)?;
            }
            match value {
                Value::Null => None,
                Value::String(text) => Some(Value::String(text.clone())),
                Value::Number(_) | Value::Bool(_) => Some(Value::String(value.to_string())),
                _ => None,
            }
        })
    }
}

/// Splits at the `|` not inside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (index, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            '|' if depth == 0 => {
                parts.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn attribute_paths_read_alternatives_and_nested_keys() {
        let metadata = json!({"instance_type": null, "flavor": {"name": "m1.small", "id": 42}, "host": "compute-1"});
        let metadata = metadata.as_object().unwrap();
        let flavor = AttributePath::parse("resource_metadata.(instance_type|(flavor.name)|flavor_name)").unwrap();
        assert_eq!(flavor.read(metadata), Some(json!("m1.small")));
        let id = AttributePath::parse("resource_metadata.(instance_flavor_id|(flavor.id)|flavor_id)").unwrap();
        assert_eq!(id.read(metadata), Some(json!("42")), "numbers become text");
        let host = AttributePath::parse("resource_metadata.(instance_host|host)").unwrap();
        assert_eq!(host.read(metadata), Some(json!("compute-1")));
        assert_eq!(AttributePath::parse("resource_metadata.user_metadata.server_group").unwrap().read(metadata), None);
        assert!(AttributePath::parse("project_id").is_err());
    }

    #[test]
    fn the_builtin_definitions_cover_the_compute_meters() {
        let definitions = Definitions::builtin();
        let (instance, policy) = definitions.find("cpu").unwrap();
        assert_eq!((instance.resource_type.as_str(), policy.as_deref()), ("instance", Some("ceilometer-low-rate")));
        let (_, policy) = definitions.find("memory.usage").unwrap();
        assert_eq!(policy.as_deref(), Some("ceilometer-low"));
        assert_eq!(definitions.find("disk.device.read.bytes").unwrap().0.resource_type, "instance_disk");
        assert_eq!(
            definitions.find("network.incoming.bytes.rate").unwrap().0.resource_type,
            "instance_network_interface"
        );
        assert!(definitions.find("hardware.cpu.util").is_none());
    }
}
