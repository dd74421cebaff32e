//! Ceilometer's v2 read API, served from Pollen's store: the paths, parameters,
//! JSON shapes and errors of Ceilometer 9.0.7 (the last with an API), so that
//! dashboards, billing scripts and `python-ceilometerclient` work unchanged. Served
//! by `pollen api`, or by `pollen collect` when its file has an `api` section.

pub mod answers;
pub mod auth;
mod complex;
pub mod error;
mod handlers;
pub mod shapes;
pub mod simple;
pub mod time;

use crate::openstack::Credentials;
use crate::store::read::Reader;
use crate::store::StoreUrl;
use auth::{Authenticator, TokenGrant};
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;

/// Where the API listens when nothing says otherwise (Ceilometer's port).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8777";

/// The API's settings: `pollen api`'s file, or the collector's `api` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// The address to listen on (`127.0.0.1:8777`).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The store it reads: a database URL (in the collector: its sinks' first
    /// `database` publisher when not given; in `pollen api`: `database://`).
    #[serde(default)]
    pub store: Option<String>,
    /// Tokens accepted in `X-Auth-Token`, each an admin or limited to a project.
    #[serde(default)]
    pub tokens: Vec<TokenGrant>,
    /// Validate tokens with Keystone, with these service credentials (Ceilometer's
    /// `[service_credentials]` names; the caller's roles and project decide).
    #[serde(default)]
    pub keystone: Option<Credentials>,
}

fn default_listen() -> String {
    DEFAULT_LISTEN.into()
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self { listen: default_listen(), store: None, tokens: Vec::new(), keystone: None }
    }
}

/// What the API's settings name, checked.
pub struct Checked {
    /// The address.
    pub listen: SocketAddr,
    /// How callers are identified.
    pub authenticator: Authenticator,
}

impl ApiSettings {
    /// Checks the settings: an address, tokens that say what they see, and some
    /// authentication unless the API listens on loopback only.
    pub fn check(&self) -> Result<Checked, String> {
        let listen: SocketAddr = self
            .listen
            .parse()
            .map_err(|_| format!("listen: `{}` is not an address and port, e.g. `{DEFAULT_LISTEN}`", self.listen))?;
        let authenticator = match (&self.keystone, self.tokens.is_empty()) {
            (Some(_), false) => return Err("give `tokens` or `keystone`, not both".into()),
            (Some(credentials), true) => {
                let mut credentials = credentials.clone();
                credentials.origin = "api.keystone".into();
                if let Some((field, problem)) = credentials.problems().into_iter().next() {
                    return Err(format!("keystone.{field}: {problem}"));
                }
                let http = crate::caps::http::HttpClient::new(&crate::config::HttpSettings::default())
                    .map_err(|e| format!("keystone: {e}"))?;
                let keystone = crate::openstack::Keystone::new(credentials, Arc::new(http))
                    .map_err(|e| format!("keystone: {e}"))?;
                Authenticator::Keystone { keystone: Arc::new(keystone), cache: Default::default() }
            }
            (None, false) => Authenticator::from_tokens(&self.tokens)?,
            (None, true) if listen.ip().is_loopback() => Authenticator::Open,
            (None, true) => {
                return Err(format!(
                    "listen: {listen} is reachable from other machines, and every caller would be an admin: \
                     add `tokens` or `keystone`, or listen on 127.0.0.1"
                ))
            }
        };
        Ok(Checked { listen, authenticator })
    }

    /// The store URL, checked.
    pub fn store_url(&self, fallback: Option<&str>) -> Result<StoreUrl, String> {
        let text = self.store.as_deref().or(fallback).unwrap_or("database://");
        StoreUrl::parse(text).map_err(|e| format!("store: {e}"))
    }
}

/// What every request shares.
pub struct ApiState {
    reader: Reader,
    authenticator: Authenticator,
}

/// Serves the API on `listener` in a task of its own, until it is aborted.
pub fn serve(
    listener: tokio::net::TcpListener,
    reader: Reader,
    authenticator: Authenticator,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(serve_on(listener, reader, authenticator))
}

/// Serves the API on `listener` until dropped.
pub async fn serve_on(listener: tokio::net::TcpListener, reader: Reader, authenticator: Authenticator) {
    let router = handlers::router(Arc::new(ApiState { reader, authenticator }));
    if let Err(error) = axum::serve(listener, router).await {
        tracing::error!(%error, "the API stopped serving");
    }
}

/// Opens the store for reading, trying again every few seconds while it cannot be
/// (a collector's API starts with the collector, maybe before its database).
pub async fn open_patiently(url: &StoreUrl) -> Reader {
    let mut logged = false;
    loop {
        match Reader::open(url).await {
            Ok(reader) => return reader,
            Err(error) => {
                if !logged {
                    tracing::warn!(store = %url.shown(), %error, "the API waits for its store");
                    logged = true;
                }
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            }
        }
    }
}

/// Binds the API's address, saying which when it cannot.
pub async fn bind(address: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address).await.map_err(|e| anyhow::anyhow!("the API cannot listen on {address}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_refuse_an_open_api_beyond_loopback() {
        assert!(matches!(ApiSettings::default().check().unwrap().authenticator, Authenticator::Open));
        let open = ApiSettings { listen: "0.0.0.0:8777".into(), ..Default::default() };
        let error = open.check().err().unwrap();
        assert!(error.contains("add `tokens` or `keystone`"), "{error}");
        let tokens = ApiSettings {
            listen: "0.0.0.0:8777".into(),
            tokens: vec![TokenGrant { token: "a-long-enough-token".into(), project_id: None, admin: false }],
            ..Default::default()
        };
        let error = tokens.check().err().unwrap();
        assert!(error.contains("tokens[0]: give it a `project_id`"), "{error}");
        let bad = ApiSettings { listen: "8777".into(), ..Default::default() };
        assert!(bad.check().err().unwrap().contains("not an address and port"));
    }
}
