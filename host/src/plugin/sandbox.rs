//! Running one plugin: a store per instance, every call under the plugin's memory
//! limit and deadlines, and an instance that failed thrown away and re-made on the
//! next call.
//!
//! A call has two deadlines, both checked on the engine's epoch ticks: its own
//! running time (`call_timeout`), the CPU time of its thread, which does not count
//! what it waits on the host (a discoverer reading ten thousand domains' XML through
//! libvirtd waits for seconds and runs for a fraction of that; a pollster waits on
//! its HTTP requests), and its wall time (`call_wall_timeout`), which bounds a plugin
//! that keeps the host busy on its behalf. Epoch ticks are checked only while wasm
//! runs: every host wait has its own bound (libvirt's timeout; HTTP requests end by
//! the call's wall deadline).

use super::engine::{EpochTicker, PluginEngine};
use super::error::PluginError;
use super::plugin_log::{plugin_text, MAX_LINE};
use super::state::{PluginContext, PluginState};
use super::PluginKind;
use crate::bindings::agent::pollen::plugin::log::Level;
use crate::bindings::discoverer::{DiscovererPlugin, DiscovererPluginPre};
use crate::bindings::pollster::{PollsterPlugin, PollsterPluginPre};
use crate::bindings::transformer::{TransformerPlugin, TransformerPluginPre};
use crate::bindings::types;
use crate::hypervisor::CycleSnapshot;
use std::sync::{Arc, Mutex};
use wasmtime::component::InstancePre;
use wasmtime::{Store, Trap, UpdateDeadline};

/// What a call's deadline check decides: stop it if it ran past either deadline,
/// else check again when the nearer one could be reached.
fn next_deadline(state: &mut PluginState) -> UpdateDeadline {
    let (own_limit, wall_limit) = (state.context.call_timeout, state.context.call_wall_timeout);
    let clock = &mut state.clock;
    let (own, wall) = (clock.own(), clock.elapsed());
    if own >= own_limit {
        return UpdateDeadline::Interrupt;
    }
    if wall >= wall_limit {
        clock.past_wall_deadline = true;
        return UpdateDeadline::Interrupt;
    }
    UpdateDeadline::Continue(PluginEngine::deadline_ticks((own_limit - own).min(wall_limit - wall)))
}

/// A world's pre-instantiated component.
#[derive(Clone)]
enum WorldPre {
    Pollster(PollsterPluginPre<PluginState>),
    Discoverer(DiscovererPluginPre<PluginState>),
    Transformer(TransformerPluginPre<PluginState>),
}

/// A world's live instance.
pub(crate) enum WorldInstance {
    Pollster(PollsterPlugin),
    Discoverer(DiscovererPlugin),
    Transformer(TransformerPlugin),
}

struct Live {
    store: Store<PluginState>,
    instance: WorldInstance,
}

/// One plugin's instance manager.
pub(crate) struct Sandbox {
    context: PluginContext,
    pre: WorldPre,
    deadline_ticks: u64,
    engine: wasmtime::Engine,
    ticker: Arc<EpochTicker>,
    live: Mutex<Option<Live>>,
    figures: Figures,
}

/// A plugin's own metrics, their labels resolved once.
#[derive(Clone)]
struct Figures {
    calls: prometheus::IntCounter,
    instantiations: prometheus::IntCounter,
    seconds: prometheus::Histogram,
}

impl Figures {
    fn of(plugin: &str) -> Self {
        let metrics = crate::self_metrics::get();
        Self {
            calls: metrics.plugin_calls.with_label_values(&[plugin]),
            instantiations: metrics.plugin_instantiations.with_label_values(&[plugin]),
            seconds: metrics.plugin_call_seconds.with_label_values(&[plugin]),
        }
    }
}

impl Sandbox {
    /// A sandbox for a component linked as `kind`.
    pub(crate) fn new(
        engine: &PluginEngine,
        kind: PluginKind,
        pre: InstancePre<PluginState>,
        context: PluginContext,
    ) -> wasmtime::Result<Self> {
        let pre = match kind {
            PluginKind::Pollster => WorldPre::Pollster(PollsterPluginPre::new(pre)?),
            PluginKind::Discoverer => WorldPre::Discoverer(DiscovererPluginPre::new(pre)?),
            PluginKind::Transformer => WorldPre::Transformer(TransformerPluginPre::new(pre)?),
        };
        Ok(Self {
            deadline_ticks: PluginEngine::deadline_ticks(context.call_timeout.min(context.call_wall_timeout)),
            figures: Figures::of(&context.name),
            context,
            pre,
            engine: engine.engine.clone(),
            ticker: engine.ticker.clone(),
            live: Mutex::new(None),
        })
    }

    /// A sandbox for another instance of the same component, with other parameters.
    pub(crate) fn with_params(&self, params: Vec<(String, String)>) -> Self {
        Self {
            context: PluginContext { params: params.into(), ..self.context.clone() },
            pre: self.pre.clone(),
            deadline_ticks: self.deadline_ticks,
            engine: self.engine.clone(),
            ticker: self.ticker.clone(),
            live: Mutex::new(None),
            figures: self.figures.clone(),
        }
    }

    /// A sandbox for another instance of the same component, with the same parameters.
    pub(crate) fn another(&self) -> Self {
        self.with_params(self.context.params.to_vec())
    }

    /// The plugin's name.
    pub(crate) fn name(&self) -> &str {
        &self.context.name
    }

    /// Calls into the plugin. `f` gets the instance and its store; a trap, deadline
    /// or memory failure discards the instance, an error the plugin returns does not.
    pub(crate) fn call<R>(
        &self,
        cycle: Option<Arc<CycleSnapshot>>,
        f: impl FnOnce(&WorldInstance, &mut Store<PluginState>) -> wasmtime::Result<Result<R, types::Error>>,
    ) -> Result<R, PluginError> {
        let started = std::time::Instant::now();
        let result = self.call_counted(cycle, f);
        if crate::self_metrics::get().enabled() {
            self.figures.calls.inc();
            self.figures.seconds.observe(started.elapsed().as_secs_f64());
            if let Err(error) = &result {
                crate::self_metrics::get().plugin_errors.with_label_values(&[self.name(), error.kind()]).inc();
            }
        }
        result
    }

    /// [`Sandbox::call`] itself.
    fn call_counted<R>(
        &self,
        cycle: Option<Arc<CycleSnapshot>>,
        f: impl FnOnce(&WorldInstance, &mut Store<PluginState>) -> wasmtime::Result<Result<R, types::Error>>,
    ) -> Result<R, PluginError> {
        let mut slot = self.live.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let _ticking = self.ticker.running();
        if slot.is_none() {
            self.figures.instantiations.inc();
            *slot = Some(self.instantiate()?);
        }
        let live = slot.as_mut().expect("instantiated above");
        let state = live.store.data_mut();
        state.cycle = cycle;
        state.begin_call();
        live.store.set_epoch_deadline(self.deadline_ticks);
        let result = f(&live.instance, &mut live.store);
        live.store.data_mut().cycle = None;
        let (clock, memory) = (live.store.data().clock, live.store.data().limiter.memory());
        tracing::debug!(plugin = %self.name(), own = ?clock.own(), wall = ?clock.elapsed(), memory_kib = memory >> 10,
            "plugin call");
        let stderr = self.log_output(live);
        self.context.log.report_held_back();
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => match live.store.data_mut().keystone_failure.take() {
                Some(keystone) => Err(PluginError::NoCatalog { plugin: self.name().into(), keystone }),
                None => Err(PluginError::Reported { plugin: self.name().into(), message: describe_error(&error) }),
            },
            Err(trap) => {
                let error = self.classify(&trap, &live.store, &stderr);
                *slot = None;
                Err(error)
            }
        }
    }

    /// Throws the instance away; the next call makes a new one.
    pub(crate) fn discard(&self) {
        *self.live.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }

    fn instantiate(&self) -> Result<Live, PluginError> {
        let mut state = PluginState::new(self.context.clone());
        state.begin_call();
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        store.epoch_deadline_callback(|mut store| Ok(next_deadline(store.data_mut())));
        store.set_epoch_deadline(self.deadline_ticks);
        let instance = match &self.pre {
            WorldPre::Pollster(pre) => pre.instantiate(&mut store).map(WorldInstance::Pollster),
            WorldPre::Discoverer(pre) => pre.instantiate(&mut store).map(WorldInstance::Discoverer),
            WorldPre::Transformer(pre) => pre.instantiate(&mut store).map(WorldInstance::Transformer),
        };
        let instance = match instance {
            Ok(instance) => instance,
            Err(trap) => return Err(self.classify(&trap, &store, "")),
        };
        let mut live = Live { store, instance };
        // A transformer reads its parameters once, on every new instance.
        if let WorldInstance::Transformer(transformer) = &live.instance {
            let configured = transformer.pollen_plugin_transformer().call_configure(&mut live.store);
            let stderr = self.log_output(&live);
            match configured {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    return Err(PluginError::Reported { plugin: self.name().into(), message: describe_error(&error) })
                }
                Err(trap) => return Err(self.classify(&trap, &live.store, &stderr)),
            }
        }
        Ok(live)
    }

    /// What kind of failure a trap was; `stderr` (what the plugin printed during the
    /// call, e.g. a panic message) is added to a plain trap's message.
    fn classify(&self, error: &wasmtime::Error, store: &Store<PluginState>, stderr: &str) -> PluginError {
        let plugin = self.name().to_string();
        let failure = if store.data().limiter.exceeded() {
            PluginError::MemoryLimit { plugin, limit_mib: store.data().limiter.limit() / (1024 * 1024) }
        } else if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            match store.data().clock.past_wall_deadline {
                true => PluginError::WallDeadline { plugin, timeout: self.context.call_wall_timeout },
                false => PluginError::Deadline { plugin, timeout: self.context.call_timeout },
            }
        } else {
            // The last two lines it wrote say why (a Rust panic's message, a Python
            // exception's type and message), not the hints meant for a terminal
            // (`note: run with RUST_BACKTRACE=1`), which a plugin cannot follow.
            let said: Vec<&str> = stderr
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
                .collect();
            let tail = plugin_text(&said[said.len().saturating_sub(2)..].join(" "), 512).into_owned();
            let message = match tail.is_empty() {
                true => error.root_cause().to_string(),
                false => format!("{} ({tail})", error.root_cause()),
            };
            PluginError::Trap { plugin, message }
        };
        tracing::error!(plugin = %self.name(), error = %failure, "plugin instance discarded; it is re-made for the next call");
        failure
    }

    /// Copies what the plugin wrote since the last call into the log, stdout at
    /// info and stderr at warning (each through its log's rate limit), and returns
    /// the stderr (a panic's message lands there).
    fn log_output(&self, live: &Live) -> String {
        let state = live.store.data();
        self.log_pipe(&state.stdout, Level::Info, "stdout");
        self.log_pipe(&state.stderr, Level::Warn, "stderr")
    }

    /// Copies what `pipe` holds into the log, each line after `name:`; its text.
    fn log_pipe(&self, pipe: &super::output::OutputPipe, level: Level, name: &str) -> String {
        let (bytes, dropped) = pipe.take();
        if dropped > 0 {
            self.context.log.line(Level::Warn, &format!("{name}: {dropped} bytes dropped (over 64 KiB in one call)"));
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            self.context.log.line(level, &format!("{name}: {line}"));
        }
        text
    }
}

/// The text of an error a plugin returned.
pub(crate) fn describe_error(error: &types::Error) -> String {
    let (what, message) = match error {
        types::Error::BadConfig(message) => ("bad configuration: ", message),
        types::Error::Host(message) => ("host function failed: ", message),
        types::Error::Other(message) => ("", message),
    };
    format!("{what}{}", plugin_text(message, MAX_LINE))
}
