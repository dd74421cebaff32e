//! The pipeline file: what is polled, how often, and where samples go, plus the
//! agent's own settings (hypervisor, plugin directory, per-plugin limits and grants).
//!
//! [`load`] reads and checks a file and reports every problem at once, each with its
//! place in the file.

pub mod builtin;
pub mod ceilometer;
pub mod ceilometer_conf;
mod check;
pub mod dynamic;
pub(crate) use check::check_openstack;
mod error;
mod model;
pub(crate) mod yaml_places;

pub use error::{ConfigError, ConfigErrors};
pub use model::{
    Agent, BasicCredential, BearerCredential, CoordinationSettings, CredentialConfig, Grant, HeaderCredential,
    HttpSettings, Pipeline, PluginSettings, SecretSource, Sink, Source, TransformerConfig, DEFAULT_LIBVIRT_URI,
};

use std::path::Path;

/// Reads the pipeline file at `path`, parses it, and checks it. Relative paths in the
/// file (the plugin directory, the cache directory) are resolved against the file's
/// own directory.
pub fn load(path: &Path) -> Result<Pipeline, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        ConfigErrors::one(ConfigError::new(path, format!("cannot read the pipeline file: {error}")))
    })?;
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    parse(&text, path, base)
}

/// Parses and checks pipeline YAML; `origin` names it in errors and `base` resolves
/// its relative paths.
pub fn parse(text: &str, origin: &Path, base: &Path) -> Result<Pipeline, ConfigErrors> {
    let mut pipeline: Pipeline =
        serde_yaml::from_str(text).map_err(|error| ConfigErrors::one(ConfigError::from_yaml(origin, &error)))?;
    pipeline.origin = origin.to_path_buf();
    pipeline.agent.resolve_paths(base);
    pipeline.agent.resolve_openstack(None);
    let problems = check::check(&pipeline);
    if problems.is_empty() {
        Ok(pipeline)
    } else {
        Err(ConfigErrors(problems))
    }
}
