//! Credentials the agent holds for APIs other than OpenStack's (`agent.credentials`):
//! HTTP basic auth, a bearer token, or an API-key header, each for the origins it
//! names. A plugin granted one (`agent.plugins.<name>.credentials`) never sees it: the
//! host adds the header to the plugin's requests to those origins (replacing any the
//! plugin set), as it adds the Keystone token to the catalog's endpoints. Secrets come
//! from the environment or a file, never from a definition or a plugin.

use super::allowed::{AllowedHosts, Origin};
use crate::config::{CredentialConfig, SecretSource};
use base64::Engine as _;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION};

/// One credential, resolved: the header it adds and the origins it is for.
pub struct HostCredential {
    /// Its name in `agent.credentials`.
    pub name: String,
    hosts: AllowedHosts,
    header: HeaderName,
    value: HeaderValue,
    /// Basic auth (what a definition's `requests.auth.HTTPBasicAuth` asks for).
    pub basic: bool,
}

impl std::fmt::Debug for HostCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostCredential").field("name", &self.name).field("header", &self.header).finish_non_exhaustive()
    }
}

impl HostCredential {
    /// Resolves `agent.credentials.<name>`: its secret read now.
    pub fn resolve(name: &str, config: &CredentialConfig) -> Result<Self, String> {
        let hosts = AllowedHosts::parse(&config.hosts).map_err(|(index, why)| format!("hosts[{index}]: {why}"))?;
        if config.hosts.is_empty() {
            return Err("`hosts` is empty: name the origins it is for, e.g. `https://api.example:8443`".into());
        }
        let kinds = [config.basic.is_some(), config.bearer.is_some(), config.header.is_some()];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err("give exactly one of `basic`, `bearer` and `header`".into());
        }
        let (header, value, basic) = if let Some(basic) = &config.basic {
            let password = secret(&basic.password, "basic.password")?;
            let pair = base64::engine::general_purpose::STANDARD.encode(format!("{}:{password}", basic.username));
            (AUTHORIZATION, format!("Basic {pair}"), true)
        } else if let Some(bearer) = &config.bearer {
            (AUTHORIZATION, format!("Bearer {}", secret(&bearer.token, "bearer.token")?), false)
        } else {
            let header = config.header.as_ref().expect("one kind is set");
            let name = HeaderName::try_from(header.name.as_str())
                .map_err(|_| format!("header.name `{}` is not a header name", header.name))?;
            (name, secret(&header.value, "header.value")?, false)
        };
        let mut value =
            HeaderValue::try_from(value).map_err(|_| "the secret holds characters a header cannot".to_string())?;
        value.set_sensitive(true);
        Ok(Self { name: name.to_string(), hosts, header, value, basic })
    }

    /// Whether it is for `origin`.
    pub fn serves(&self, origin: &Origin) -> bool {
        self.hosts.allows(origin)
    }

    /// Adds it to a request's headers.
    pub fn apply(&self, headers: &mut http::HeaderMap) {
        headers.remove(&self.header);
        headers.insert(self.header.clone(), self.value.clone());
    }
}

/// A secret's text: from the variable or the file it names (trailing newline cut).
fn secret(source: &SecretSource, key: &str) -> Result<String, String> {
    match (&source.env, &source.file) {
        (Some(variable), None) => {
            std::env::var(variable).map_err(|_| format!("{key}: the environment variable `{variable}` is not set"))
        }
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(|text| text.trim_end_matches(['\n', '\r']).to_string())
            .map_err(|error| format!("{key}: cannot read `{}`: {error}", path.display())),
        _ => Err(format!("{key}: give `env` (a variable's name) or `file` (a path), one of them")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BasicCredential, HeaderCredential};

    fn origin(text: &str) -> Origin {
        Origin::of(&text.parse().unwrap()).unwrap()
    }

    #[test]
    fn credentials_resolve_their_secret_and_serve_their_hosts_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("password");
        std::fs::write(&file, "guest\n").unwrap();
        let config = CredentialConfig {
            hosts: vec!["http://127.0.0.1:15672".into()],
            basic: Some(BasicCredential {
                username: "guest".into(),
                password: SecretSource { env: None, file: Some(file) },
            }),
            bearer: None,
            header: None,
        };
        let credential = HostCredential::resolve("rabbit", &config).unwrap();
        assert!(credential.basic);
        assert!(credential.serves(&origin("http://127.0.0.1:15672/api")));
        assert!(!credential.serves(&origin("http://127.0.0.1:15673/api")));
        let mut headers = http::HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic forged"));
        credential.apply(&mut headers);
        assert_eq!(headers[AUTHORIZATION], "Basic Z3Vlc3Q6Z3Vlc3Q=");
        assert!(!format!("{credential:?}").contains("Z3Vl"));

        let header = CredentialConfig {
            hosts: vec!["https://api.example".into()],
            basic: None,
            bearer: None,
            header: Some(HeaderCredential {
                name: "x-api-key".into(),
                value: SecretSource { env: Some("POLLEN_TEST_SURELY_UNSET".into()), file: None },
            }),
        };
        let error = HostCredential::resolve("api", &header).unwrap_err();
        assert!(error.contains("`POLLEN_TEST_SURELY_UNSET` is not set"), "{error}");
        let none = CredentialConfig { hosts: vec!["https://a".into()], basic: None, bearer: None, header: None };
        assert!(HostCredential::resolve("x", &none).unwrap_err().contains("exactly one"));
    }
}
