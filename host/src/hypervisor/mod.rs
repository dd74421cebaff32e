//! Access to the hypervisor through libvirt (the `virt` crate).
//!
//! Every call here blocks: callers run it on a blocking thread (plugin calls already
//! run on one), never on the async runtime's workers. A polling cycle reads through a
//! [`CycleSnapshot`], so each domain is asked at most once per cycle however many
//! plugins want it.

mod snapshot;
mod stats;

pub use snapshot::CycleSnapshot;
pub use stats::{BlockStats, CpuStats, DomainState, DomainStats, DomainSummary, InterfaceStats, MemoryStats};

use std::sync::{Mutex, MutexGuard};
use virt::connect::Connect;

/// A libvirt failure, with the URI it happened on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HypervisorError {
    /// The connection could not be opened.
    #[error("cannot connect to the hypervisor at {uri}: {message} (check the URI, and that libvirtd runs for non-test drivers)")]
    Connect {
        /// The libvirt URI.
        uri: String,
        /// libvirt's message.
        message: String,
    },
    /// A call failed.
    #[error("libvirt {call} failed on {uri}: {message}")]
    Call {
        /// Which call.
        call: &'static str,
        /// The libvirt URI.
        uri: String,
        /// libvirt's message.
        message: String,
    },
    /// No domain has this UUID (it may have gone).
    #[error("no domain with UUID {0} on this host")]
    NoSuchDomain(String),
}

/// A lazily opened, shared libvirt connection, re-opened after a failure.
pub struct Hypervisor {
    uri: String,
    connection: Mutex<Option<Connect>>,
}

impl Hypervisor {
    /// A hypervisor at `uri`; nothing is opened until first use.
    pub fn new(uri: impl Into<String>) -> Self {
        // libvirt prints every error to stderr by default; ours are returned instead.
        virt::error::clear_error_callback();
        Self { uri: uri.into(), connection: Mutex::new(None) }
    }

    /// The libvirt URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Runs `f` on the open connection, opening it first if needed. A call that fails
    /// drops the connection so the next use re-opens it.
    pub(crate) fn with_connection<T>(
        &self,
        call: &'static str,
        f: impl FnOnce(&Connect) -> Result<T, virt::error::Error>,
    ) -> Result<T, HypervisorError> {
        let mut guard = self.lock();
        if guard.is_none() {
            let connection = Connect::open(Some(&self.uri))
                .map_err(|e| HypervisorError::Connect { uri: self.uri.clone(), message: e.to_string() })?;
            *guard = Some(connection);
        }
        let connection = guard.as_ref().expect("connection opened above");
        let result = f(connection);
        let alive = result.is_ok() || connection.is_alive().unwrap_or(false);
        if !alive {
            if let Some(mut dead) = guard.take() {
                let _ = dead.close();
            }
        }
        result.map_err(|e| HypervisorError::Call { call, uri: self.uri.clone(), message: e.to_string() })
    }

    fn lock(&self) -> MutexGuard<'_, Option<Connect>> {
        self.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a polling cycle: a fresh snapshot that reads each domain once.
    pub fn cycle(self: &std::sync::Arc<Self>) -> std::sync::Arc<CycleSnapshot> {
        std::sync::Arc::new(CycleSnapshot::new(self.clone()))
    }
}

impl Drop for Hypervisor {
    fn drop(&mut self) {
        if let Some(mut connection) = self.lock().take() {
            let _ = connection.close();
        }
    }
}
