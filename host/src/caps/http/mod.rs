//! `wasi:http/outgoing-handler`: requests of plugins the pipeline grants `http`, to
//! the origins of their `allowed_hosts` only, each bounded by the host.
//!
//! The standard interface is linked for every plugin (wasmtime-wasi-http), and these
//! hooks decide what is sent. The loader refuses a plugin that imports `wasi:http`
//! without the grant; a request to an origin outside its `allowed_hosts` fails in the
//! plugin with `http-request-denied`, is logged and counted, and never leaves the host.
//! A request that is sent runs on the agent's runtime, concurrently with every other;
//! its connection, head and body all end by its deadline (`agent.http.request_timeout`,
//! never past the plugin call's `call_wall_timeout`), its body at
//! `agent.http.max_response_mib`, and each plugin has at most
//! `agent.http.max_concurrent_requests` in flight.

mod allowed;
mod client;
mod credentials;

pub use allowed::{AllowedHosts, Origin, OriginPattern};
pub use client::{HttpClient, HttpSetupError};
pub use credentials::HostCredential;

use crate::config::{Agent, Grant};
use crate::openstack::{Keystone, Token};
use client::Sent;
use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// Origins logged as refused, per plugin, before refusals are only counted.
const LOGGED_ORIGINS: usize = 32;

/// What one plugin granted `http` may reach, shared by its instances.
pub struct HttpAccess {
    plugin: Arc<str>,
    allowed: AllowedHosts,
    /// With `grants: [openstack]`: the catalog's endpoints are allowed too, and
    /// requests to them carry the session's token.
    openstack: Option<Arc<Keystone>>,
    /// The `agent.credentials` it is granted, added to its requests to their hosts.
    credentials: Vec<HostCredential>,
    client: Arc<HttpClient>,
    permits: Arc<Semaphore>,
    refused: AtomicU64,
    refused_origins: Mutex<HashSet<Origin>>,
}

impl HttpAccess {
    /// The access `agent` gives plugin `plugin` (whose settings are
    /// `agent.plugins.<settings_of>`), through the agent's `client`: `None` unless it
    /// is granted `http` (its `allowed_hosts`) or `openstack` (the catalog of
    /// `openstack`, the session). Its `allowed_hosts` were checked by `validate`.
    pub fn for_plugin(
        plugin: &Arc<str>,
        settings_of: &str,
        agent: &Agent,
        client: impl FnOnce() -> Result<Arc<HttpClient>, String>,
        openstack: Option<Arc<Keystone>>,
    ) -> Result<Option<Arc<Self>>, String> {
        let settings = agent.plugin(settings_of);
        if !settings.grants().contains(&Grant::Http) && openstack.is_none() {
            return Ok(None);
        }
        let allowed = match settings.grants().contains(&Grant::Http) {
            true => AllowedHosts::parse(&settings.allowed_hosts)
                .map_err(|(index, why)| format!("agent.plugins.{settings_of}.allowed_hosts[{index}]: {why}"))?,
            false => AllowedHosts::default(),
        };
        let mut credentials = Vec::new();
        for name in &settings.credentials {
            let config = agent.credentials.get(name).ok_or_else(|| {
                format!("agent.plugins.{settings_of}.credentials: `{name}` is not in agent.credentials")
            })?;
            credentials
                .push(HostCredential::resolve(name, config).map_err(|why| format!("agent.credentials.{name}: {why}"))?);
        }
        let client = client()?;
        if agent.http.insecure {
            tracing::warn!(plugin = %plugin,
                "agent.http.insecure is set: this plugin's HTTPS peers are NOT authenticated (any certificate is accepted); use it only on a test set-up");
        }
        let permits = Arc::new(Semaphore::new(agent.http.max_concurrent_requests.max(1) as usize));
        Ok(Some(Arc::new(Self {
            plugin: plugin.clone(),
            allowed,
            openstack,
            credentials,
            client,
            permits,
            refused: AtomicU64::new(0),
            refused_origins: Mutex::default(),
        })))
    }

    /// Counts a refused request to `origin`; the first to each origin is logged with
    /// the line that would allow it.
    fn refuse(&self, origin: &Origin) {
        let total = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let mut logged = self.refused_origins.lock().unwrap_or_else(|p| p.into_inner());
        if logged.len() < LOGGED_ORIGINS && logged.insert(origin.clone()) {
            tracing::warn!(plugin = %self.plugin, %origin, refused = total,
                "HTTP request refused: the origin is not in the plugin's allowed_hosts; to allow it, add \"{origin}\" to agent.plugins.{}.allowed_hosts", self.plugin);
        }
    }
}

impl HttpAccess {
    /// The session and its token, if `origin` is an endpoint of the catalog this
    /// plugin may use (authenticating first, by `deadline`, if no token is in force).
    fn catalog_token(&self, origin: &Origin, deadline: Instant) -> Option<(Arc<Keystone>, Arc<Token>)> {
        let keystone = self.openstack.as_ref()?;
        let token = match keystone.cached() {
            Some(token) => token,
            None => wasmtime_wasi::runtime::in_tokio(tokio::time::timeout_at(deadline, keystone.token())).ok()?.ok()?,
        };
        token.catalog.serves(origin).then(|| (keystone.clone(), token))
    }
}

/// The `wasi:http` hooks of one plugin instance.
pub struct HttpHooks {
    access: Option<Arc<HttpAccess>>,
    /// When the call in progress must end: no request outlives it.
    pub(crate) wall_deadline: Instant,
}

impl HttpHooks {
    /// Hooks for a plugin with `access` (`None`: every request is refused).
    pub fn new(access: Option<Arc<HttpAccess>>) -> Self {
        Self { access, wall_deadline: Instant::now() }
    }

    /// The request's way out, or why it may not leave.
    fn admit(&self, mut request: http::Request<WasiBody>, options: Option<RequestOptions>) -> Result<Pending, Error> {
        let origin = Origin::of(request.uri()).ok_or(Error::HttpRequestUriInvalid)?;
        let Some(access) = self.access.clone() else {
            return Err(Error::HttpRequestDenied);
        };
        // A catalog endpoint gets the token, even if `allowed_hosts` lists it too.
        let token = access.catalog_token(&origin, self.wall_deadline);
        if token.is_none() && !access.allowed.allows(&origin) {
            access.refuse(&origin);
            return Err(Error::HttpRequestDenied);
        }
        if token.is_none() {
            if let Some(credential) = access.credentials.iter().find(|c| c.serves(&origin)) {
                credential.apply(request.headers_mut());
            }
        }
        let Ok(permit) = access.permits.clone().try_acquire_owned() else {
            access.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(plugin = %access.plugin, %origin,
                "HTTP request refused: the plugin already has agent.http.max_concurrent_requests in flight");
            return Err(Error::ConnectionLimitReached);
        };
        let bounds = access.client.bounds(self.wall_deadline, options);
        Ok(Box::new(async move {
            let plugin = access.plugin.clone();
            let shown = origin.to_string();
            let sent = access.client.send(origin, request, bounds, permit, token).await;
            if let Err(error) = &sent {
                tracing::warn!(plugin = %plugin, origin = %shown, %error, "HTTP request failed");
            }
            sent
        }))
    }
}

/// A request on its way.
type Pending = Box<dyn Future<Output = Sent> + Send>;

impl WasiHttpHooks for HttpHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _request_done: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Pending {
        match self.admit(request, options) {
            Ok(pending) => pending,
            Err(error) => Box::new(std::future::ready(Err(error))),
        }
    }
}
