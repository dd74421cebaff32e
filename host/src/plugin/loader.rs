//! Loading plugin files: check that each is a component of a known world that
//! imports only what its kind may use and the pipeline grants, link it, and ask it
//! what it provides.

use super::compiler::CompileBudget;
use super::engine::PluginEngine;
use super::error::LoadError;
use super::imports::Verdict;
use super::outline::outline;
use super::plugin_log::{plugin_text, PluginLog};
use super::sandbox::{Sandbox, WorldInstance};
use super::state::PluginContext;
use super::warmup::{CompileFailure, CompileJob};
use super::{MeterSpec, Plugin, PluginInfo, PluginKind, CONTRACT_VERSION};
use crate::bindings::types;
use crate::caps::bounds::{meter_fits, MAX_METER_NAME, MAX_UNIT};
use crate::caps::http::HttpAccess;
use crate::config::dynamic::{DynamicPollster, DYNAMIC_PLUGIN};
use crate::config::{Agent, Grant};
use crate::registry::Registry;
use crate::sample::Meter;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The plugins of a directory, and the files that were refused.
pub struct LoadedDir {
    /// Loaded plugins, in file-name order.
    pub plugins: Vec<Arc<Plugin>>,
    /// Refused files, each with its reason.
    pub errors: Vec<LoadError>,
    /// Files still compiling when the load stopped waiting: left out of this load,
    /// they join the next once compiled.
    pub pending: Vec<Arc<CompileJob>>,
}

/// Loads every `*.wasm` file of `dir`. A refused file does not stop the others, and
/// a later plugin that conflicts with an earlier one (same meter, same discoverer
/// name) is refused. A plugin of `previous` whose file and settings are unchanged is
/// kept as it is, with its instance and state (a reload).
///
/// Files not yet compiled are compiled first, in parallel (`warmup`); the load waits
/// for them up to `wait` (`None`: for as long as each takes), and one still compiling
/// then is left out, in [`LoadedDir::pending`].
pub fn load_dir(
    engine: &PluginEngine,
    dir: &Path,
    agent: &Agent,
    registry: &Arc<Registry>,
    previous: &[Arc<Plugin>],
    wait: Option<Duration>,
) -> Result<LoadedDir, LoadError> {
    let entries = std::fs::read_dir(dir).map_err(|source| LoadError::Read { path: dir.to_path_buf(), source })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "wasm") && path.is_file())
        .collect();
    files.sort();

    let mut loaded = LoadedDir { plugins: Vec::new(), errors: Vec::new(), pending: Vec::new() };
    let mut meters: BTreeMap<String, String> = BTreeMap::new();
    let mut discoverers: BTreeMap<String, String> = BTreeMap::new();
    let mut units = Vec::new();
    for path in files {
        let bytes = match read_plugin(&path, agent.max_plugin_bytes()) {
            Ok(bytes) => Arc::new(bytes),
            Err(error) => {
                loaded.errors.push(error);
                continue;
            }
        };
        if plugin_name(&path) != DYNAMIC_PLUGIN {
            units.push((path, bytes, None));
            continue;
        }
        // The dynamic plugin runs one instance per definition.
        if agent.dynamic_pollsters.is_empty() {
            tracing::debug!(path = %path.display(), "no dynamic pollster definitions: the dynamic plugin is not loaded");
        }
        for definition in &agent.dynamic_pollsters {
            units.push((path.clone(), bytes.clone(), Some(definition)));
        }
    }
    if !agent.dynamic_pollsters.is_empty() && !units.iter().any(|(_, _, definition)| definition.is_some()) {
        tracing::warn!(definitions = agent.dynamic_pollsters.len(), dir = %dir.display(),
            "dynamic pollster definitions are read, but the plugin directory has no {DYNAMIC_PLUGIN}.wasm: they are not polled");
    }
    let unchanged = |unit: &Unit<'_>| {
        let (name, fingerprint) = (unit.name(), fingerprint(unit, agent));
        previous.iter().find(|p| p.info.name == name && p.fingerprint == fingerprint).cloned()
    };
    // Everything new that passes its outline's checks compiles at once, in parallel.
    let budget = CompileBudget { timeout: agent.load_timeout(), memory: agent.compile_memory_bytes() };
    let mut jobs: BTreeMap<PathBuf, (Arc<CompileJob>, PluginKind)> = BTreeMap::new();
    for (path, bytes, definition) in &units {
        let unit = Unit { path, bytes, definition: *definition };
        if jobs.contains_key(path) || unchanged(&unit).is_some() {
            continue;
        }
        let Ok((kind, _)) = checked_outline(&unit, agent) else { continue };
        if let Some(job) = engine.warmup.start(&engine.engine, &engine.cache, bytes.clone(), budget, path) {
            jobs.insert(path.clone(), (job, kind));
        }
    }
    // Only pollsters are left out while they compile: a sink's transformers and a
    // source's discoverers are waited for.
    let deadline = wait.map(|wait| Instant::now() + wait);
    for (path, bytes, definition) in units {
        let unit = Unit { path: &path, bytes: &bytes, definition };
        let waited = jobs
            .get(&path)
            .map(|(job, kind)| (job, job.wait_until(if *kind == PluginKind::Pollster { deadline } else { None })));
        let compiled_now = match waited {
            None => false,
            Some((job, None)) => {
                if !loaded.pending.iter().any(|pending| Arc::ptr_eq(pending, job)) {
                    tracing::warn!(plugin = %path.display(), seconds = job.elapsed().as_secs_f64(),
                        "still compiling: left out until it is ready (its meters miss the cycles until then), the others start now");
                    loaded.pending.push(job.clone());
                }
                continue;
            }
            Some((_, Some(Err(failure)))) => {
                loaded.errors.push(compile_refusal(&path, failure));
                continue;
            }
            Some((_, Some(Ok(())))) => true,
        };
        let loaded_file = match unchanged(&unit) {
            Some(unchanged) => Ok(unchanged),
            None => load_bytes(engine, &unit, agent, registry).map(|mut plugin| {
                if compiled_now {
                    plugin.info.cache = super::CacheOutcome::Compiled;
                }
                Arc::new(plugin)
            }),
        };
        let plugin = match loaded_file {
            Ok(plugin) => plugin,
            Err(error) => {
                loaded.errors.push(error);
                continue;
            }
        };
        let conflict = plugin
            .info
            .meters
            .iter()
            .find_map(|m| {
                meters
                    .get(&m.meter.name)
                    .map(|other| format!("meter `{}` is already provided by plugin `{other}`", m.meter.name))
            })
            .or_else(|| {
                let name = plugin.info.discoverer.as_ref()?;
                discoverers
                    .get(name)
                    .map(|other| format!("discoverer `{name}` is already provided by plugin `{other}`"))
            });
        if let Some(message) = conflict {
            loaded.errors.push(LoadError::Conflict { path, message });
            continue;
        }
        for meter in &plugin.info.meters {
            meters.insert(meter.meter.name.clone(), plugin.info.name.clone());
        }
        if let Some(name) = &plugin.info.discoverer {
            discoverers.insert(name.clone(), plugin.info.name.clone());
        }
        loaded.plugins.push(plugin);
    }
    Ok(loaded)
}

/// Loads one plugin file, named after its stem (the dynamic plugin with the first
/// definition of `agent`, if any).
pub fn load_file(
    engine: &PluginEngine,
    path: &Path,
    agent: &Agent,
    registry: &Arc<Registry>,
) -> Result<Plugin, LoadError> {
    let bytes = read_plugin(path, agent.max_plugin_bytes())?;
    let definition = (plugin_name(path) == DYNAMIC_PLUGIN).then(|| agent.dynamic_pollsters.first()).flatten();
    load_bytes(engine, &Unit { path, bytes: &bytes, definition }, agent, registry)
}

/// A plugin file's kind and imports, read from its outline without compiling it (what
/// `pollen plugins inspect` judges before loading).
pub fn examine(path: &Path, agent: &Agent) -> Result<(PluginKind, Vec<String>), LoadError> {
    let bytes = read_plugin(path, agent.max_plugin_bytes())?;
    let outline = outline(&bytes).map_err(|message| LoadError::Invalid { path: path.to_path_buf(), message })?;
    Ok((world_of(path, &outline.exports)?, outline.imports))
}

/// What one plugin is made of: its file's bytes, and for the dynamic plugin, the
/// definition this instance runs.
struct Unit<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    definition: Option<&'a DynamicPollster>,
}

impl Unit<'_> {
    /// The file's stem: whose `agent.plugins` settings apply.
    fn settings_name(&self) -> String {
        plugin_name(self.path)
    }

    /// The plugin's name: the stem, and for the dynamic plugin its meter
    /// (`dynamic:dynamic.image.size`).
    fn name(&self) -> String {
        match self.definition {
            Some(definition) => format!("{}:{}", self.settings_name(), definition.name),
            None => self.settings_name(),
        }
    }
}

/// Reads a plugin file: its header first (what is not a component is refused without
/// reading further), then at most `limit` bytes (what is larger is refused, whatever
/// its size claimed when it was opened).
fn read_plugin(path: &Path, limit: u64) -> Result<Vec<u8>, LoadError> {
    use std::io::Read;
    let unreadable = |source| LoadError::Read { path: path.to_path_buf(), source };
    let mut file = std::fs::File::open(path).map_err(unreadable)?;
    let size = file.metadata().map_err(unreadable)?.len();
    if size > limit {
        return Err(LoadError::TooLarge { path: path.to_path_buf(), size, limit });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.by_ref().take(8).read_to_end(&mut bytes).map_err(unreadable)?;
    check_header(path, &bytes)?;
    file.take(limit.saturating_add(1) - bytes.len() as u64).read_to_end(&mut bytes).map_err(unreadable)?;
    if bytes.len() as u64 > limit {
        return Err(LoadError::TooLarge { path: path.to_path_buf(), size: bytes.len() as u64, limit });
    }
    Ok(bytes)
}

/// A plugin's name: its file's stem.
fn plugin_name(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// What decides whether a loaded plugin is still the one a file and the settings
/// describe: the file's bytes and everything the pipeline says of the plugin.
fn fingerprint(unit: &Unit<'_>, agent: &Agent) -> u64 {
    use std::hash::{Hash, Hasher};
    let name = &unit.settings_name();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    unit.bytes.hash(&mut hasher);
    if let Some(definition) = unit.definition {
        definition.definition.to_string().hash(&mut hasher);
    }
    format!("{:?}", agent.plugin(name)).hash(&mut hasher);
    agent.memory_limit(name).hash(&mut hasher);
    agent.call_timeout(name).hash(&mut hasher);
    agent.call_wall_timeout(name).hash(&mut hasher);
    agent.log_lines_per_second(name).hash(&mut hasher);
    format!("{:?}", agent.http).hash(&mut hasher);
    // A plugin granted the catalog is made anew with new credentials (its session).
    if agent.plugin(name).grants().contains(&Grant::Openstack) {
        agent.openstack.hash(&mut hasher);
    }
    hasher.finish()
}

/// The file's outline, with the checks made on it before anything is compiled: its
/// world, its imports against its kind and grants, its largest function.
fn checked_outline(unit: &Unit<'_>, agent: &Agent) -> Result<(PluginKind, super::outline::Outline), LoadError> {
    let path = unit.path;
    let outline = outline(unit.bytes).map_err(|message| LoadError::Invalid { path: path.to_path_buf(), message })?;
    let kind = world_of(path, &outline.exports)?;
    let settings_name = unit.settings_name();
    check_imports(path, &settings_name, kind, &outline.imports, agent.plugin(&settings_name).grants())?;
    if outline.largest_function > agent.max_function_bytes() {
        return Err(LoadError::FunctionTooLarge {
            path: path.to_path_buf(),
            size: outline.largest_function,
            limit: agent.max_function_bytes(),
        });
    }
    Ok((kind, outline))
}

/// Why a file that could not be compiled is refused.
fn compile_refusal(path: &Path, failure: CompileFailure) -> LoadError {
    let path = path.to_path_buf();
    match failure {
        CompileFailure::TimedOut(timeout) => LoadError::CompileTimeout { path, timeout },
        CompileFailure::OverMemory(limit) => LoadError::CompileMemory { path, limit_mib: limit >> 20 },
        CompileFailure::Invalid(message) => LoadError::Invalid { path, message },
    }
}

/// Loads a plugin from the bytes of its file at `path`, as [`read_plugin`] read them
/// (header checked, size bounded).
fn load_bytes(
    engine: &PluginEngine,
    unit: &Unit<'_>,
    agent: &Agent,
    registry: &Arc<Registry>,
) -> Result<Plugin, LoadError> {
    let (path, bytes) = (unit.path, unit.bytes);
    let name = unit.name();
    let settings_name = unit.settings_name();
    let settings = agent.plugin(&settings_name);
    let fingerprint = fingerprint(unit, agent);

    // What the file says of itself decides before anything is compiled.
    let (kind, outline) = checked_outline(unit, agent)?;

    let budget = CompileBudget { timeout: agent.load_timeout(), memory: agent.compile_memory_bytes() };
    let (component, cache) = engine
        .cache
        .load(&engine.engine, bytes, budget, path)
        .map_err(|error| compile_refusal(path, CompileFailure::from(error)))?;

    let pre = engine
        .linker
        .instantiate_pre(&component)
        .map_err(|error| LoadError::Link { path: path.to_path_buf(), message: format!("{error:#}") })?;
    let mut params = settings.params_as_text();
    if !params.iter().any(|(key, _)| key == "host") {
        params.push(("host".into(), gethostname::gethostname().to_string_lossy().into_owned()));
    }
    if let Some(definition) = unit.definition {
        params.retain(|(key, _)| key != "definition");
        params.push(("definition".into(), definition.definition.to_string()));
    }
    let shared_name: Arc<str> = Arc::from(name.as_str());
    let link_error = |message| LoadError::Link { path: path.to_path_buf(), message };
    let openstack = match settings.grants().contains(&Grant::Openstack) {
        true => Some(engine.keystone(agent).map_err(link_error)?),
        false => None,
    };
    let http = HttpAccess::for_plugin(
        &shared_name,
        &settings_name,
        agent,
        || engine.http_client(&agent.http),
        openstack.clone(),
    )
    .map_err(link_error)?;
    let sub_meters = Arc::new(crate::caps::sub_meters::SubMeters::default());
    let context = PluginContext {
        name: shared_name.clone(),
        grants: settings.grants().into(),
        params: params.into(),
        namespace: registry.namespace_of_plugin(&name),
        registry: registry.clone(),
        memory_limit: agent.memory_limit(&settings_name),
        call_timeout: agent.call_timeout(&settings_name),
        call_wall_timeout: agent.call_wall_timeout(&settings_name),
        log: Arc::new(PluginLog::new(shared_name, agent.log_lines_per_second(&settings_name))),
        made_meters: Arc::default(),
        sub_meters: sub_meters.clone(),
        http,
        openstack,
    };
    let sandbox = Sandbox::new(engine, kind, pre, context)
        .map_err(|error| LoadError::Link { path: path.to_path_buf(), message: format!("{error:#}") })?;

    let describe_failed = |source| LoadError::Describe { path: path.to_path_buf(), source };
    let bad = |message: String| LoadError::BadDescription { path: path.to_path_buf(), message };
    let mut info = PluginInfo {
        name,
        path: path.to_path_buf(),
        kind,
        world: format!("pollen:plugin/{}@{CONTRACT_VERSION}", kind.world()),
        imports: outline.imports,
        meters: Vec::new(),
        discoverer: None,
        cache,
    };
    match kind {
        PluginKind::Pollster => {
            let described = sandbox
                .call(None, |instance, store| match instance {
                    WorldInstance::Pollster(p) => p.pollen_plugin_pollster().call_describe(store).map(Ok),
                    _ => unreachable!("sandbox built for a pollster"),
                })
                .map_err(describe_failed)?;
            info.meters = meter_specs(described, registry).map_err(bad)?;
            sub_meters.described(info.meters.iter().map(|spec| spec.meter.clone()).collect());
        }
        PluginKind::Discoverer => {
            let name = sandbox
                .call(None, |instance, store| match instance {
                    WorldInstance::Discoverer(d) => d.pollen_plugin_discoverer().call_name(store).map(Ok),
                    _ => unreachable!("sandbox built for a discoverer"),
                })
                .map_err(describe_failed)?;
            if name.trim().is_empty() {
                return Err(bad("the discoverer's name is empty".into()));
            }
            info.discoverer = Some(name);
        }
        PluginKind::Transformer => {}
    }
    tracing::debug!(plugin = %info.name, kind = %kind, cache = ?cache, "plugin loaded");
    Ok(Plugin { info, sandbox, with_param: Default::default(), fingerprint, sub_meters })
}

/// Refuses what is not a WebAssembly component, before wasmtime sees it.
fn check_header(path: &Path, bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[0..4] != b"\0asm" {
        return Err(LoadError::NotWasm { path: path.to_path_buf() });
    }
    // Bytes 4..8: a core module has version 1 and layer 0; a component has layer 1.
    if bytes[6..8] == [0, 0] {
        return Err(LoadError::CoreModule { path: path.to_path_buf() });
    }
    Ok(())
}

/// Splits `pollen:plugin/pollster@0.2.0` into (`pollen:plugin/pollster`, `0.2.0`).
fn split_version(name: &str) -> (&str, Option<&str>) {
    match name.split_once('@') {
        Some((interface, version)) => (interface, Some(version)),
        None => (name, None),
    }
}

/// Which of Pollen's worlds the exports implement.
fn world_of(path: &Path, exports: &[String]) -> Result<PluginKind, LoadError> {
    let mut kinds = BTreeSet::new();
    for export in exports {
        let (interface, version) = split_version(export);
        let Some(kind) = [PluginKind::Pollster, PluginKind::Discoverer, PluginKind::Transformer]
            .into_iter()
            .find(|k| k.export_interface() == interface)
        else {
            continue;
        };
        if version != Some(CONTRACT_VERSION) {
            return Err(LoadError::WrongVersion { path: path.to_path_buf(), found: export.clone() });
        }
        kinds.insert(kind);
    }
    match kinds.len() {
        1 => Ok(*kinds.first().expect("one kind")),
        0 => Err(LoadError::UnknownWorld {
            path: path.to_path_buf(),
            exports: if exports.is_empty() { "nothing".into() } else { format!("`{}`", exports.join("`, `")) },
        }),
        _ => Err(LoadError::SeveralWorlds {
            path: path.to_path_buf(),
            kinds: kinds.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        }),
    }
}

/// Refuses the first import the plugin may not use: one its kind never may, or one
/// the pipeline does not grant it (`imports::verdict`).
fn check_imports(
    path: &Path,
    name: &str,
    kind: PluginKind,
    imports: &[String],
    grants: &[Grant],
) -> Result<(), LoadError> {
    for import in imports {
        let path = path.to_path_buf();
        match super::imports::verdict(kind, import, grants) {
            Verdict::Allowed | Verdict::Granted(_) => {}
            Verdict::Ungranted(grant) => {
                return Err(LoadError::NotGranted {
                    path,
                    plugin: name.to_string(),
                    import: import.clone(),
                    grant: grant.name(),
                })
            }
            Verdict::Refused(why) => {
                let hint = if why.is_empty() { String::new() } else { format!(" ({why})") };
                return Err(LoadError::Forbidden { path, kind, import: import.clone(), hint });
            }
            Verdict::OtherVersion => return Err(LoadError::WrongVersion { path, found: import.clone() }),
        }
    }
    Ok(())
}

/// Checks a pollster's `describe` and interns its meters.
fn meter_specs(described: Vec<types::Meter>, registry: &Registry) -> Result<Vec<MeterSpec>, String> {
    if described.is_empty() {
        return Err("the pollster describes no meter".into());
    }
    let mut seen = BTreeSet::new();
    let mut specs = Vec::with_capacity(described.len());
    for meter in described {
        // Ceilometer has meters without a unit (`power.state`, `perf.*`); none without a name.
        if meter.name.trim().is_empty() {
            return Err("a meter has an empty name".into());
        }
        if !meter_fits(&meter.name, &meter.unit) {
            return Err(format!(
                "meter `{}` has a name over {MAX_METER_NAME} bytes or a unit over {MAX_UNIT}",
                plugin_text(&meter.name, 64)
            ));
        }
        if !seen.insert(meter.name.clone()) {
            return Err(format!("meter `{}` is described twice", meter.name));
        }
        let meter_value = Meter { name: meter.name, kind: crate::convert::meter_type(meter.type_), unit: meter.unit };
        let handle = registry.intern_meter(meter_value.clone());
        specs.push(MeterSpec { meter: meter_value, default_discoverer: meter.default_discoverer, handle });
    }
    Ok(specs)
}
