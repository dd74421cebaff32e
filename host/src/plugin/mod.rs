//! Plugins: WebAssembly components loaded from the plugin directory, each one a
//! pollster, a discoverer or a transformer, each run in its own sandbox.

mod cache;
pub mod compiler;
mod engine;
mod error;
mod given;
pub mod imports;
mod limits;
mod loader;
mod outline;
mod output;
mod plugin_log;
mod sandbox;
mod state;
pub mod warmup;

pub use cache::CacheOutcome;
pub use engine::PluginEngine;
pub use error::{EngineError, LoadError, PluginError};
pub(crate) use given::NO_HANDLE;
pub use loader::{examine, load_dir, load_file, LoadedDir};
pub use plugin_log::{plugin_text, PluginLog};
pub use state::{PluginContext, PluginState};

use crate::bindings::types;
use crate::hypervisor::CycleSnapshot;
use crate::registry::{MeterHandle, ResourceHandle};
use crate::sample::{Meter, Resource, Sample};
use sandbox::{Sandbox, WorldInstance};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// The version of the WIT contract (`pollen:plugin`) this agent speaks.
pub const CONTRACT_VERSION: &str = "0.2.0";

/// What a plugin is: which world it implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// Measures meters.
    Pollster,
    /// Finds resources.
    Discoverer,
    /// Turns samples into samples.
    Transformer,
}

impl PluginKind {
    /// The WIT interface it exports, without version.
    pub fn export_interface(self) -> &'static str {
        match self {
            Self::Pollster => "pollen:plugin/pollster",
            Self::Discoverer => "pollen:plugin/discoverer",
            Self::Transformer => "pollen:plugin/transformer",
        }
    }

    /// Its name in the WIT package.
    pub fn world(self) -> &'static str {
        match self {
            Self::Pollster => "pollster-plugin",
            Self::Discoverer => "discoverer-plugin",
            Self::Transformer => "transformer-plugin",
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pollster => "pollster",
            Self::Discoverer => "discoverer",
            Self::Transformer => "transformer",
        })
    }
}

/// A meter a pollster provides.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MeterSpec {
    /// Name, type and unit.
    #[serde(flatten)]
    pub meter: Meter,
    /// The discoverer used when the pipeline names none.
    pub default_discoverer: Option<String>,
    /// Its handle in the agent's registry.
    #[serde(skip)]
    pub handle: MeterHandle,
}

/// What a loaded plugin is and provides (what `pollen plugins inspect` shows).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginInfo {
    /// Its name: the file's stem.
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// Its world.
    pub kind: PluginKind,
    /// The WIT world, e.g. `pollen:plugin/pollster-plugin@0.2.0`.
    pub world: String,
    /// Everything it imports.
    pub imports: Vec<String>,
    /// The meters of a pollster.
    pub meters: Vec<MeterSpec>,
    /// The name a discoverer answers to.
    pub discoverer: Option<String>,
    /// Whether its native code came from the cache.
    #[serde(skip)]
    pub cache: CacheOutcome,
}

/// What one `poll` call returned.
pub struct Polled {
    /// Its samples.
    pub samples: Vec<types::Sample>,
    /// The resources it named, interned, in the order of their indices (after the
    /// resources it was given).
    pub named: Vec<(ResourceHandle, Arc<Resource>)>,
}

/// What one `discover` call found.
#[derive(Default)]
pub struct Discovered {
    /// Each resource found, with its handle, in the order reported.
    pub resources: Vec<(ResourceHandle, Arc<Resource>)>,
    /// How many of them were reported in full (new or changed).
    pub changed: usize,
    /// Ids reported `unchanged` that this instance never reported in full: refused.
    pub refused: Vec<String>,
    /// Resources refused for being over the host's bounds (too long an id, too much
    /// metadata, too many in one call), and the first one's problem.
    pub over_bounds: usize,
    /// What was wrong with the first of them.
    pub first_over_bounds: Option<String>,
}

/// A transformer's samples, those on meters or resources it was never given marked
/// refused (the chain drops and counts them) and logged once per call.
fn own_samples_only(state: &PluginState, mut samples: Vec<Sample>) -> Vec<Sample> {
    let refused = state.given.refuse_foreign(&mut samples);
    if refused > 0 {
        tracing::warn!(plugin = %state.name(), refused,
            "transformer returned samples on meters or resources it was not given; refused");
    }
    samples
}

/// A loaded, runnable plugin.
pub struct Plugin {
    /// What it is.
    pub info: PluginInfo,
    sandbox: Sandbox,
    /// A discoverer's instances for the parameters of `name:param` entries, one each.
    with_param: std::sync::Mutex<std::collections::HashMap<String, Arc<Sandbox>>>,
    /// Its file's bytes and its settings, hashed: a reload keeps the plugin while this
    /// is unchanged.
    pub fingerprint: u64,
    /// The sub-meters a pollster named (`sub-meters.add`), indexed after its meters.
    pub sub_meters: Arc<crate::caps::sub_meters::SubMeters>,
}

impl Plugin {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// Its kind.
    pub fn kind(&self) -> PluginKind {
        self.info.kind
    }

    fn wrong_kind(&self, wanted: PluginKind) -> PluginError {
        PluginError::WrongKind { plugin: self.info.name.clone(), kind: self.info.kind, wanted }
    }

    /// A pollster's samples for `resources`, and the resources it named itself
    /// (`resources.add`), which samples index after `resources`.
    pub fn poll(&self, cycle: Arc<CycleSnapshot>, resources: &[types::ResourceInfo]) -> Result<Polled, PluginError> {
        self.check_kind(PluginKind::Pollster)?;
        self.sandbox.call(Some(cycle), |instance, store| {
            let WorldInstance::Pollster(p) = instance else { unreachable!("kind checked above") };
            store.data_mut().naming = Some(state::NamingCall { given: resources.len(), ..Default::default() });
            let result = p.pollen_plugin_pollster().call_poll(&mut *store, resources);
            let naming = store.data_mut().naming.take().unwrap_or_default();
            if let Some(first) = &naming.first_refused {
                tracing::warn!(plugin = %self.name(), refused = naming.refused, first = %plugin_text(first, 256),
                    "the pollster named resources over the host's bounds; they are left out");
            }
            result.map(|polled| polled.map(|samples| Polled { samples, named: naming.named }))
        })
    }

    /// A discoverer's resources, interned in the registry as it reports them: those
    /// it reports changed are stored anew, those it reports unchanged are what this
    /// instance reported in its previous call. An `unchanged` id it did not report then
    /// (or whose resource was evicted) is refused; then, and after any failure, the
    /// instance is made anew for the next call, which reports everything in full.
    /// `param` is the parameter of the pipeline's `name:param` entry; each has an
    /// instance of its own.
    pub fn discover(&self, cycle: Arc<CycleSnapshot>, param: Option<&str>) -> Result<Discovered, PluginError> {
        self.check_kind(PluginKind::Discoverer)?;
        let owned;
        let sandbox = match param {
            None => &self.sandbox,
            Some(param) => {
                let mut instances = self.with_param.lock().unwrap_or_else(|p| p.into_inner());
                owned = instances.entry(param.to_string()).or_insert_with(|| Arc::new(self.sandbox.another())).clone();
                &*owned
            }
        };
        let param = param.map(str::to_string);
        let discovered = sandbox.call(Some(cycle), |instance, store| {
            let WorldInstance::Discoverer(d) = instance else { unreachable!("kind checked above") };
            let state = store.data_mut();
            let previous = std::mem::take(&mut state.reported);
            state.discovering = Some(state::DiscoveryCall { previous, found: Discovered::default() });
            let result = d.pollen_plugin_discoverer().call_discover(&mut *store, param.as_deref());
            let call = store.data_mut().discovering.take();
            result.map(|reported| reported.map(|()| call.map(|c| c.found).unwrap_or_default()))
        });
        let discovered = discovered.inspect_err(|_| sandbox.discard())?;
        if let Some(first) = &discovered.first_over_bounds {
            tracing::warn!(plugin = %self.name(), refused = discovered.over_bounds, first = %plugin_text(first, 256),
                "the discoverer reported resources over the host's bounds; they are left out");
        }
        if let Some(first) = discovered.refused.first() {
            tracing::warn!(plugin = %self.name(), refused = discovered.refused.len(), first = %plugin_text(first, 256),
                "the discoverer reported resources unchanged that it did not report in full; its instance is made anew");
            sandbox.discard();
        }
        Ok(discovered)
    }

    /// A transformer's output for one batch.
    pub fn transform(&self, batch: &[Sample]) -> Result<Vec<Sample>, PluginError> {
        self.check_kind(PluginKind::Transformer)?;
        self.sandbox.call(None, |instance, store| {
            let WorldInstance::Transformer(t) = instance else { unreachable!("kind checked above") };
            store.data_mut().given.take(batch);
            let out = t.pollen_plugin_transformer().call_transform(&mut *store, batch);
            Ok(out?.map(|samples| own_samples_only(store.data(), samples)))
        })
    }

    /// What a transformer held back; everything it holds when `shutdown`.
    pub fn flush(&self, shutdown: bool) -> Result<Vec<Sample>, PluginError> {
        self.check_kind(PluginKind::Transformer)?;
        self.sandbox.call(None, |instance, store| {
            let WorldInstance::Transformer(t) = instance else { unreachable!("kind checked above") };
            let out = t.pollen_plugin_transformer().call_flush(&mut *store, shutdown);
            Ok(out?.map(|samples| own_samples_only(store.data(), samples)))
        })
    }

    /// Another instance of this plugin, with its own state and these parameters
    /// instead of the plugin's `params` (a sink's transformer). Nothing runs yet:
    /// [`Plugin::start`] makes the instance.
    pub fn with_params(&self, params: Vec<(String, String)>) -> Plugin {
        Plugin {
            info: self.info.clone(),
            sandbox: self.sandbox.with_params(params),
            with_param: Default::default(),
            fingerprint: self.fingerprint,
            sub_meters: self.sub_meters.clone(),
        }
    }

    /// Makes the instance now rather than at the first call; a transformer reads and
    /// checks its parameters then (its `configure`).
    pub fn start(&self) -> Result<(), PluginError> {
        self.sandbox.call(None, |_, _| Ok(Ok(())))
    }

    fn check_kind(&self, wanted: PluginKind) -> Result<(), PluginError> {
        if self.info.kind == wanted {
            Ok(())
        } else {
            Err(self.wrong_kind(wanted))
        }
    }
}
