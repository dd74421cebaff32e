//! How the Gnocchi publisher authenticates: Gnocchi's `basic` mode (the user name in
//! the URL, `admin` by default), or a Keystone token (password authentication, the
//! Gnocchi endpoint from the token's catalog when the URL names no host).

use serde_json::{json, Value};

/// Keystone credentials: the URL's `os_*` options, else the usual `OS_*`
/// environment variables.
#[derive(Debug, Clone, PartialEq)]
pub struct KeystoneCredentials {
    /// Keystone's v3 API, e.g. `http://keystone:5000/v3`.
    pub auth_url: String,
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
    /// Project the token is scoped to.
    pub project_name: String,
    /// The user's domain.
    pub user_domain_name: String,
    /// The project's domain.
    pub project_domain_name: String,
    /// Which catalog endpoint to use: `public`, `internal` or `admin`.
    pub interface: String,
}

/// How requests are authenticated.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthMode {
    /// `Authorization: Basic` with this user.
    Basic(String),
    /// Keystone tokens.
    Keystone(KeystoneCredentials),
}

/// A token and where Gnocchi is, from Keystone.
struct Token {
    value: String,
    gnocchi: Option<String>,
    catalog_projects: Option<String>,
}

/// The authentication state of one publisher.
pub struct Auth {
    mode: AuthMode,
    token: Option<Token>,
}

impl Auth {
    /// Not yet authenticated.
    pub fn new(mode: AuthMode) -> Self {
        Self { mode, token: None }
    }

    /// The header to send: name and value.
    pub async fn header(&mut self, client: &reqwest::Client) -> Result<(&'static str, String), String> {
        match &self.mode {
            AuthMode::Basic(user) => {
                use base64::Engine;
                let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:"));
                Ok(("authorization", format!("Basic {encoded}")))
            }
            AuthMode::Keystone(_) => Ok(("x-auth-token", self.token(client).await?.value.clone())),
        }
    }

    /// Gnocchi's URL from Keystone's catalog (Keystone mode only).
    pub async fn catalog_endpoint(&mut self, client: &reqwest::Client) -> Result<Option<String>, String> {
        match self.mode {
            AuthMode::Basic(_) => Ok(None),
            AuthMode::Keystone(_) => Ok(self.token(client).await?.gnocchi.clone()),
        }
    }

    /// The id of the project named `name` (Keystone mode), to filter its samples.
    pub async fn project_id(&mut self, client: &reqwest::Client, name: &str) -> Result<Option<String>, String> {
        let AuthMode::Keystone(credentials) = self.mode.clone() else { return Ok(None) };
        let token = self.token(client).await?;
        let base = token.catalog_projects.clone().unwrap_or_else(|| credentials.auth_url.clone());
        let response = client
            .get(format!("{}/projects", base.trim_end_matches('/')))
            .query(&[("name", name)])
            .header("x-auth-token", &token.value)
            .send()
            .await
            .map_err(|e| format!("Keystone: {e}"))?;
        let body: Value = response.json().await.map_err(|e| format!("Keystone: {e}"))?;
        Ok(body["projects"][0]["id"].as_str().map(str::to_string))
    }

    /// Forgets the token (after a 401: it expired or was revoked).
    pub fn invalidate(&mut self) {
        self.token = None;
    }

    async fn token(&mut self, client: &reqwest::Client) -> Result<&Token, String> {
        let AuthMode::Keystone(credentials) = &self.mode else { unreachable!("Keystone mode only") };
        if self.token.is_none() {
            self.token = Some(authenticate(client, credentials).await?);
        }
        Ok(self.token.as_ref().expect("set above"))
    }
}

/// Password authentication against Keystone v3, scoped to the project.
async fn authenticate(client: &reqwest::Client, credentials: &KeystoneCredentials) -> Result<Token, String> {
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": credentials.username,
            "domain": {"name": credentials.user_domain_name},
            "password": credentials.password,
        }}},
        "scope": {"project": {"name": credentials.project_name, "domain": {"name": credentials.project_domain_name}}},
    }});
    let url = format!("{}/auth/tokens", credentials.auth_url.trim_end_matches('/'));
    let response = client.post(&url).json(&body).send().await.map_err(|e| format!("Keystone at {url}: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("Keystone at {url} refused the credentials of `{}`: {status}", credentials.username));
    }
    let value = response
        .headers()
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| format!("Keystone at {url} gave no X-Subject-Token"))?
        .to_string();
    let body: Value = response.json().await.map_err(|e| format!("Keystone at {url}: {e}"))?;
    let endpoint = |service: &str| {
        body["token"]["catalog"].as_array()?.iter().find(|s| s["type"] == service)?["endpoints"]
            .as_array()?
            .iter()
            .find(|e| e["interface"] == credentials.interface.as_str())?["url"]
            .as_str()
            .map(str::to_string)
    };
    Ok(Token { value, gnocchi: endpoint("metric"), catalog_projects: endpoint("identity").map(|u: String| v3(&u)) })
}

/// An identity endpoint as its v3 API.
fn v3(url: &str) -> String {
    let url = url.trim_end_matches('/');
    if url.ends_with("/v3") {
        url.to_string()
    } else {
        format!("{url}/v3")
    }
}

impl KeystoneCredentials {
    /// From the URL's options (`os_auth_url`, `os_username`, `os_password`,
    /// `os_project_name`, `os_user_domain_name`, `os_project_domain_name`,
    /// `interface`), each else from `OS_AUTH_URL`, `OS_USERNAME`, ... ; `None` without
    /// an auth URL.
    pub fn from_options(mut option: impl FnMut(&str) -> Option<String>) -> Result<Option<Self>, String> {
        let mut get = |key: &str| option(key).or_else(|| std::env::var(key.to_ascii_uppercase()).ok());
        let Some(auth_url) = get("os_auth_url") else { return Ok(None) };
        let mut required =
            |key: &str| get(key).ok_or(format!("Keystone needs `{key}` (or {})", key.to_ascii_uppercase()));
        let (username, password, project_name) =
            (required("os_username")?, required("os_password")?, required("os_project_name")?);
        Ok(Some(Self {
            auth_url: v3(&auth_url),
            username,
            password,
            project_name,
            user_domain_name: get("os_user_domain_name").unwrap_or_else(|| "Default".into()),
            project_domain_name: get("os_project_domain_name").unwrap_or_else(|| "Default".into()),
            interface: get("os_interface").unwrap_or_else(|| "public".into()),
        }))
    }
}
