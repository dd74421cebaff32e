//! The wasmtime engine shared by every plugin: configured for components and epoch
//! interruption, with a ticker thread that advances the epoch, and one linker that
//! holds every host interface plus a WASI that grants nothing and never blocks.
//!
//! Epoch interruption stops a call only while its wasm runs; a call blocked in the
//! host would escape both deadlines. In this WASI nothing can block: there are no
//! files, sockets or name lookups, stdin is empty, stdout and stderr are memory, and
//! the clocks' subscriptions (what `std::thread::sleep` and every timeout in a
//! guest come down to) are ready at once. A plugin that sleeps in a loop spins, and
//! its deadline stops it.

use super::cache::ComponentCache;
use super::error::EngineError;
use super::state::PluginState;
use crate::bindings::agent::Agent;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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
    ticker_stop: Arc<AtomicBool>,
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
        Agent::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |state| state)?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let (ticking, stop) = (engine.clone(), ticker_stop.clone());
        std::thread::Builder::new().name("pollen-epoch".into()).spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                ticking.increment_epoch();
            }
        })?;

        let cache = ComponentCache::new(cache_dir, &engine);
        Ok(Self { engine, linker, cache, ticker_stop })
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
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}
