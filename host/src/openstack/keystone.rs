//! Keystone v3 password authentication for the agent: one token, kept until shortly
//! before it expires (Ceilometer asks for a new one every cycle), made anew at once
//! when a service answers 401, and the catalog that came with it.

use super::catalog::Catalog;
use super::credentials::Credentials;
use crate::caps::http::HttpClient;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A token this long before its expiry is renewed.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// Why Keystone gave no token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeystoneError {
    /// Keystone cannot be reached.
    #[error("Keystone at {url} cannot be reached: {message}")]
    Unreachable {
        /// Its URL.
        url: String,
        /// What failed.
        message: String,
    },
    /// Keystone refused the credentials.
    #[error("Keystone at {url} refused the service credentials ({status}): {message}")]
    Refused {
        /// Its URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// Keystone's message.
        message: String,
    },
    /// Keystone's answer is not what v3 answers.
    #[error("Keystone at {url} answered something that is not a v3 token: {message}")]
    Malformed {
        /// Its URL.
        url: String,
        /// What is wrong.
        message: String,
    },
}

/// A token, with what came with it.
pub struct Token {
    /// `X-Subject-Token`: never handed to a plugin.
    secret: String,
    /// When to renew it.
    renew_at: Instant,
    /// The service catalog.
    pub catalog: Catalog,
    /// The project it is scoped to.
    pub project_id: String,
    /// The user it is of.
    pub user_id: String,
}

impl Token {
    /// The token itself, for the host's requests only.
    pub(crate) fn secret(&self) -> &str {
        &self.secret
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("project_id", &self.project_id).field("user_id", &self.user_id).finish()
    }
}

/// The agent's Keystone session.
pub struct Keystone {
    credentials: Credentials,
    /// The agent's HTTP client, whose TLS and bounds `client` has.
    http: Arc<HttpClient>,
    client: reqwest::Client,
    current: Mutex<Option<Arc<Token>>>,
    /// Held while authenticating, so that concurrent callers wait for one token.
    authenticating: tokio::sync::Mutex<()>,
    /// The last attempt's failure, and when it ended: the callers that were waiting
    /// for that attempt share its answer instead of asking again one after another.
    failed: Mutex<Option<(Instant, KeystoneError)>>,
}

impl Keystone {
    /// A session for `credentials` (checked), with the TLS and bounds of `http`.
    pub fn new(credentials: Credentials, http: Arc<HttpClient>) -> reqwest::Result<Self> {
        let client = http.host_client()?;
        Ok(Self {
            credentials,
            http,
            client,
            current: Mutex::new(None),
            authenticating: tokio::sync::Mutex::new(()),
            failed: Mutex::new(None),
        })
    }

    /// The agent's HTTP client it was made with.
    pub fn client(&self) -> &Arc<HttpClient> {
        &self.http
    }

    /// The credentials' endpoint interface and region.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The token in force, if one is and is not due for renewal.
    pub fn cached(&self) -> Option<Arc<Token>> {
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        current.as_ref().filter(|token| Instant::now() < token.renew_at).cloned()
    }

    /// A valid token: the cached one, or a new one. Callers that ask while an attempt
    /// is under way get its answer, failure included: one attempt however many plugins
    /// need the catalog at once (a cycle's discoverers), one wait for a Keystone that
    /// does not answer.
    pub async fn token(&self) -> Result<Arc<Token>, KeystoneError> {
        if let Some(token) = self.cached() {
            return Ok(token);
        }
        let asked = Instant::now();
        let _one_at_a_time = self.authenticating.lock().await;
        if let Some(token) = self.cached() {
            return Ok(token);
        }
        if let Some((ended, error)) = &*self.failed.lock().unwrap_or_else(|p| p.into_inner()) {
            if *ended >= asked {
                return Err(error.clone());
            }
        }
        match self.authenticate().await {
            Ok(token) => {
                let token = Arc::new(token);
                *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
                *self.failed.lock().unwrap_or_else(|p| p.into_inner()) = None;
                Ok(token)
            }
            Err(error) => {
                *self.failed.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), error.clone()));
                Err(error)
            }
        }
    }

    /// Forgets `token` (a service answered 401 to it): the next caller authenticates.
    pub fn reject(&self, token: &Arc<Token>) {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, token)) {
            *current = None;
        }
    }

    async fn authenticate(&self) -> Result<Token, KeystoneError> {
        let url = format!("{}/auth/tokens", self.credentials.v3_url());
        let asked = Instant::now();
        let response = self
            .client
            .post(&url)
            .json(&self.request_body())
            .send()
            .await
            .map_err(|e| KeystoneError::Unreachable { url: url.clone(), message: without_url(&e) })?;
        let status = response.status();
        let secret = response.headers().get("x-subject-token").and_then(|v| v.to_str().ok()).map(str::to_string);
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = body["error"]["message"].as_str().unwrap_or("no message").to_string();
            return Err(KeystoneError::Refused { url, status: status.as_u16(), message });
        }
        let malformed = |message: &str| KeystoneError::Malformed { url: url.clone(), message: message.to_string() };
        let secret = secret.ok_or_else(|| malformed("no X-Subject-Token header"))?;
        let token = &body["token"];
        let expires = token["expires_at"].as_str().ok_or_else(|| malformed("no token.expires_at"))?;
        let expires =
            chrono::DateTime::parse_from_rfc3339(expires).map_err(|_| malformed("token.expires_at is not a time"))?;
        let lifetime = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().unwrap_or_default();
        let renew_at = asked + lifetime.saturating_sub(RENEW_BEFORE).max(lifetime / 2);
        let catalog = Catalog::from_token(token).map_err(|message| malformed(&message))?;
        let id = |part: &str| token[part]["id"].as_str().unwrap_or_default().to_string();
        tracing::info!(keystone = %self.credentials.v3_url(), project = %id("project"), services = catalog.len(),
            valid_s = lifetime.as_secs(), "authenticated to Keystone");
        Ok(Token { secret, renew_at, catalog, project_id: id("project"), user_id: id("user") })
    }

    /// What Keystone says of another caller's token (`GET /v3/auth/tokens` with
    /// `X-Subject-Token`): its `token` body, or `None` when Keystone does not know it
    /// (or it expired).
    pub async fn validate(&self, subject: &str) -> Result<Option<Value>, KeystoneError> {
        // Keystone answers 404 for a subject it does not know, 401 for our own token
        // (expired, revoked): then once more with a new one.
        for attempt in 0..2 {
            let own = self.token().await?;
            let url = format!("{}/auth/tokens", self.credentials.v3_url());
            let response = self
                .client
                .get(&url)
                .header("X-Auth-Token", own.secret())
                .header("X-Subject-Token", subject)
                .send()
                .await
                .map_err(|e| KeystoneError::Unreachable { url: url.clone(), message: without_url(&e) })?;
            let status = response.status().as_u16();
            if status == 401 && attempt == 0 {
                self.reject(&own);
                continue;
            }
            if matches!(status, 401 | 404) {
                return Ok(None);
            }
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if !(200..300).contains(&status) {
                let message = body["error"]["message"].as_str().unwrap_or("no message").to_string();
                return Err(KeystoneError::Refused { url, status, message });
            }
            return Ok(Some(body["token"].clone()));
        }
        Ok(None)
    }

    fn request_body(&self) -> Value {
        let c = &self.credentials;
        let domain = |name: &Option<String>, id: &Option<String>| match (id, name) {
            (Some(id), _) if !id.is_empty() => json!({ "id": id }),
            (_, name) => json!({ "name": name.as_deref().unwrap_or("Default") }),
        };
        json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": c.username, "password": c.password,
                "domain": domain(&c.user_domain_name, &c.user_domain_id)}}},
            "scope": {"project": {"name": c.project_name, "domain": domain(&c.project_domain_name, &c.project_domain_id)}}
        }})
    }
}

/// A reqwest error's text without the URL (reqwest prints it; ours says it once).
fn without_url(error: &reqwest::Error) -> String {
    let mut error = error.to_string();
    if let Some(at) = error.find(" for url (") {
        error.truncate(at);
    }
    error
}
