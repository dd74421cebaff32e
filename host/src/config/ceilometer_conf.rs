//! Ceilometer's `ceilometer.conf` (oslo.config's INI; it neither unquotes nor
//! unescapes values), read once: its `[service_credentials]`
//! (`openstack::Credentials::from_ceilometer_conf`), where the dynamic pollsters are,
//! the coordination backend and the heartbeat socket.

use super::error::ConfigError;
use std::path::{Path, PathBuf};

/// A `ceilometer.conf`, parsed.
pub struct CeilometerConf {
    path: PathBuf,
    ini: ini::Ini,
}

impl CeilometerConf {
    /// Reads and parses the file at `path`.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::new(path, format!("cannot read it: {e}")))?;
        let options = ini::ParseOption { enabled_quote: false, enabled_escape: false, ..Default::default() };
        let ini = ini::Ini::load_from_str_opt(&text, options)
            .map_err(|e| ConfigError::new(path, format!("not an INI file: {e}")))?;
        Ok(Self { path: path.to_path_buf(), ini })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One section's options, if the file has it.
    pub fn section(&self, name: &str) -> Option<&ini::Properties> {
        match name {
            "DEFAULT" => self.ini.section(Some("DEFAULT")).or_else(|| self.ini.section(None::<String>)),
            name => self.ini.section(Some(name)),
        }
    }

    /// The values of `option` in `section` (repeated, as oslo.config's multi-valued
    /// options are; `-` accepted for `_`).
    fn values(&self, section: &str, option: &str) -> Vec<String> {
        let Some(section) = self.section(section) else { return Vec::new() };
        [option.to_string(), option.replace('_', "-")]
            .iter()
            .flat_map(|key| section.get_all(key))
            .map(|value| value.trim().to_string())
            .filter(|value| !value.is_empty())
            .collect()
    }

    /// `[DEFAULT] pollsters_definitions_dirs`, if it is set.
    pub fn definitions_dirs(&self) -> Option<Vec<PathBuf>> {
        let dirs: Vec<PathBuf> = self
            .values("DEFAULT", "pollsters_definitions_dirs")
            .iter()
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
            .collect();
        (!dirs.is_empty()).then_some(dirs)
    }

    /// `[coordination] backend_url` and `[polling] partitioning_group_prefix`, if set.
    pub fn coordination(&self) -> (Option<String>, Option<String>) {
        let url = self.values("coordination", "backend_url").into_iter().next();
        let prefix = self.values("polling", "partitioning_group_prefix").into_iter().next();
        (url, prefix)
    }

    /// `[polling] heartbeat_socket_dir`, if it is set.
    pub fn heartbeat_socket_dir(&self) -> Option<PathBuf> {
        self.values("polling", "heartbeat_socket_dir").into_iter().next().map(PathBuf::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilometer_conf_names_the_folders() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("ceilometer.conf");
        std::fs::write(&conf, "[DEFAULT]\npollsters_definitions_dirs = /etc/a\npollsters_definitions_dirs = /etc/b\n[service_credentials]\nauth_url = x\n").unwrap();
        let definitions_dirs = |conf: &Path| CeilometerConf::read(conf).unwrap().definitions_dirs();
        assert_eq!(definitions_dirs(&conf), Some(vec![PathBuf::from("/etc/a"), PathBuf::from("/etc/b")]));
        std::fs::write(&conf, "[service_credentials]\nauth_url = x\n").unwrap();
        assert_eq!(definitions_dirs(&conf), None);
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
        let read = CeilometerConf::read(&conf).unwrap();
        let (url, prefix) = read.coordination();
        assert_eq!((url.as_deref(), prefix.as_deref()), (Some("redis://127.0.0.1:6379"), Some("cloud-a")));
        assert_eq!(read.heartbeat_socket_dir(), Some(PathBuf::from("/run/ceilometer")));
        std::fs::write(&conf, "[DEFAULT]\n").unwrap();
        assert_eq!(CeilometerConf::read(&conf).unwrap().coordination(), (None, None));
    }
}
