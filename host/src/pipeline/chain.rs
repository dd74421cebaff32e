//! A sink's transformer chain: one instance of each of its transformers, made with the
//! sink's parameters, through which every batch sent to the sink passes before it is
//! published (Ceilometer's sink `transformers`).
//!
//! After each batch, every transformer is flushed in order and what it emits passes
//! through the transformers after it, as in Ceilometer. What a transformer returns is
//! checked: a sample with an unknown meter or resource handle, or a volume that is
//! not a finite number, is refused and counted. A transformer that fails costs the
//! batch for this sink (logged and counted), never the agent or the other sinks.

use super::PluginSet;
use crate::config::{ConfigError, Sink, TransformerConfig};
use crate::plugin::{Plugin, PluginError, PluginKind};
use crate::registry::Registry;
use crate::sample::Sample;
use std::path::Path;
use std::sync::Mutex;

/// The transformers of one sink.
pub struct Chain {
    sink: String,
    /// What the chain was made from: the sink's transformers and the fingerprints of
    /// their plugins (a reload keeps a chain, and its state, while both are the same).
    made_of: (Vec<TransformerConfig>, Vec<u64>),
    steps: Vec<Plugin>,
    /// Batches pass through the whole chain one at a time, in order.
    running: Mutex<()>,
}

/// What one pass through a chain gave.
#[derive(Default)]
pub struct ChainOutput {
    /// The samples to publish.
    pub samples: Vec<Sample>,
    /// Transformer calls that failed (their batch is lost for this sink).
    pub failures: Vec<PluginError>,
    /// Samples a transformer returned malformed, refused.
    pub malformed: usize,
}

impl Chain {
    /// Makes the instances of a sink's transformers and lets each check its parameters.
    /// `index` is the sink's place in the file, for the errors.
    pub fn build(sink: &Sink, index: usize, plugins: &PluginSet, file: &Path) -> Result<Chain, Vec<ConfigError>> {
        let mut steps = Vec::with_capacity(sink.transformers.len());
        let mut problems = Vec::new();
        for (position, transformer) in sink.transformers.iter().enumerate() {
            let place = format!("sinks[{index}].transformers[{position}]");
            let Some(plugin) = plugins.all.iter().find(|p| p.name() == transformer.name) else {
                let known: Vec<&str> =
                    plugins.all.iter().filter(|p| p.kind() == PluginKind::Transformer).map(|p| p.name()).collect();
                problems.push(ConfigError::at(
                    file,
                    place,
                    format!(
                        "no transformer plugin `{}` in the plugin directory{}; the transformers are: {}",
                        transformer.name,
                        crate::suggest::did_you_mean(&transformer.name, known.iter().copied()),
                        if known.is_empty() { "none".to_string() } else { known.join(", ") }
                    ),
                ));
                continue;
            };
            if plugin.kind() != PluginKind::Transformer {
                problems.push(ConfigError::at(
                    file,
                    place,
                    format!("plugin `{}` is a {}, not a transformer", transformer.name, plugin.kind()),
                ));
                continue;
            }
            let params = match transformer.flat_parameters() {
                Ok(params) => params,
                Err(message) => {
                    problems.push(ConfigError::at(file, format!("{place}.parameters"), message));
                    continue;
                }
            };
            let instance = plugin.with_params(params);
            if let Err(error) = instance.start() {
                problems.push(ConfigError::at(file, format!("{place} ({})", transformer.name), error.to_string()));
                continue;
            }
            steps.push(instance);
        }
        if problems.is_empty() {
            let fingerprints = steps.iter().map(|step| step.fingerprint).collect();
            Ok(Chain {
                sink: sink.name.clone(),
                made_of: (sink.transformers.clone(), fingerprints),
                steps,
                running: Mutex::new(()),
            })
        } else {
            Err(problems)
        }
    }

    /// Whether this chain is what `sink` asks for with these plugins: the same
    /// transformers, parameters and plugin files.
    pub fn is_made_of(&self, sink: &Sink, plugins: &PluginSet) -> bool {
        let fingerprints: Option<Vec<u64>> = sink
            .transformers
            .iter()
            .map(|t| plugins.all.iter().find(|p| p.name() == t.name).map(|p| p.fingerprint))
            .collect();
        self.made_of.0 == sink.transformers && fingerprints.as_ref() == Some(&self.made_of.1)
    }

    /// Whether the chain has no transformer (samples pass as they are).
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Passes a batch through every transformer, then flushes each in order.
    pub fn run(&self, batch: Vec<Sample>, registry: &Registry) -> ChainOutput {
        self.pass(Some(batch), false, registry)
    }

    /// Flushes everything the transformers hold (at shutdown).
    pub fn finish(&self, registry: &Registry) -> ChainOutput {
        self.pass(None, true, registry)
    }

    fn pass(&self, batch: Option<Vec<Sample>>, shutdown: bool, registry: &Registry) -> ChainOutput {
        let mut output = ChainOutput::default();
        if self.steps.is_empty() {
            output.samples = batch.unwrap_or_default();
            return output;
        }
        let _running = self.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(batch) = batch {
            if let Some(samples) = self.through(0, batch, registry, &mut output) {
                output.samples.extend(samples);
            }
        }
        for (position, step) in self.steps.iter().enumerate() {
            let flushed = match step.flush(shutdown) {
                Ok(flushed) => self.checked(step, flushed, registry, &mut output),
                Err(error) => {
                    self.failed(step, error, &mut output);
                    continue;
                }
            };
            if flushed.is_empty() {
                continue;
            }
            if let Some(samples) = self.through(position + 1, flushed, registry, &mut output) {
                output.samples.extend(samples);
            }
        }
        output
    }

    /// Passes `batch` through the steps from `first` on; `None` if one failed.
    fn through(
        &self,
        first: usize,
        mut batch: Vec<Sample>,
        registry: &Registry,
        output: &mut ChainOutput,
    ) -> Option<Vec<Sample>> {
        for step in &self.steps[first..] {
            if batch.is_empty() {
                break;
            }
            match step.transform(&batch) {
                Ok(out) => batch = self.checked(step, out, registry, output),
                Err(error) => {
                    self.failed(step, error, output);
                    return None;
                }
            }
        }
        Some(batch)
    }

    /// Keeps the well-formed samples a transformer returned.
    fn checked(
        &self,
        step: &Plugin,
        mut samples: Vec<Sample>,
        registry: &Registry,
        output: &mut ChainOutput,
    ) -> Vec<Sample> {
        let before = samples.len();
        samples.retain(|s| s.volume.is_finite());
        registry.retain_known(&mut samples);
        let refused = before - samples.len();
        if refused > 0 {
            output.malformed += refused;
            tracing::warn!(sink = %self.sink, plugin = %step.name(), refused,
                "transformer returned samples with an unknown meter or resource, or a volume that is not a finite number; refused");
        }
        samples
    }

    fn failed(&self, step: &Plugin, error: PluginError, output: &mut ChainOutput) {
        tracing::error!(sink = %self.sink, plugin = %step.name(), %error,
            "transformer failed; this batch is lost for this sink");
        output.failures.push(error);
    }
}
