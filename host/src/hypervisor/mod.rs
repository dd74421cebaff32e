//! Access to the hypervisor through libvirt (the `virt` crate).
//!
//! Every call here blocks: callers run it on a blocking thread (plugin calls already
//! run on one), never on the async runtime's workers. A polling cycle reads through a
//! [`CycleSnapshot`]: one bulk statistics read for all domains, so each domain is asked
//! at most once per cycle however many plugins want it.

mod bulk;
mod connection;
mod snapshot;
mod stats;

pub use snapshot::CycleSnapshot;
pub use stats::{
    BlockStats, CpuStats, DomainState, DomainStats, DomainSummary, InterfaceStats, MemoryStats, PerfStats,
};

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use virt::connect::Connect;

/// How long a libvirt call may take by default before it counts as failed.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_millis(1500);

/// How long a domain's XML is trusted when nothing else says it changed (a device
/// hot-plugged into a running domain changes neither its id nor its state).
const XML_MAX_AGE: Duration = Duration::from_secs(600);

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
    /// A call did not return in time (libvirtd busy or frozen).
    #[error("libvirt {call} on {uri} did not return within {after:?} (is libvirtd frozen or overloaded?)")]
    Timeout {
        /// Which call.
        call: &'static str,
        /// The libvirt URI.
        uri: String,
        /// How long it was waited for.
        after: Duration,
    },
    /// The domain is not (or no longer) on this host.
    #[error("no such domain on this host: {0}")]
    NoSuchDomain(String),
}

impl HypervisorError {
    /// The error for a failed libvirt call: a domain that is gone gets its own variant.
    fn from_libvirt(call: &'static str, uri: &str, error: virt::error::Error) -> Self {
        if error.code() == virt::error::ErrorNumber::NoDomain {
            return Self::NoSuchDomain(error.message().to_string());
        }
        Self::Call { call, uri: uri.to_string(), message: error.to_string() }
    }
}

/// The hypervisor: a libvirt connection on a thread of its own (calls time out,
/// a lost connection is re-opened with backoff), and the domain XML kept across
/// cycles.
pub struct Hypervisor {
    uri: String,
    connection: connection::Connection,
    xml: Mutex<HashMap<String, CachedXml>>,
    xml_reads: AtomicU64,
    per_domain_reads: AtomicU64,
}

/// A domain's XML, and what the domain was when it was read.
struct CachedXml {
    id: Option<u32>,
    active: bool,
    read_at: Instant,
    xml: Arc<String>,
    /// The disks and vNICs it names, parsed on first use.
    devices: Option<Arc<stats::Devices>>,
}

impl Hypervisor {
    /// A hypervisor at `uri` whose calls time out after [`DEFAULT_CALL_TIMEOUT`];
    /// nothing is opened until first use.
    pub fn new(uri: impl Into<String>) -> Self {
        Self::with_timeout(uri, DEFAULT_CALL_TIMEOUT)
    }

    /// A hypervisor at `uri` whose calls time out after `timeout`.
    pub fn with_timeout(uri: impl Into<String>, timeout: Duration) -> Self {
        // libvirt prints every error to stderr by default; ours are returned instead.
        virt::error::clear_error_callback();
        let uri = uri.into();
        Self {
            connection: connection::Connection::new(&uri, timeout),
            uri,
            xml: Mutex::default(),
            xml_reads: AtomicU64::new(0),
            per_domain_reads: AtomicU64::new(0),
        }
    }

    /// The libvirt URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Runs `f` on the connection's thread, opening the connection first if needed,
    /// and waits for it up to the timeout.
    pub(crate) fn with_connection<T: Send + 'static>(
        &self,
        call: &'static str,
        f: impl FnOnce(&Connect) -> Result<T, virt::error::Error> + Send + 'static,
    ) -> Result<T, HypervisorError> {
        self.connection.call(call, f)
    }

    /// A domain's XML from the cache, or from `read` when the domain is new, was
    /// (re)started or stopped since, or the cached copy is older than ten minutes.
    fn cached_xml(
        &self,
        domain: &DomainSummary,
        read: impl FnOnce() -> Result<String, HypervisorError>,
    ) -> Result<Arc<String>, HypervisorError> {
        match self.fresh_xml(domain) {
            Some(xml) => Ok(xml),
            None => Ok(self.store_xml(domain, read()?)),
        }
    }

    /// The cached XML of a domain, if it is still good.
    fn fresh_xml(&self, domain: &DomainSummary) -> Option<Arc<String>> {
        let active = domain.state.is_active();
        let cache = self.xml_cache();
        let cached = cache.get(&domain.uuid)?;
        let fresh = cached.id == domain.id && cached.active == active && cached.read_at.elapsed() < XML_MAX_AGE;
        fresh.then(|| cached.xml.clone())
    }

    /// Keeps a domain's XML as just read.
    fn store_xml(&self, domain: &DomainSummary, xml: String) -> Arc<String> {
        let xml = Arc::new(xml);
        self.xml_reads.fetch_add(1, Ordering::Relaxed);
        let cached = CachedXml {
            id: domain.id,
            active: domain.state.is_active(),
            read_at: Instant::now(),
            xml: xml.clone(),
            devices: None,
        };
        self.xml_cache().insert(domain.uuid.clone(), cached);
        xml
    }

    /// The disks and vNICs that this XML of the domain names, parsed once per XML.
    fn devices(&self, uuid: &str, xml: &Arc<String>) -> Arc<stats::Devices> {
        if let Some(cached) = self.xml_cache().get(uuid).filter(|c| Arc::ptr_eq(&c.xml, xml)) {
            if let Some(devices) = &cached.devices {
                return devices.clone();
            }
        }
        let devices = Arc::new(stats::Devices::from_xml(xml));
        if let Some(cached) = self.xml_cache().get_mut(uuid).filter(|c| Arc::ptr_eq(&c.xml, xml)) {
            cached.devices = Some(devices.clone());
        }
        devices
    }

    /// Drops the cached XML of domains that are gone.
    fn forget_xml_except(&self, domains: &[DomainSummary]) {
        self.xml_cache().retain(|uuid, _| domains.iter().any(|d| &d.uuid == uuid));
    }

    fn xml_cache(&self) -> MutexGuard<'_, HashMap<String, CachedXml>> {
        self.xml.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many times a domain's statistics needed per-domain calls because the bulk
    /// read lacked them (always, on the test driver; never, on QEMU).
    pub fn per_domain_reads(&self) -> u64 {
        self.per_domain_reads.load(Ordering::Relaxed)
    }

    /// How many domain XML descriptions were read from libvirt so far.
    pub fn xml_reads(&self) -> u64 {
        self.xml_reads.load(Ordering::Relaxed)
    }

    /// Starts a polling cycle: a fresh snapshot that reads each domain once.
    pub fn cycle(self: &Arc<Self>) -> Arc<CycleSnapshot> {
        Arc::new(CycleSnapshot::new(self.clone()))
    }
}
