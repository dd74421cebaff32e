//! Who is asking. Ceilometer trusted Keystone's middleware for this and limited a
//! caller without the `admin` role to its own project (`rbac.get_limited_to_project`);
//! Pollen does the same with a list of tokens in its configuration, or with
//! Keystone itself (each token validated once, then cached until it expires). With
//! neither, every caller is an admin: the API then listens on loopback only.

use super::error::ApiError;
use crate::openstack::Keystone;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A caller: an admin sees every project, anyone else only their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    project: Option<String>,
}

impl Caller {
    /// Sees everything.
    pub fn admin() -> Self {
        Self { project: None }
    }

    /// Sees `project` only.
    pub fn member(project: &str) -> Self {
        Self { project: Some(project.to_string()) }
    }

    /// The project this caller is limited to, unless an admin.
    pub fn limited_to(&self) -> Option<&str> {
        self.project.as_deref()
    }
}

/// A token the configuration lists.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TokenGrant {
    /// The token, as sent in `X-Auth-Token`.
    pub token: String,
    /// The project it is limited to (required unless `admin`).
    #[serde(default)]
    pub project_id: Option<String>,
    /// Whether it sees every project.
    #[serde(default)]
    pub admin: bool,
}

/// How callers are identified.
pub enum Authenticator {
    /// Every caller is an admin (loopback only).
    Open,
    /// The configuration's tokens.
    Tokens(HashMap<String, Caller>),
    /// Keystone validates each token (`GET /v3/auth/tokens`), cached until it expires.
    Keystone {
        /// The service's session.
        keystone: Arc<Keystone>,
        /// Tokens validated, and until when they are trusted.
        cache: Mutex<HashMap<String, (Caller, Instant)>>,
    },
}

/// How long a token Keystone validated is trusted without asking again (at most;
/// less when it expires sooner).
const TRUSTED_FOR: Duration = Duration::from_secs(300);

impl Authenticator {
    /// From the configured tokens; a token neither admin nor limited to a project is
    /// an error.
    pub fn from_tokens(grants: &[TokenGrant]) -> Result<Self, String> {
        let mut tokens = HashMap::new();
        for (index, grant) in grants.iter().enumerate() {
            let caller = match (&grant.project_id, grant.admin) {
                (_, true) => Caller::admin(),
                (Some(project), false) => Caller::member(project),
                (None, false) => {
                    return Err(format!(
                        "tokens[{index}]: give it a `project_id` (what it may see) or `admin: true` (every project)"
                    ))
                }
            };
            if grant.token.len() < 16 {
                return Err(format!("tokens[{index}]: a token of at least 16 characters, please"));
            }
            tokens.insert(grant.token.clone(), caller);
        }
        Ok(Self::Tokens(tokens))
    }

    /// The caller sending `token` (`X-Auth-Token`).
    pub async fn caller(&self, token: Option<&str>) -> Result<Caller, ApiError> {
        match self {
            Self::Open => Ok(Caller::admin()),
            Self::Tokens(tokens) => token.and_then(|t| tokens.get(t)).cloned().ok_or_else(ApiError::unauthenticated),
            Self::Keystone { keystone, cache } => {
                let token = token.ok_or_else(ApiError::unauthenticated)?;
                if let Some((caller, until)) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(token) {
                    if *until > Instant::now() {
                        return Ok(caller.clone());
                    }
                }
                let (caller, expires_in) = validate(keystone, token).await?;
                let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
                if cache.len() > 10_000 {
                    cache.retain(|_, (_, until)| *until > Instant::now());
                }
                cache.insert(token.to_string(), (caller.clone(), Instant::now() + expires_in.min(TRUSTED_FOR)));
                Ok(caller)
            }
        }
    }
}

/// Asks Keystone who `token` is: its project and whether it has the `admin` role.
async fn validate(keystone: &Keystone, token: &str) -> Result<(Caller, Duration), ApiError> {
    let body = keystone
        .validate(token)
        .await
        .map_err(|e| ApiError::unavailable(format!("validating a token: {e}")))?
        .ok_or_else(ApiError::unauthenticated)?;
    let admin = body["roles"].as_array().is_some_and(|roles| roles.iter().any(|r| r["name"] == "admin"));
    let caller = match (admin, body["project"]["id"].as_str()) {
        (true, _) => Caller::admin(),
        (false, Some(project)) => Caller::member(project),
        (false, None) => return Err(ApiError::unauthenticated()),
    };
    let expires_in = body["expires_at"]
        .as_str()
        .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
        .and_then(|at| (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().ok())
        .unwrap_or(TRUSTED_FOR);
    Ok((caller, expires_in))
}
