//! `pollen plugins list|inspect`: what each plugin file is, provides and imports
//! (`test` and `new` have modules of their own).

use crate::config::{self, Agent, Grant};
use crate::plugin::imports::{self, Verdict};
use crate::plugin::{examine, load_dir, load_file, PluginEngine, PluginInfo};
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
    /// Run one plugin alone, once, with the grants and parameters given here (no
    /// pipeline file): a pollster against the discoverers its meters name, a discoverer
    /// under a built-in pollster (`--meter`), a transformer over a built-in pollster's
    /// samples; the samples as JSON lines on stdout, every problem on stderr; exits 1
    /// on a failure, a refused sample or no sample at all.
    Test(super::plugin_test::TestArgs),
    /// Write a new plugin project (Rust or Python) that builds on the first try, with
    /// a minimal plugin of its kind and a README giving the author's loop.
    New(super::plugin_new::NewArgs),
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
        PluginsCommand::Test(args) => super::plugin_test::test(args),
        PluginsCommand::New(args) => super::plugin_new::new(args),
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
    let loaded = load_dir(&engine, &agent.plugin_dir, &agent, &Arc::new(Registry::new()), &[], None)?;
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
    let settings = agent.plugin(&name);
    let written = agent.plugins.get(&name).is_some_and(|p| p.grants.is_some());
    // Judged from the outline first: a plugin refused for its imports still shows
    // every import and why.
    let (kind, imports) = examine(&args.file, &agent)?;
    let verdicts: Vec<(String, Verdict)> =
        imports.iter().map(|import| (import.clone(), imports::verdict(kind, import, settings.grants()))).collect();
    let loads = verdicts.iter().all(|(_, verdict)| verdict.loads());
    // Its meters come from loading it, read-only, with every grant it could be given.
    let plugin =
        match verdicts.iter().all(|(_, verdict)| !matches!(verdict, Verdict::Refused(_) | Verdict::OtherVersion)) {
            true => {
                agent.plugins.entry(name.clone()).or_default().grants =
                    Some(vec![Grant::Hypervisor, Grant::Http, Grant::Openstack]);
                let engine = PluginEngine::new(agent.cache_dir())?;
                Some(load_file(&engine, &args.file, &agent, &Arc::new(Registry::new()))?)
            }
            false => None,
        };
    let source = if written { "the pipeline" } else { "default" };
    let status = |verdict: &Verdict| match verdict {
        Verdict::Allowed => "allowed".to_string(),
        Verdict::Granted(grant) => format!("granted: {} ({source})", grant.name()),
        Verdict::Ungranted(grant) => {
            format!("ungranted: add `grants: [{}]` under agent.plugins.{name}", grant.name())
        }
        Verdict::Refused("") => format!("refused: a {kind} may not import it"),
        Verdict::Refused(why) => format!("refused: {why}"),
        Verdict::OtherVersion => {
            format!("refused: this agent implements pollen:plugin@{}", crate::plugin::CONTRACT_VERSION)
        }
    };
    if args.settings.json {
        let imports: Vec<_> = verdicts
            .iter()
            .map(|(import, verdict)| {
                let grant = match verdict {
                    Verdict::Granted(grant) | Verdict::Ungranted(grant) => Some(grant.name()),
                    _ => None,
                };
                serde_json::json!({ "name": import, "verdict": verdict.word(), "grant": grant, "detail": status(verdict) })
            })
            .collect();
        let mut json = match &plugin {
            Some(plugin) => serde_json::to_value(&plugin.info)?,
            None => serde_json::json!({ "name": name, "path": args.file, "kind": kind.to_string() }),
        };
        json["imports"] = serde_json::Value::Array(imports);
        json["loads"] = serde_json::Value::Bool(loads);
        json["allowed_hosts"] = serde_json::json!(settings.allowed_hosts);
        json["contract"] = serde_json::Value::from(format!("pollen:plugin@{}", crate::plugin::CONTRACT_VERSION));
        println!("{json}");
        return Ok(if loads { ExitCode::SUCCESS } else { ExitCode::from(super::EXIT_CONFIG) });
    }
    println!("plugin:   {name}");
    println!("file:     {}", args.file.display());
    println!("kind:     {kind}");
    println!("world:    pollen:plugin/{}@{}", kind.world(), crate::plugin::CONTRACT_VERSION);
    println!("contract: pollen:plugin@{}", crate::plugin::CONTRACT_VERSION);
    if let Some(info) = plugin.as_ref().map(|p| &p.info) {
        if let Some(name) = &info.discoverer {
            println!("discoverer name: {name}");
        }
        if !info.meters.is_empty() {
            println!("meters:");
            for spec in &info.meters {
                let discoverer = spec
                    .default_discoverer
                    .as_deref()
                    .map(|d| format!("  (default discoverer: {d})"))
                    .unwrap_or_default();
                println!(
                    "  {:<24} {:<11} {:<8}{discoverer}",
                    spec.meter.name,
                    spec.meter.kind.as_str(),
                    spec.meter.unit
                );
            }
        }
    }
    println!("imports:");
    for (import, verdict) in &verdicts {
        println!("  {import}  ({})", status(verdict));
    }
    if imports.iter().any(|i| i.starts_with("wasi:http/")) {
        match settings.allowed_hosts.is_empty() {
            true => println!(
                "allowed hosts: none (add `allowed_hosts: [\"https://host:port\"]` under agent.plugins.{name})"
            ),
            false => println!("allowed hosts: {}", settings.allowed_hosts.join(", ")),
        }
    }
    if !loads {
        println!("the agent refuses it as it is: see the imports above");
        return Ok(ExitCode::from(super::EXIT_CONFIG));
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn plugin_name(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}
