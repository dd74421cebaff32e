//! The wasmtime engine shared by every plugin: configured for components and epoch
//! interruption, with a ticker thread that advances the epoch, and one linker that
//! holds every host interface plus a WASI that grants nothing.

use super::cache::ComponentCache;
use super::error::EngineError;
use super::state::PluginState;
use crate::bindings::agent::Agent;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine};

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
        let mut config = Config::new();
        config.wasm_component_model(true).epoch_interruption(true);
        let engine = Engine::new(&config)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
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

impl Drop for PluginEngine {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}
