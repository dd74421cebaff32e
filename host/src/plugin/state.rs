//! What a plugin's store holds: its name, its grants and parameters, a WASI context
//! that grants nothing, its `wasi:http` hooks, its limits, and the current cycle's
//! hypervisor snapshot.

use super::limits::MemoryLimiter;
use super::output::OutputPipe;
use super::plugin_log::PluginLog;
use crate::caps::http::{HttpAccess, HttpHooks};
use crate::config::Grant;
use crate::hypervisor::CycleSnapshot;
use crate::registry::{Namespace, Registry, ResourceHandle};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Bytes of a plugin's stderr (panic messages land there) or stdout (what Python's
/// `print` writes) kept between two calls.
const STDERR_CAPACITY: usize = 64 * 1024;

/// What the host knows of one plugin, shared by all of its instances.
#[derive(Clone)]
pub struct PluginContext {
    /// The plugin's name (its file's stem).
    pub name: Arc<str>,
    /// What the pipeline grants it.
    pub grants: Arc<[Grant]>,
    /// Its `params` from the pipeline, as text.
    pub params: Arc<[(String, String)]>,
    /// The agent's meters and resources (for transformers).
    pub registry: Arc<Registry>,
    /// Where the resources it discovers are kept (a discoverer): its own.
    pub namespace: Namespace,
    /// Memory limit, bytes.
    pub memory_limit: usize,
    /// Deadline of a call's own running time: the CPU time of its thread (its waits
    /// on the host, on libvirt or the network, not counted).
    pub call_timeout: Duration,
    /// Deadline of a call's wall time.
    pub call_wall_timeout: Duration,
    /// Its way into the agent's log (rate-limited, escaped).
    pub log: Arc<PluginLog>,
    /// How many meters of its own making it interned (a transformer), all its
    /// instances together.
    pub made_meters: Arc<std::sync::atomic::AtomicUsize>,
    /// The sub-meters it named (a multi-metric pollster), all its instances together.
    pub sub_meters: Arc<crate::caps::sub_meters::SubMeters>,
    /// What it may reach over HTTP, if the pipeline grants `http` or `openstack`.
    pub http: Option<Arc<HttpAccess>>,
    /// The agent's Keystone session, if the pipeline grants `openstack`.
    pub openstack: Option<Arc<crate::openstack::Keystone>>,
}

impl PluginContext {
    /// Whether the pipeline grants `grant`.
    pub fn is_granted(&self, grant: Grant) -> bool {
        self.grants.contains(&grant)
    }
}

/// A discoverer's `discover` call in progress.
pub(crate) struct DiscoveryCall {
    /// What the instance reported in its previous call.
    pub previous: HashSet<ResourceHandle>,
    /// What it has reported so far.
    pub found: super::Discovered,
}

/// A pollster's `poll` call in progress: the resources it names (`resources.add`).
#[derive(Default)]
pub(crate) struct NamingCall {
    /// How many resources the call was given (named ones are indexed after them).
    pub given: usize,
    /// What it named, in order.
    pub named: Vec<(ResourceHandle, Arc<crate::sample::Resource>)>,
    /// How many it named over the host's bounds.
    pub refused: usize,
    /// The first one's problem.
    pub first_refused: Option<String>,
}

/// The data of one plugin instance's store.
pub struct PluginState {
    pub(crate) context: PluginContext,
    pub(crate) cycle: Option<Arc<CycleSnapshot>>,
    pub(crate) limiter: MemoryLimiter,
    /// What it writes to stderr, for the log.
    pub(crate) stderr: OutputPipe,
    /// What it writes to stdout (Python's `print`), for the log.
    pub(crate) stdout: OutputPipe,
    /// A discoverer's resources as this instance reported them in its last `discover`
    /// call (or the current one): what its `unchanged` reports may stand for.
    pub(crate) reported: HashSet<ResourceHandle>,
    /// The `discover` call in progress, if any.
    pub(crate) discovering: Option<DiscoveryCall>,
    /// The `poll` call in progress, if any.
    pub(crate) naming: Option<NamingCall>,
    /// The time of the call in progress.
    pub(crate) clock: CallClock,
    /// What a transformer instance was given or made: what its samples may be on.
    pub(crate) given: super::given::Given,
    /// Where its `wasi:http` requests go.
    pub(crate) http_hooks: HttpHooks,
    /// Why Keystone gave the call in progress no token, if it did not: a call that then
    /// fails failed for want of the catalog, and is logged with the agent's other such
    /// failures of the cycle, once.
    pub(crate) keystone_failure: Option<String>,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
}

impl PluginState {
    /// A fresh state: no files, no network, no environment, no arguments, a frozen
    /// clock, stdout and stderr captured for the log.
    pub fn new(context: PluginContext) -> Self {
        let stderr = OutputPipe::new(STDERR_CAPACITY);
        let stdout = OutputPipe::new(STDERR_CAPACITY);
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let limiter = MemoryLimiter::new(context.memory_limit);
        let http_hooks = HttpHooks::new(context.http.clone());
        Self {
            context,
            cycle: None,
            limiter,
            stderr,
            stdout,
            reported: HashSet::new(),
            discovering: None,
            naming: None,
            clock: CallClock::start(),
            given: Default::default(),
            http_hooks,
            keystone_failure: None,
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
        }
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.context.name
    }

    /// Starts the clock of a call (or of the instantiation): its own time from now,
    /// and no HTTP request past its wall deadline.
    pub(crate) fn begin_call(&mut self) {
        self.clock = CallClock::start();
        self.keystone_failure = None;
        self.http_hooks.wall_deadline = (self.clock.started + self.context.call_wall_timeout).into();
    }
}

/// The time of one call into a plugin: since when, in wall time and in the CPU time
/// of the thread it runs on (a sync call stays on its thread). What the thread spends
/// blocked (on libvirt, on the network) is not CPU time: it is not the plugin's own.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallClock {
    /// When the call began.
    pub started: Instant,
    /// The thread's CPU time when it began.
    cpu_started: Duration,
    /// Whether the call was stopped for its wall time.
    pub past_wall_deadline: bool,
}

impl CallClock {
    /// A clock started now, on this thread.
    pub fn start() -> Self {
        Self { started: Instant::now(), cpu_started: thread_cpu_time(), past_wall_deadline: false }
    }

    /// Wall time so far.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The plugin's own time so far: the CPU time its thread used since the start
    /// (call only on that thread).
    pub fn own(&self) -> Duration {
        thread_cpu_time().saturating_sub(self.cpu_started)
    }
}

/// The CPU time the calling thread has used.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid timespec to write to; the clock id is a constant.
    let read = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    if read != 0 {
        return Duration::ZERO;
    }
    Duration::new(u64::try_from(now.tv_sec).unwrap_or(0), u32::try_from(now.tv_nsec).unwrap_or(0))
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for PluginState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.http_hooks }
    }
}

/// A clock that always reads the Unix epoch: plugins get no clock of their own (the
/// host timestamps samples), so their output cannot depend on when they run.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}
