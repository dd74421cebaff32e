//! Access to the hypervisor through libvirt (the `virt` crate).
//!
//! Every call here blocks: callers run it on a blocking thread (plugin calls already
//! run on one), never on the async runtime's workers. A polling cycle reads through a
//! [`CycleSnapshot`]: one domain list, and one bulk statistics read per chunk of
//! domains, so each domain is asked at most once per cycle however many plugins want
//! it, and a large host's statistics are never all held at once.

mod bulk;
mod connection;
mod lanes;
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
use uuid::Uuid;
use virt::connect::Connect;

/// How long a libvirt call may take by default before it counts as failed.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_millis(1500);

/// How long opening the connection may take (a daemon that loads a node of ten
/// thousand domains takes seconds to accept one), unless the call timeout is longer.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a domain's XML is trusted when nothing else says it changed (a device
/// hot-plugged into a running domain changes neither its id nor its state)...
const XML_MAX_AGE: Duration = Duration::from_secs(600);
/// ...plus up to this much, depending on the domain.
const XML_AGE_SPREAD: Duration = Duration::from_secs(300);

/// The stamp of an XML text: a hash of it, never 0 (what a plugin that knows nothing
/// passes).
fn xml_stamp(xml: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    xml.hash(&mut hasher);
    hasher.finish().max(1)
}

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
/// a lost connection is re-opened with backoff), and what each domain's XML said
/// (its stamp and devices, not the text) kept across cycles.
pub struct Hypervisor {
    uri: String,
    connection: connection::Connection,
    /// The threads that share the per-domain calls of a job (see [`lanes`]).
    lanes: Arc<lanes::Lanes>,
    /// By domain UUID (a domain whose UUID does not parse is not kept).
    xml: Mutex<HashMap<Uuid, KnownXml>>,
    xml_reads: AtomicU64,
    per_domain_reads: AtomicU64,
    created: Instant,
}

/// What a domain's XML said when it was last read, and what the domain was then (one
/// per domain of the host, so kept small).
struct KnownXml {
    id: Option<u32>,
    active: bool,
    /// Seconds after the hypervisor was created.
    read_at: u32,
    /// Changes whenever the XML does (a hash of its text; never 0).
    stamp: u64,
    /// The disks and vNICs it names.
    devices: Arc<stats::Devices>,
}

impl Hypervisor {
    /// A hypervisor at `uri` whose calls time out after [`DEFAULT_CALL_TIMEOUT`];
    /// nothing is opened until first use.
    pub fn new(uri: impl Into<String>) -> Self {
        Self::with_timeout(uri, DEFAULT_CALL_TIMEOUT)
    }

    /// A hypervisor at `uri` whose calls time out after `timeout`.
    pub fn with_timeout(uri: impl Into<String>, timeout: Duration) -> Self {
        Self::with_timeouts(uri, timeout, timeout.max(OPEN_TIMEOUT))
    }

    /// The same, opening the connection within `open_timeout` (a daemon loading a
    /// large node takes seconds to accept one; each call then has `timeout`).
    pub fn with_timeouts(uri: impl Into<String>, timeout: Duration, open_timeout: Duration) -> Self {
        // libvirt prints every error to stderr by default; ours are returned instead.
        virt::error::clear_error_callback();
        let uri = uri.into();
        Self {
            connection: connection::Connection::new(&uri, timeout, open_timeout),
            lanes: Arc::new(lanes::Lanes::new(lanes::for_uri(&uri))),
            uri,
            xml: Mutex::default(),
            xml_reads: AtomicU64::new(0),
            per_domain_reads: AtomicU64::new(0),
            created: Instant::now(),
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

    /// The stamp and devices of a domain's XML as last read, if that is still good:
    /// the domain was neither (re)started nor stopped since, and the reading is younger
    /// than ten minutes (plus a spread per domain, so that a host's domains are not
    /// all read again in the same cycle).
    fn known_xml(&self, domain: &DomainSummary) -> Option<(u64, Arc<stats::Devices>)> {
        let cache = self.xml_cache();
        let known = cache.get(&Uuid::parse_str(&domain.uuid).ok()?)?;
        let max_age = XML_MAX_AGE + Duration::from_secs(known.stamp % XML_AGE_SPREAD.as_secs());
        let age = Duration::from_secs(self.seconds().saturating_sub(known.read_at).into());
        let fresh = known.id == domain.id && known.active == domain.state.is_active() && age < max_age;
        fresh.then(|| (known.stamp, known.devices.clone()))
    }

    /// Keeps what a domain's XML, just read, says: its stamp and devices.
    fn store_xml(&self, domain: &DomainSummary, xml: &str) -> (u64, Arc<stats::Devices>) {
        let stamp = xml_stamp(xml);
        let Ok(uuid) = Uuid::parse_str(&domain.uuid) else {
            return (stamp, Arc::new(stats::Devices::from_xml(xml)));
        };
        let mut cache = self.xml_cache();
        let devices = match cache.get(&uuid) {
            Some(known) if known.stamp == stamp => known.devices.clone(),
            _ => Arc::new(stats::Devices::from_xml(xml)),
        };
        let known = KnownXml {
            id: domain.id,
            active: domain.state.is_active(),
            read_at: self.seconds(),
            stamp,
            devices: devices.clone(),
        };
        cache.insert(uuid, known);
        (stamp, devices)
    }

    /// Seconds since the hypervisor was created.
    fn seconds(&self) -> u32 {
        u32::try_from(self.created.elapsed().as_secs()).unwrap_or(u32::MAX)
    }

    /// Forgets the XML of domains that are gone (`domains` is sorted by UUID, as
    /// libvirt writes it: lower case, hyphenated).
    fn forget_xml_except(&self, domains: &[DomainSummary]) {
        self.xml_cache().retain(|uuid, _| {
            let mut text = Uuid::encode_buffer();
            let uuid = uuid.hyphenated().encode_lower(&mut text);
            domains.binary_search_by(|d| d.uuid.as_str().cmp(uuid)).is_ok()
        });
    }

    fn xml_cache(&self) -> MutexGuard<'_, HashMap<Uuid, KnownXml>> {
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
