//! `pollen validate`: the pipeline file and the plugin directory, checked as `run`
//! would, without polling.

use super::ConfigArgs;
use crate::pipeline::Agent;
use std::collections::BTreeMap;
use std::process::ExitCode;

/// Exits 0 if `pollen run` would start, else reports every problem (exit 78).
pub fn validate(args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    let pipeline = args.load()?;
    for warning in &pipeline.warnings {
        println!("warning: {warning}");
    }
    let agent = Agent::build(pipeline)?;
    // Meters no plugin provides: a warning per pattern, naming the sources that list it.
    let mut unprovided: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for source in &agent.pipeline.sources {
        for pattern in source.meters.iter().filter(|m| !m.starts_with('!')) {
            let provided = agent
                .plugins
                .pollsters()
                .flat_map(|p| p.info.meters.iter())
                .any(|spec| wildmatch::WildMatch::new(pattern).matches(&spec.meter.name));
            if !provided {
                unprovided.entry(pattern).or_default().push(&source.name);
            }
        }
    }
    for (pattern, sources) in unprovided {
        println!(
            "warning: {}: no loaded plugin provides `{pattern}` (source{} {}); a plugin may be added later",
            agent.pipeline.origin.display(),
            if sources.len() == 1 { "" } else { "s" },
            sources.join(", ")
        );
    }
    println!(
        "{}: valid ({} plugins, {} sources, {} sinks)",
        agent.pipeline.origin.display(),
        agent.plugins.all.len(),
        agent.pipeline.sources.len(),
        agent.pipeline.sinks.len()
    );
    Ok(ExitCode::SUCCESS)
}
