//! The agent's OpenStack service credentials, with Ceilometer's option names
//! (`[service_credentials]`): from the pipeline's `agent.openstack`, from Ceilometer's
//! `ceilometer.conf` (`--config-file`), or from the `OS_*` environment variables, the
//! first of these that names an `auth_url`.

use serde::Deserialize;

/// `agent.openstack`, or `[service_credentials]` of `ceilometer.conf`.
#[derive(Clone, Default, PartialEq, Hash, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Credentials {
    /// Keystone's URL, e.g. `http://controller:5000/v3` (`/v3` is added if missing).
    pub auth_url: Option<String>,
    /// The service user's name.
    pub username: Option<String>,
    /// Its password.
    pub password: Option<String>,
    /// The user's domain, by name.
    pub user_domain_name: Option<String>,
    /// The user's domain, by id.
    pub user_domain_id: Option<String>,
    /// The project the token is scoped to.
    pub project_name: Option<String>,
    /// The project's domain, by name.
    pub project_domain_name: Option<String>,
    /// The project's domain, by id.
    pub project_domain_id: Option<String>,
    /// The region whose endpoints plugins get (none: every region's).
    pub region_name: Option<String>,
    /// The endpoints' interface: `public`, `internal` or `admin` (Ceilometer's
    /// default: `public`).
    pub interface: Option<String>,
    /// Where these came from, for errors.
    #[serde(skip)]
    pub origin: String,
}

impl std::fmt::Debug for Credentials {
    /// Everything but the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("auth_url", &self.auth_url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("user_domain", &self.user_domain_name.as_ref().or(self.user_domain_id.as_ref()))
            .field("project_name", &self.project_name)
            .field("project_domain", &self.project_domain_name.as_ref().or(self.project_domain_id.as_ref()))
            .field("region_name", &self.region_name)
            .field("interface", &self.interface)
            .field("origin", &self.origin)
            .finish()
    }
}

/// The `OS_*` variable of each option.
const ENVIRONMENT: [(&str, &str); 10] = [
    ("auth_url", "OS_AUTH_URL"),
    ("username", "OS_USERNAME"),
    ("password", "OS_PASSWORD"),
    ("user_domain_name", "OS_USER_DOMAIN_NAME"),
    ("user_domain_id", "OS_USER_DOMAIN_ID"),
    ("project_name", "OS_PROJECT_NAME"),
    ("project_domain_name", "OS_PROJECT_DOMAIN_NAME"),
    ("project_domain_id", "OS_PROJECT_DOMAIN_ID"),
    ("region_name", "OS_REGION_NAME"),
    ("interface", "OS_INTERFACE"),
];

impl Credentials {
    /// Whether these name a Keystone at all (an empty `agent.openstack` does not).
    pub fn is_set(&self) -> bool {
        self.auth_url.as_deref().is_some_and(|url| !url.trim().is_empty())
    }

    fn set(&mut self, option: &str, value: String) {
        let slot = match option {
            "auth_url" => &mut self.auth_url,
            "username" => &mut self.username,
            "password" => &mut self.password,
            "user_domain_name" => &mut self.user_domain_name,
            "user_domain_id" => &mut self.user_domain_id,
            "project_name" => &mut self.project_name,
            "project_domain_name" => &mut self.project_domain_name,
            "project_domain_id" => &mut self.project_domain_id,
            "region_name" => &mut self.region_name,
            "interface" => &mut self.interface,
            _ => return,
        };
        *slot = Some(value);
    }

    /// The `OS_*` environment's.
    pub fn from_environment() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let mut credentials = Self { origin: "the OS_* environment variables".into(), ..Self::default() };
        for (option, variable) in ENVIRONMENT {
            if let Some(value) = lookup(variable).filter(|v| !v.is_empty()) {
                credentials.set(option, value);
            }
        }
        credentials
    }

    /// `[service_credentials]` of Ceilometer's `ceilometer.conf` (oslo.config's INI;
    /// the other sections are Ceilometer's own and ignored).
    pub fn from_ceilometer_conf(conf: &crate::config::ceilometer_conf::CeilometerConf) -> Self {
        let mut credentials =
            Self { origin: format!("[service_credentials] of {}", conf.path().display()), ..Self::default() };
        if let Some(section) = conf.section("service_credentials") {
            for (option, value) in section.iter() {
                // oslo.config accepts `-` for `_` in option names.
                credentials.set(&option.replace('-', "_"), value.trim().to_string());
            }
        }
        credentials
    }

    /// The credentials in force: the pipeline's if it names a Keystone, else
    /// `ceilometer.conf`'s, else the environment's; `None` if none does (then no
    /// plugin may be granted `openstack`).
    pub fn in_force(pipeline: &Credentials, ceilometer_conf: Option<&Credentials>) -> Option<Credentials> {
        let environment = Self::from_environment();
        let found = [Some(pipeline), ceilometer_conf, Some(&environment)].into_iter().flatten().find(|c| c.is_set());
        found.cloned()
    }

    /// What is missing or wrong, as (option, problem).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        let missing = |value: &Option<String>| value.as_deref().is_none_or(|v| v.trim().is_empty());
        match self.auth_url.as_deref().map(url::Url::parse) {
            Some(Ok(url)) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
            Some(_) => problems
                .push(("auth_url", "is not an http:// or https:// URL, e.g. `http://controller:5000/v3`".into())),
            None => problems.push(("auth_url", "is missing".into())),
        }
        for (option, value) in
            [("username", &self.username), ("password", &self.password), ("project_name", &self.project_name)]
        {
            if missing(value) {
                problems.push((option, "is missing".into()));
            }
        }
        if missing(&self.user_domain_name) && missing(&self.user_domain_id) {
            problems.push(("user_domain_name", "is missing (or give user_domain_id), e.g. `Default`".into()));
        }
        if missing(&self.project_domain_name) && missing(&self.project_domain_id) {
            problems.push(("project_domain_name", "is missing (or give project_domain_id), e.g. `Default`".into()));
        }
        if let Some(interface) = &self.interface {
            let bare = interface.trim_end_matches("URL");
            if !matches!(bare, "public" | "internal" | "admin") {
                problems.push(("interface", format!("`{interface}` is not public, internal or admin")));
            }
        }
        problems
    }

    /// The endpoints' interface (`publicURL` read as `public`, as keystoneauth does).
    pub fn interface(&self) -> &str {
        self.interface.as_deref().map_or("public", |i| i.trim_end_matches("URL"))
    }

    /// Keystone's v3 URL, without a trailing slash.
    pub fn v3_url(&self) -> String {
        let url = self.auth_url.as_deref().unwrap_or_default().trim_end_matches('/');
        if url.ends_with("/v3") {
            url.to_string()
        } else {
            format!("{url}/v3")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete() -> Credentials {
        Credentials::from_lookup(|name| {
            Some(
                match name {
                    "OS_AUTH_URL" => "http://keystone:5000",
                    "OS_USERNAME" => "ceilometer",
                    "OS_PASSWORD" => "secret",
                    "OS_USER_DOMAIN_NAME" | "OS_PROJECT_DOMAIN_NAME" => "Default",
                    "OS_PROJECT_NAME" => "service",
                    _ => return None,
                }
                .to_string(),
            )
        })
    }

    #[test]
    fn the_environment_s_credentials_are_complete_and_never_printed() {
        let credentials = complete();
        assert!(credentials.problems().is_empty(), "{:?}", credentials.problems());
        assert_eq!(credentials.v3_url(), "http://keystone:5000/v3");
        assert_eq!(credentials.interface(), "public");
        assert!(!format!("{credentials:?}").contains("secret"));
    }

    #[test]
    fn missing_or_malformed_options_are_named() {
        let credentials = Credentials {
            auth_url: Some("keystone:5000".into()),
            interface: Some("private".into()),
            ..Credentials::default()
        };
        let named: Vec<&str> = credentials.problems().iter().map(|(option, _)| *option).collect();
        assert_eq!(
            named,
            [
                "auth_url",
                "username",
                "password",
                "project_name",
                "user_domain_name",
                "project_domain_name",
                "interface"
            ]
        );
    }

    #[test]
    fn ceilometer_conf_s_service_credentials_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ceilometer.conf");
        std::fs::write(
            &path,
            "[DEFAULT]\ntransport_url = rabbit://\n\n[service_credentials]\n# a comment\nauth_url = http://keystone:5000/v3\nusername = ceilometer\npassword = s3cr=t;x\nuser-domain-name = Default\nproject_domain_id = default\nproject_name = service\nregion_name = RegionOne\ninterface = internalURL\nauth_type = password\n",
        )
        .unwrap();
        let conf = crate::config::ceilometer_conf::CeilometerConf::read(&path).unwrap();
        let credentials = Credentials::from_ceilometer_conf(&conf);
        assert!(credentials.problems().is_empty(), "{:?}", credentials.problems());
        assert_eq!(credentials.password.as_deref(), Some("s3cr=t;x"));
        assert_eq!(credentials.user_domain_name.as_deref(), Some("Default"));
        assert_eq!(credentials.region_name.as_deref(), Some("RegionOne"));
        assert_eq!(credentials.interface(), "internal");
    }
}
