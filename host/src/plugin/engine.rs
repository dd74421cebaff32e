//! The wasmtime engine shared by every plugin: configured for components and epoch
//! interruption, with a ticker thread that advances the epoch while plugins run, and one linker that
//! holds every host interface plus a WASI that grants nothing and never blocks,
//! and `wasi:http`, whose requests only the plugins granted `http` may send.
//!
//! Epoch interruption stops a call only while its wasm runs; a call blocked in the
//! host would escape both deadlines. In this WASI nothing can block but a granted
//! HTTP request (bounded by the call's wall deadline, see `caps::http`): there are
//! no files, sockets or name lookups, stdin is empty, stdout and stderr are memory,
//! and the clocks' subscriptions (what `std::thread::sleep` and every timeout in a
//! guest come down to) are ready at once. A plugin that sleeps in a loop spins, and
//! its deadline stops it.

use super::cache::ComponentCache;
use super::error::EngineError;
use super::state::PluginState;
use crate::bindings::agent::Agent;
use crate::caps::http::HttpClient;
use crate::config::HttpSettings;
use crate::openstack::Keystone;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;
use wasmtime::component::{HasSelf, Linker, Resource};
use wasmtime::{Config, Engine};
use wasmtime_wasi::p2::{subscribe, DynPollable, Pollable};
use wasmtime_wasi::WasiView;

/// How often the epoch advances; call deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The engine, linker and compiled-component cache of one agent.
pub struct PluginEngine {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<PluginState>,
    pub(crate) cache: ComponentCache,
    /// Compiles ahead of loading, in parallel and in the background.
    pub(crate) warmup: super::warmup::Warmup,
    pub(crate) ticker: Arc<EpochTicker>,
    /// The HTTP client of the plugins granted `http` or `openstack` (its TLS roots
    /// read once), kept across reloads while `agent.http` is the same.
    http: Mutex<Option<(HttpSettings, Arc<HttpClient>)>>,
    /// The Keystone session of the plugins granted `openstack`, kept across reloads
    /// while the credentials and the client are the same.
    keystone: Mutex<Option<Arc<Keystone>>>,
}

impl PluginEngine {
    /// An engine whose compiled components are cached in `cache_dir`.
    pub fn new(cache_dir: PathBuf) -> Result<Self, EngineError> {
        Self::build(cache_dir).map_err(|error| EngineError(format!("{error:#}")))
    }

    fn build(cache_dir: PathBuf) -> wasmtime::Result<Self> {
        let engine = Engine::new(&engine_config())?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        add_clocks_that_never_block(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker)?;
        Agent::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |state| state)?;

        let ticker = EpochTicker::start(engine.clone())?;
        let cache = ComponentCache::new(cache_dir, &engine);
        Ok(Self {
            engine,
            linker,
            cache,
            warmup: Default::default(),
            ticker,
            http: Mutex::new(None),
            keystone: Mutex::new(None),
        })
    }

    /// The agent's HTTP client for `settings` (made on first use; a new one when the
    /// settings change).
    pub(crate) fn http_client(&self, settings: &HttpSettings) -> Result<Arc<HttpClient>, String> {
        let mut slot = self.http.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, client)) = slot.as_ref().filter(|(made_for, _)| made_for == settings) {
            return Ok(client.clone());
        }
        let client = Arc::new(HttpClient::new(settings).map_err(|e| e.to_string())?);
        *slot = Some((settings.clone(), client.clone()));
        Ok(client)
    }

    /// The agent's Keystone session for `agent.openstack` (made on first use; a new
    /// one when the credentials or `agent.http` change). The credentials were checked
    /// where they were read (`config::check_openstack`); Keystone refuses what is
    /// wrong with them when the session first authenticates.
    pub(crate) fn keystone(&self, agent: &crate::config::Agent) -> Result<Arc<Keystone>, String> {
        let client = self.http_client(&agent.http)?;
        let mut slot = self.keystone.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(session) =
            slot.as_ref().filter(|s| *s.credentials() == agent.openstack && Arc::ptr_eq(s.client(), &client))
        {
            return Ok(session.clone());
        }
        let session = Arc::new(Keystone::new(agent.openstack.clone(), client).map_err(|e| e.to_string())?);
        *slot = Some(session.clone());
        Ok(session)
    }

    /// Epoch ticks for a deadline of `timeout` (at least one).
    pub fn deadline_ticks(timeout: Duration) -> u64 {
        let ticks = timeout.as_nanos().div_ceil(EPOCH_TICK.as_nanos());
        u64::try_from(ticks).unwrap_or(u64::MAX).max(1)
    }
}

/// The engine's configuration: components, epoch interruption. The child compiler
/// (`compiler`) builds its engine from it too, so that what it compiles loads here.
pub(crate) fn engine_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true).epoch_interruption(true);
    config
}

/// The WASI version whose monotonic clock is replaced (every `0.2.x` import of a
/// guest links to it).
const WASI_MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// Replaces WASI's `subscribe-duration` and `subscribe-instant` (a real sleep) with
/// subscriptions that are ready at once, as a frozen clock's deadlines would be.
fn add_clocks_that_never_block(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut clock = linker.instance(WASI_MONOTONIC_CLOCK)?;
    clock.func_wrap("subscribe-duration", |mut store, (_nanos,): (u64,)| Ok((ready_at_once(store.data_mut())?,)))?;
    clock.func_wrap("subscribe-instant", |mut store, (_when,): (u64,)| Ok((ready_at_once(store.data_mut())?,)))?;
    linker.allow_shadowing(false);
    Ok(())
}

fn ready_at_once(state: &mut PluginState) -> wasmtime::Result<Resource<DynPollable>> {
    let table = state.ctx().table;
    let elapsed = table.push(Elapsed)?;
    subscribe(table, elapsed)
}

/// A clock subscription that is already due.
struct Elapsed;

impl Pollable for Elapsed {
    fn ready<'a, 'b>(&'a mut self) -> Pin<Box<dyn Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
    {
        Box::pin(std::future::ready(()))
    }
}

impl Drop for PluginEngine {
    fn drop(&mut self) {
        self.ticker.stop();
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] while at least one plugin runs
/// (a call or an instantiation), and sleeps while none does: an idle agent does not
/// wake a hundred times a second for nothing (at a 20 s interval that was ~70 ms of
/// CPU per cycle). Deadlines are counted from the epoch at a call's start, so ticks
/// skipped while idle change none.
pub(crate) struct EpochTicker {
    state: Mutex<TickerState>,
    wake: Condvar,
    /// Ticks so far.
    ticks: AtomicU64,
}

#[derive(Default)]
struct TickerState {
    running: usize,
    stopped: bool,
}

impl EpochTicker {
    fn start(engine: Engine) -> std::io::Result<Arc<Self>> {
        let ticker = Arc::new(Self { state: Mutex::default(), wake: Condvar::new(), ticks: AtomicU64::new(0) });
        let thread = ticker.clone();
        std::thread::Builder::new().name("pollen-epoch".into()).spawn(move || loop {
            {
                let state = thread.lock();
                let state = thread.wake.wait_while(state, |s| s.running == 0 && !s.stopped);
                if state.unwrap_or_else(|poisoned| poisoned.into_inner()).stopped {
                    return;
                }
            }
            std::thread::sleep(EPOCH_TICK);
            engine.increment_epoch();
            thread.ticks.fetch_add(1, Ordering::Relaxed);
        })?;
        Ok(ticker)
    }

    fn lock(&self) -> MutexGuard<'_, TickerState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keeps the epoch advancing until the guard is dropped.
    pub(crate) fn running(self: &Arc<Self>) -> Ticking {
        let mut state = self.lock();
        state.running += 1;
        if state.running == 1 {
            self.wake.notify_one();
        }
        Ticking(self.clone())
    }

    fn stop(&self) {
        self.lock().stopped = true;
        self.wake.notify_all();
    }
}

/// A plugin running: the epoch advances while this lives.
pub(crate) struct Ticking(Arc<EpochTicker>);

impl Drop for Ticking {
    fn drop(&mut self) {
        self.0.lock().running -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Waits until the ticker has ticked `at_least` times (a loaded machine may take
    /// long; the deadline is a safety net).
    fn wait_for_ticks(ticker: &EpochTicker, at_least: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while ticker.ticks.load(Ordering::Relaxed) < at_least {
            assert!(Instant::now() < deadline, "the ticker never ticked while a plugin ran");
            std::thread::sleep(EPOCH_TICK);
        }
    }

    #[test]
    fn the_epoch_advances_only_while_a_plugin_runs() {
        let ticker = EpochTicker::start(Engine::new(&engine_config()).unwrap()).unwrap();
        std::thread::sleep(EPOCH_TICK * 5);
        assert_eq!(ticker.ticks.load(Ordering::Relaxed), 0, "idle: no tick");
        let running = ticker.running();
        wait_for_ticks(&ticker, 3);
        drop(running);
        // At most the tick in progress when the guard went.
        let after = ticker.ticks.load(Ordering::Relaxed) + 1;
        std::thread::sleep(EPOCH_TICK * 5);
        assert!(ticker.ticks.load(Ordering::Relaxed) <= after, "idle again: ticking stopped");
        let (first, second) = (ticker.running(), ticker.running());
        drop(first);
        let now = ticker.ticks.load(Ordering::Relaxed);
        wait_for_ticks(&ticker, now + 2);
        drop(second);
        ticker.stop();
    }
}
