//! `pollen plugin test FILE.wasm`: one plugin, alone, in a pipeline made from the
//! arguments — a pollster with the discoverers its meters name, a discoverer under
//! built-in pollsters, a transformer over their samples — run for a cycle or a few.

use super::plugins::plugin_name;
use crate::config::{self, Agent, Grant};
use crate::plugin::{load_file, PluginEngine, PluginKind};
use crate::registry::Registry;
use anyhow::Context;
use clap::Args;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// Arguments of `pollen plugins test`.
#[derive(Args)]
pub struct TestArgs {
    /// The plugin's component file.
    file: PathBuf,
    /// The built-in plugins' folder: the discoverers a pollster's meters name, the
    /// pollsters that feed a discoverer or a transformer. Default: `plugins/dist`
    /// here, else that of the checkout this `pollen` was built from.
    #[arg(long)]
    plugin_dir: Option<PathBuf>,
    /// The hypervisor URI (default: libvirt's test driver, `test:///default`).
    #[arg(long)]
    libvirt_uri: Option<String>,
    /// A grant for the plugin: `hypervisor`, `http` or `openstack` (repeat for several).
    #[arg(long = "grant")]
    grants: Vec<String>,
    /// A parameter the plugin reads, `KEY=VALUE` (repeat for several): a transformer's
    /// are its sink's `parameters`.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// For a discoverer or a transformer: the built-in meters polled (on the
    /// discoverer's resources; into the transformer). Default: `cpu`.
    #[arg(long = "meter")]
    meters: Vec<String>,
    /// Cycles to run (a rate needs two).
    #[arg(long, default_value_t = 1)]
    cycles: u32,
}

/// Runs `pollen plugins test`.
pub fn test(args: &TestArgs) -> anyhow::Result<ExitCode> {
    let name = plugin_name(&args.file);
    let builtins = builtins_folder(args.plugin_dir.as_deref());
    let mut probe = Agent { plugin_dir: builtins.clone(), ..Agent::default() };
    probe.plugins.entry(name.clone()).or_default().grants =
        Some(vec![Grant::Hypervisor, Grant::Http, Grant::Openstack]);
    let engine = PluginEngine::new(probe.cache_dir())?;
    let plugin = load_file(&engine, &args.file, &probe, &Arc::new(Registry::new()))?;
    let info = &plugin.info;
    if info.kind == PluginKind::Pollster && !args.meters.is_empty() {
        anyhow::bail!("--meter is for discoverers and transformers: a pollster is tested on its own meters");
    }
    let folder = TempFolder::new()?;
    let plugins = folder.0.join("plugins");
    std::fs::create_dir_all(&plugins)?;
    link(&args.file, &plugins.join(format!("{name}.wasm")))?;
    let params = params(&args.params)?;
    let plugin_params = if info.kind == PluginKind::Transformer { Default::default() } else { params.clone() };
    let mut text = format!(
        "agent:\n  plugin_dir: {}\n  cache_dir: {}\n  libvirt_uri: {}\n  plugins:\n    {name}:\n      grants: {}\n      params: {}\n",
        json_text(&plugins.display().to_string()),
        json_text(&probe.cache_dir().display().to_string()),
        json_text(args.libvirt_uri.as_deref().unwrap_or(crate::config::DEFAULT_LIBVIRT_URI)),
        serde_json::to_string(&args.grants)?,
        serde_json::to_string(&plugin_params)?,
    );
    let fed = if args.meters.is_empty() { vec!["cpu".to_string()] } else { args.meters.clone() };
    let (meters, discovery, transformers) = match info.kind {
        PluginKind::Pollster => {
            let discoverers: BTreeSet<&str> = info
                .meters
                .iter()
                .filter_map(|m| m.default_discoverer.as_deref())
                .map(|d| d.split_once(':').map_or(d, |(name, _)| name))
                .collect();
            for discoverer in discoverers {
                let file = builtins.join(format!("{discoverer}.wasm"));
                if !file.exists() {
                    anyhow::bail!(
                        "its meters are discovered by `{discoverer}`, and {} has no {discoverer}.wasm: name the \
                         folder of the built-in plugins with --plugin-dir",
                        builtins.display()
                    );
                }
                link(&file, &plugins.join(format!("{discoverer}.wasm")))?;
            }
            (info.meters.iter().map(|m| m.meter.name.clone()).collect(), None, None)
        }
        // The built-ins (granted by default) poll the meters asked for.
        PluginKind::Discoverer => {
            link_builtins(&builtins, &plugins, &name)?;
            (fed, Some(info.discoverer.clone().unwrap_or_default()), None)
        }
        PluginKind::Transformer => {
            link_builtins(&builtins, &plugins, &name)?;
            (fed, None, Some(serde_json::json!([{ "name": name, "parameters": params }])))
        }
    };
    text.push_str(&format!(
        "sources:\n  - name: test\n    interval: 60\n    meters: {}\n{}    sinks: [out]\nsinks:\n  - name: out\n{}    publishers: ['file:///dev/null']\n",
        serde_json::to_string(&meters)?,
        discovery.map(|d| format!("    discovery: [{}]\n", json_text(&d))).unwrap_or_default(),
        transformers.map(|t| format!("    transformers: {t}\n")).unwrap_or_default(),
    ));
    let pipeline_file = folder.0.join("pipeline.yaml");
    std::fs::write(&pipeline_file, &text)?;
    let pipeline = config::load(&pipeline_file)?;
    super::poll::once(
        pipeline,
        super::poll::Demands {
            every_meter: true,
            clean_samples: true,
            through_sinks: info.kind == PluginKind::Transformer,
            cycles: args.cycles,
        },
    )
}

/// The built-in plugins' folder: the one named, else `plugins/dist` here, else the
/// build checkout's (where `make plugins` put them).
fn builtins_folder(named: Option<&Path>) -> PathBuf {
    if let Some(dir) = named {
        return dir.to_path_buf();
    }
    let here = PathBuf::from("plugins/dist");
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist");
    if here.is_dir() || !checkout.is_dir() {
        here
    } else {
        checkout
    }
}

/// Links every plugin of `builtins` but the one named `name` into `plugins`.
fn link_builtins(builtins: &Path, plugins: &Path, name: &str) -> anyhow::Result<()> {
    let entries = std::fs::read_dir(builtins).with_context(|| {
        format!("cannot read the built-in plugins' folder {}: name it with --plugin-dir", builtins.display())
    })?;
    for path in entries.filter_map(|entry| entry.ok().map(|e| e.path())) {
        let stem = plugin_name(&path);
        if path.extension().is_some_and(|ext| ext == "wasm") && stem != name {
            link(&path, &plugins.join(format!("{stem}.wasm")))?;
        }
    }
    Ok(())
}

fn link(file: &Path, to: &Path) -> anyhow::Result<()> {
    let absolute = std::fs::canonicalize(file).with_context(|| format!("cannot read {}", file.display()))?;
    std::os::unix::fs::symlink(absolute, to).with_context(|| format!("cannot link {}", to.display()))
}

/// `KEY=VALUE` arguments as a map.
fn params(pairs: &[String]) -> anyhow::Result<std::collections::BTreeMap<&str, &str>> {
    pairs
        .iter()
        .map(|pair| pair.split_once('=').ok_or_else(|| anyhow::anyhow!("--param {pair}: write KEY=VALUE")))
        .collect()
}

/// A YAML scalar for `text` (JSON's quoting, which YAML reads).
fn json_text(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// A folder of its own under the system's temporary folder, removed when dropped.
struct TempFolder(PathBuf);

impl TempFolder {
    fn new() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("pollen-plugin-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot make {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for TempFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
