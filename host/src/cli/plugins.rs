//! `pollen plugins list|inspect`: what each plugin file is, provides and imports.

use crate::config::{self, Agent, Grant};
use crate::plugin::{load_dir, load_file, PluginEngine, PluginInfo};
use crate::registry::Registry;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// `pollen plugins ...`
#[derive(Subcommand)]
pub enum PluginsCommand {
    /// List the plugin directory: each plugin's kind and what it provides, or why it is refused.
    List(ListArgs),
    /// Show one plugin file's world, meters, imports and contract version.
    Inspect(InspectArgs),
    /// Run one pollster alone, once, with the grants and parameters given here (no
    /// pipeline file), against the discoverers its meters name (the built-in ones of
    /// `--plugin-dir`): its samples as JSON lines on stdout, every problem on stderr;
    /// exits 1 on a failure, a refused sample or no sample at all.
    Test(TestArgs),
}

/// Arguments of `pollen plugins test`.
#[derive(Args)]
pub struct TestArgs {
    /// The pollster's component file.
    file: PathBuf,
    /// Where the discoverers its meters name are (the built-ins' folder).
    #[arg(long, default_value = "plugins/dist")]
    plugin_dir: PathBuf,
    /// The hypervisor URI (default: libvirt's test driver, `test:///default`).
    #[arg(long)]
    libvirt_uri: Option<String>,
    /// A grant for the pollster: `hypervisor`, `http` or `openstack` (repeat for several).
    #[arg(long = "grant")]
    grants: Vec<String>,
    /// A parameter the pollster reads, `KEY=VALUE` (repeat for several).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
}

/// Where the settings come from.
#[derive(Args)]
pub struct SettingsArgs {
    /// The pipeline file (for the plugin directory, grants and limits); without it,
    /// `pipeline.yaml` if there is one, else the defaults (nothing granted), said so.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Arguments of `pollen plugins list`.
#[derive(Args)]
pub struct ListArgs {
    /// The plugin directory, overriding the pipeline's `agent.plugin_dir`.
    #[arg(long)]
    plugin_dir: Option<PathBuf>,
    #[command(flatten)]
    settings: SettingsArgs,
}

/// Arguments of `pollen plugins inspect`.
#[derive(Args)]
pub struct InspectArgs {
    /// The component file.
    file: PathBuf,
    #[command(flatten)]
    settings: SettingsArgs,
}

/// Runs a `plugins` subcommand.
pub fn plugins(command: &PluginsCommand) -> anyhow::Result<ExitCode> {
    match command {
        PluginsCommand::List(args) => list(args),
        PluginsCommand::Inspect(args) => inspect(args),
        PluginsCommand::Test(args) => test(args),
    }
}

/// The agent's settings: the named pipeline file's (which must exist), else
/// `pipeline.yaml`'s, else the defaults, with a word on stderr (a plugin shown as
/// ungranted then says nothing of the operator's grants).
fn agent_settings(args: &SettingsArgs) -> anyhow::Result<Agent> {
    let default = Path::new("pipeline.yaml");
    match &args.config {
        Some(path) => Ok(config::load(path)?.agent),
        None if default.exists() => Ok(config::load(default)?.agent),
        None => {
            eprintln!(
                "pollen: no pipeline file (no pipeline.yaml here, no --config): the default settings are used, \
                 so no plugin is granted anything; name yours with --config"
            );
            Ok(Agent::default())
        }
    }
}

fn list(args: &ListArgs) -> anyhow::Result<ExitCode> {
    let mut agent = agent_settings(&args.settings)?;
    if let Some(dir) = &args.plugin_dir {
        agent.plugin_dir = dir.clone();
    }
    let engine = PluginEngine::new(agent.cache_dir())?;
    let loaded = load_dir(&engine, &agent.plugin_dir, &agent, &Arc::new(Registry::new()), &[])?;
    if args.settings.json {
        let refused: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
        let plugins: Vec<&PluginInfo> = loaded.plugins.iter().map(|p| &p.info).collect();
        println!("{}", serde_json::json!({ "plugins": plugins, "refused": refused }));
    } else {
        println!("plugins in {}:", agent.plugin_dir.display());
        for plugin in &loaded.plugins {
            let info = &plugin.info;
            let provides = match (&info.discoverer, info.meters.is_empty()) {
                (Some(name), _) => format!("discoverer {name}"),
                (None, false) => info.meters.iter().map(|m| m.meter.name.as_str()).collect::<Vec<_>>().join(", "),
                (None, true) => String::new(),
            };
            println!("  {:<20} {:<12} {provides}", info.name, info.kind.to_string());
        }
        for error in &loaded.errors {
            println!("  refused: {error}");
        }
    }
    Ok(if loaded.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(super::EXIT_CONFIG) })
}

fn inspect(args: &InspectArgs) -> anyhow::Result<ExitCode> {
    let mut agent = agent_settings(&args.settings)?;
    let name = plugin_name(&args.file);
    // Inspecting is read-only: the plugin is loaded with every grant, and the output
    // says which of them the pipeline actually gives it.
    let settings = agent.plugin(&name);
    let granted_by_pipeline = settings.grants.clone();
    agent.plugins.entry(name).or_default().grants = vec![Grant::Hypervisor, Grant::Http, Grant::Openstack];
    let engine = PluginEngine::new(agent.cache_dir())?;
    let plugin = load_file(&engine, &args.file, &agent, &Arc::new(Registry::new()))?;
    let info = &plugin.info;
    let grant_of = |import: &str| {
        let grant = match import {
            i if i.starts_with("pollen:plugin/hypervisor@") => Grant::Hypervisor,
            i if i.starts_with("pollen:plugin/openstack@") => Grant::Openstack,
            i if i.starts_with("wasi:http/") => Grant::Http,
            _ => return None,
        };
        // The catalog's endpoints are reachable with `openstack` alone.
        let http_through_openstack = grant == Grant::Http && granted_by_pipeline.contains(&Grant::Openstack);
        Some((grant, granted_by_pipeline.contains(&grant) || http_through_openstack))
    };
    if args.settings.json {
        let imports: Vec<_> = info
            .imports
            .iter()
            .map(|i| {
                let grant = grant_of(i);
                serde_json::json!({ "name": i, "grant": grant.map(|(g, _)| g.name()), "granted_by_pipeline": grant.map(|(_, on)| on) })
            })
            .collect();
        let mut json = serde_json::to_value(info)?;
        json["imports"] = serde_json::Value::Array(imports);
        json["allowed_hosts"] = serde_json::json!(settings.allowed_hosts);
        json["contract"] = serde_json::Value::from(format!("pollen:plugin@{}", crate::plugin::CONTRACT_VERSION));
        println!("{json}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("plugin:   {}", info.name);
    println!("file:     {}", info.path.display());
    println!("kind:     {}", info.kind);
    println!("world:    {}", info.world);
    println!("contract: pollen:plugin@{}", crate::plugin::CONTRACT_VERSION);
    if let Some(name) = &info.discoverer {
        println!("discoverer name: {name}");
    }
    if !info.meters.is_empty() {
        println!("meters:");
        for spec in &info.meters {
            let discoverer =
                spec.default_discoverer.as_deref().map(|d| format!("  (default discoverer: {d})")).unwrap_or_default();
            println!("  {:<24} {:<11} {:<8}{discoverer}", spec.meter.name, spec.meter.kind.as_str(), spec.meter.unit);
        }
    }
    println!("imports:");
    for import in &info.imports {
        match grant_of(import) {
            Some((_, true)) => println!("  {import}  (granted by the pipeline)"),
            Some((grant, false)) => println!(
                "  {import}  (NOT granted by the pipeline: add `grants: [{}]` under agent.plugins.{})",
                grant.name(),
                info.name
            ),
            None => println!("  {import}"),
        }
    }
    if info.imports.iter().any(|i| i.starts_with("wasi:http/")) {
        match settings.allowed_hosts.is_empty() {
            true => println!(
                "allowed hosts: none (add `allowed_hosts: [\"https://host:port\"]` under agent.plugins.{})",
                info.name
            ),
            false => println!("allowed hosts: {}", settings.allowed_hosts.join(", ")),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn plugin_name(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// `pollen plugins test`: the pollster and the discoverers it needs in a folder of
/// their own, a pipeline made from the arguments, one cycle.
fn test(args: &TestArgs) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    let name = plugin_name(&args.file);
    let mut probe = Agent { plugin_dir: args.plugin_dir.clone(), ..Agent::default() };
    probe.plugins.entry(name.clone()).or_default().grants = vec![Grant::Hypervisor, Grant::Http, Grant::Openstack];
    let engine = PluginEngine::new(probe.cache_dir())?;
    let plugin = load_file(&engine, &args.file, &probe, &Arc::new(Registry::new()))?;
    let info = &plugin.info;
    if info.meters.is_empty() {
        anyhow::bail!(
            "{} is a {}: `plugins test` runs pollsters; test a discoverer or transformer with a pollster, in a pipeline, \
             with `pollen poll --once`",
            args.file.display(),
            info.kind
        );
    }
    let folder = tempfile_dir()?;
    let outcome = (|| -> anyhow::Result<ExitCode> {
        let plugins = folder.join("plugins");
        std::fs::create_dir_all(&plugins)?;
        let absolute =
            |path: &Path| std::fs::canonicalize(path).with_context(|| format!("cannot read {}", path.display()));
        std::os::unix::fs::symlink(absolute(&args.file)?, plugins.join(format!("{name}.wasm")))?;
        let mut text = format!(
            "agent:\n  plugin_dir: {}\n  cache_dir: {}\n  libvirt_uri: {}\n  plugins:\n    {name}:\n      grants: {}\n      params: {}\n",
            json_text(&plugins.display().to_string()),
            json_text(&probe.cache_dir().display().to_string()),
            json_text(args.libvirt_uri.as_deref().unwrap_or(crate::config::DEFAULT_LIBVIRT_URI)),
            serde_json::to_string(&args.grants)?,
            serde_json::to_string(&params(&args.params)?)?,
        );
        let discoverers: std::collections::BTreeSet<&str> = info
            .meters
            .iter()
            .filter_map(|m| m.default_discoverer.as_deref())
            .map(|d| d.split_once(':').map_or(d, |(name, _)| name))
            .collect();
        for discoverer in discoverers {
            let file = args.plugin_dir.join(format!("{discoverer}.wasm"));
            if !file.exists() {
                anyhow::bail!(
                    "its meters are discovered by `{discoverer}`, and {} has no {discoverer}.wasm: name the folder of the \
                     built-in plugins with --plugin-dir",
                    args.plugin_dir.display()
                );
            }
            std::os::unix::fs::symlink(absolute(&file)?, plugins.join(format!("{discoverer}.wasm")))?;
            let grant = if crate::config::ceilometer::CENTRAL_DISCOVERERS.contains(&discoverer) {
                "openstack"
            } else {
                "hypervisor"
            };
            text.push_str(&format!("    {discoverer}:\n      grants: [{grant}]\n"));
        }
        let meters: Vec<&str> = info.meters.iter().map(|m| m.meter.name.as_str()).collect();
        text.push_str(&format!(
            "sources:\n  - name: test\n    interval: 60\n    meters: {}\n    sinks: [out]\nsinks:\n  - name: out\n    publishers: ['file:///dev/null']\n",
            serde_json::to_string(&meters)?
        ));
        let pipeline_file = folder.join("pipeline.yaml");
        std::fs::write(&pipeline_file, &text)?;
        let pipeline = config::load(&pipeline_file)?;
        super::poll::once(pipeline, super::poll::Demands { every_meter: true, clean_samples: true })
    })();
    let _ = std::fs::remove_dir_all(&folder);
    outcome
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

/// A folder of its own under the system's temporary folder.
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("pollen-plugin-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
