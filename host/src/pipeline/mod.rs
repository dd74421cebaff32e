//! The pipeline at run time: the loaded plugins and publishers
//! ([`Agent`]), one polling cycle ([`cycle`]), and the schedule that runs cycles
//! until shutdown ([`schedule`]).

pub mod chain;
pub mod cycle;
pub mod names;
pub mod schedule;

use crate::config::{ConfigErrors, Pipeline};
use crate::hypervisor::Hypervisor;
use crate::plugin::warmup::CompileJob;
use crate::plugin::{load_dir, EngineError, LoadError, Plugin, PluginEngine, PluginKind};
use crate::publish::prometheus::Exporter;
use crate::publish::{PublishError, PublisherHandle};
use crate::registry::Registry;
use std::collections::HashMap;
use std::sync::Arc;

/// Why the agent could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The engine could not start.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Plugins were refused; with the problems of sinks' transformers found besides.
    #[error("{}", refused(.0, .1))]
    Plugins(Vec<LoadError>, Vec<crate::config::ConfigError>),
    /// A sink's transformers could not be made (unknown plugin, bad parameters).
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    /// A publisher could not start.
    #[error(transparent)]
    Publisher(#[from] PublishError),
}

/// Every refused plugin file, then every other problem.
fn refused(plugins: &[LoadError], others: &[crate::config::ConfigError]) -> String {
    let count = plugins.len();
    let mut text = format!(
        "{count} plugin file{} refused:\n  {}",
        if count == 1 { " was" } else { "s were" },
        plugins.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  ")
    );
    if !others.is_empty() {
        text.push_str(&format!("\n{}", ConfigErrors(others.to_vec())));
    }
    text
}

/// The plugins of an agent, by role.
pub struct PluginSet {
    /// Every loaded plugin.
    pub all: Vec<Arc<Plugin>>,
    /// Discoverers by the name they answer to.
    pub discoverers: HashMap<String, Arc<Plugin>>,
}

impl PluginSet {
    /// Sorts loaded plugins by role.
    pub fn new(all: Vec<Arc<Plugin>>) -> Self {
        let discoverers = all.iter().filter_map(|p| p.info.discoverer.clone().map(|name| (name, p.clone()))).collect();
        Self { all, discoverers }
    }

    /// The pollsters.
    pub fn pollsters(&self) -> impl Iterator<Item = &Arc<Plugin>> {
        self.all.iter().filter(|p| p.kind() == PluginKind::Pollster)
    }
}

/// Everything a running agent needs, built from a pipeline: no task is started.
pub struct Agent {
    /// The configuration.
    pub pipeline: Pipeline,
    /// The engine (kept alive for the plugins).
    pub engine: Arc<PluginEngine>,
    /// Loaded plugins.
    pub plugins: Arc<PluginSet>,
    /// The hypervisor connection.
    pub hypervisor: Arc<Hypervisor>,
    /// Interned meters and resources.
    pub registry: Arc<Registry>,
    /// Each sink's transformer chain, by sink name.
    pub chains: HashMap<String, Arc<chain::Chain>>,
    /// What the Prometheus endpoint serves, if `agent.prometheus_listen` asks for one.
    pub exporter: Option<Arc<Exporter>>,
    /// Plugin files still compiling when this agent was made: left out of it, they
    /// join at the next reload (`pollen run` asks for one when they are done).
    pub pending: Vec<Arc<CompileJob>>,
}

impl Agent {
    /// Loads the plugin directory and makes each sink's transformers. Every refused
    /// plugin is an error: the agent does not start with a plugin directory it cannot
    /// fully account for.
    pub fn build(pipeline: Pipeline) -> Result<Self, BuildError> {
        let engine = Arc::new(PluginEngine::new(pipeline.agent.cache_dir())?);
        Self::assemble(pipeline, engine, Arc::new(Registry::new()), None, None)
    }

    /// As [`Agent::build`], for a running agent: new plugin files compile in
    /// parallel, and one still compiling after `agent.compile_wait` is left out of
    /// it ([`Agent::pending`]) instead of holding up the others.
    pub fn start(pipeline: Pipeline) -> Result<Self, BuildError> {
        let engine = Arc::new(PluginEngine::new(pipeline.agent.cache_dir())?);
        let wait = pipeline.agent.compile_wait();
        Self::assemble(pipeline, engine, Arc::new(Registry::new()), None, Some(wait))
    }

    /// The agent a new configuration describes (a reload), keeping what did not
    /// change: the registry, plugins whose file and settings are the same (with
    /// their state), sinks whose transformers are the same (with theirs), and the
    /// hypervisor connection if its URI and timeout are the same.
    pub fn rebuild(&self, pipeline: Pipeline) -> Result<Self, BuildError> {
        if pipeline.agent.cache_dir() != self.pipeline.agent.cache_dir() {
            tracing::warn!("agent.cache_dir changed: the new folder is used after a restart");
        }
        if pipeline.agent.prometheus_listen != self.pipeline.agent.prometheus_listen {
            tracing::warn!("agent.prometheus_listen changed: the new addresses are used after a restart");
        }
        let wait = pipeline.agent.compile_wait();
        Self::assemble(pipeline, self.engine.clone(), self.registry.clone(), Some(self), Some(wait))
    }

    fn assemble(
        pipeline: Pipeline,
        engine: Arc<PluginEngine>,
        registry: Arc<Registry>,
        previous: Option<&Agent>,
        wait: Option<std::time::Duration>,
    ) -> Result<Self, BuildError> {
        let kept_plugins = previous.map_or(&[][..], |p| p.plugins.all.as_slice());
        let loaded = load_dir(&engine, &pipeline.agent.plugin_dir, &pipeline.agent, &registry, kept_plugins, wait)
            .map_err(|e| BuildError::Plugins(vec![e], Vec::new()))?;
        let pending = loaded.pending;
        let refused = loaded.errors;
        let plugins = Arc::new(PluginSet::new(loaded.plugins));
        let mut chains = HashMap::new();
        let mut problems = Vec::new();
        for (index, sink) in pipeline.sinks.iter().enumerate() {
            let kept = previous.and_then(|p| p.chains.get(&sink.name)).filter(|chain| chain.is_made_of(sink, &plugins));
            if let Some(chain) = kept {
                chains.insert(sink.name.clone(), chain.clone());
                continue;
            }
            match chain::Chain::build(sink, index, &plugins, &pipeline.origin) {
                Ok(built) => {
                    chains.insert(sink.name.clone(), Arc::new(built));
                }
                Err(errors) => problems.extend(errors),
            }
        }
        if !refused.is_empty() {
            // A transformer whose file was refused is reported once, with the file.
            let refused_names: Vec<String> = refused
                .iter()
                .filter_map(|e| e.path().file_stem().map(|s| format!("`{}`", s.to_string_lossy())))
                .collect();
            problems.retain(|p| !refused_names.iter().any(|name| p.message.contains(name.as_str())));
            return Err(BuildError::Plugins(refused, problems));
        }
        let unanswered = names::unanswered(&pipeline, &plugins);
        if pending.is_empty() {
            problems.extend(unanswered);
        } else {
            // A plugin still compiling may answer them: checked again when it joins.
            for problem in unanswered {
                tracing::warn!("{problem} (checked again once the plugins still compiling are loaded)");
            }
        }
        if !problems.is_empty() {
            return Err(BuildError::Config(ConfigErrors(problems)));
        }
        let same_hypervisor = |p: &&Agent| {
            p.pipeline.agent.libvirt_uri == pipeline.agent.libvirt_uri
                && p.pipeline.agent.libvirt_timeout == pipeline.agent.libvirt_timeout
        };
        let hypervisor = match previous.filter(same_hypervisor) {
            Some(previous) => previous.hypervisor.clone(),
            None => Arc::new(Hypervisor::with_timeout(
                pipeline.agent.libvirt_uri.clone(),
                std::time::Duration::from_secs_f64(pipeline.agent.libvirt_timeout),
            )),
        };
        let exporter = match previous {
            Some(previous) => previous.exporter.clone(),
            None => (!pipeline.agent.prometheus_listen.is_empty()).then(|| Arc::new(Exporter::new(registry.clone()))),
        };
        Ok(Self { plugins, chains, engine, hypervisor, registry, pipeline, exporter, pending })
    }

    /// Starts every sink's publishers.
    pub async fn start_publishers(&self) -> Result<HashMap<String, Vec<PublisherHandle>>, PublishError> {
        let context = self.pipeline.agent.publish_context();
        let mut sinks = HashMap::new();
        for sink in &self.pipeline.sinks {
            let mut handles = Vec::with_capacity(sink.publishers.len());
            for url in &sink.publishers {
                handles.push(PublisherHandle::start_for_sink(&sink.name, url, &context).await?);
            }
            sinks.insert(sink.name.clone(), handles);
        }
        self.warn_of_orphaned_queues(&context.state_dir);
        Ok(sinks)
    }

    /// Warns of disk queues that hold samples no configured publisher will send.
    fn warn_of_orphaned_queues(&self, state_dir: &std::path::Path) {
        use crate::publish::{disk, PublisherConfig};
        let in_use: Vec<std::path::PathBuf> = self
            .pipeline
            .sinks
            .iter()
            .flat_map(|sink| sink.publishers.iter().map(move |url| (sink, url)))
            .filter(|(_, url)| matches!(PublisherConfig::parse(url), Ok(PublisherConfig::Disk(..))))
            .map(|(sink, url)| disk::DiskOptions::dir(state_dir, &sink.name, url))
            .collect();
        for (queue, bytes) in disk::orphans(state_dir, &in_use) {
            tracing::warn!(queue = %queue.display(), bytes,
                "a disk queue holds samples of a publisher no sink has any more (its sink or URL changed); they are \
                 not sent: restore that publisher to send them, or remove the folder");
        }
    }
}
