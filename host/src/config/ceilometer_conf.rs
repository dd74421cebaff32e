//! What Pollen reads of Ceilometer's `ceilometer.conf` beside `[service_credentials]`
//! (`openstack::Credentials`): where the dynamic pollsters are, and the coordination
//! backend. oslo.config neither unquotes nor unescapes values.

use super::error::ConfigError;
use std::path::{Path, PathBuf};

fn read(path: &Path) -> Result<ini::Ini, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::new(path, format!("cannot read it: {e}")))?;
    let options = ini::ParseOption { enabled_quote: false, enabled_escape: false, ..Default::default() };
    ini::Ini::load_from_str_opt(&text, options).map_err(|e| ConfigError::new(path, format!("not an INI file: {e}")))
}

/// The values of `option` in `section` (repeated, as oslo.config's multi-valued
/// options are; `-` accepted for `_`).
fn values(ini: &ini::Ini, section: &str, option: &str) -> Vec<String> {
    let section = match section {
        "DEFAULT" => ini.section(Some("DEFAULT")).or_else(|| ini.section(None::<String>)),
        name => ini.section(Some(name)),
    };
    let Some(section) = section else { return Vec::new() };
    [option.to_string(), option.replace('_', "-")]
        .iter()
        .flat_map(|key| section.get_all(key))
        .map(|value| value.trim().to_string())
        .filter(|value| !value.is_empty())
        .collect()
}

/// `[DEFAULT] pollsters_definitions_dirs`, if it is set.
pub fn definitions_dirs(path: &Path) -> Result<Option<Vec<PathBuf>>, ConfigError> {
    let ini = read(path)?;
    let dirs: Vec<PathBuf> = values(&ini, "DEFAULT", "pollsters_definitions_dirs")
        .iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .collect();
    Ok((!dirs.is_empty()).then_some(dirs))
}

/// `[coordination] backend_url` and `[polling] partitioning_group_prefix`, if set.
pub fn coordination(path: &Path) -> Result<(Option<String>, Option<String>), ConfigError> {
    let ini = read(path)?;
    let url = values(&ini, "coordination", "backend_url").into_iter().next();
    let prefix = values(&ini, "polling", "partitioning_group_prefix").into_iter().next();
    Ok((url, prefix))
}

/// `[polling] heartbeat_socket_dir`, if it is set.
pub fn heartbeat_socket_dir(path: &Path) -> Result<Option<PathBuf>, ConfigError> {
    Ok(values(&read(path)?, "polling", "heartbeat_socket_dir").into_iter().next().map(PathBuf::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilometer_conf_names_the_folders() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("ceilometer.conf");
        std::fs::write(&conf, "[DEFAULT]\npollsters_definitions_dirs = /etc/a\npollsters_definitions_dirs = /etc/b\n[service_credentials]\nauth_url = x\n").unwrap();
        assert_eq!(definitions_dirs(&conf).unwrap(), Some(vec![PathBuf::from("/etc/a"), PathBuf::from("/etc/b")]));
        std::fs::write(&conf, "[service_credentials]\nauth_url = x\n").unwrap();
        assert_eq!(definitions_dirs(&conf).unwrap(), None);
    }

    #[test]
    fn ceilometer_conf_names_the_coordination_backend() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("ceilometer.conf");
        std::fs::write(
            &conf,
            "[coordination]\nbackend_url = redis://127.0.0.1:6379\n[polling]\npartitioning_group_prefix = cloud-a\nheartbeat_socket_dir = /run/ceilometer\n",
        )
        .unwrap();
        let (url, prefix) = coordination(&conf).unwrap();
        assert_eq!((url.as_deref(), prefix.as_deref()), (Some("redis://127.0.0.1:6379"), Some("cloud-a")));
        assert_eq!(heartbeat_socket_dir(&conf).unwrap(), Some(PathBuf::from("/run/ceilometer")));
        std::fs::write(&conf, "[DEFAULT]\n").unwrap();
        assert_eq!(coordination(&conf).unwrap(), (None, None));
    }
}
