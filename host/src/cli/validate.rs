//! `pollen validate`: the pipeline file and the plugin directory, checked as `run`
//! would, without polling.

use super::ConfigArgs;
use crate::pipeline::Agent;
use std::process::ExitCode;

/// Exits 0 if `pollen run` would start, else reports every problem (exit 78).
pub fn validate(args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    let pipeline = args.load()?;
    let agent = Agent::build(pipeline)?;
    for (index, source) in agent.pipeline.sources.iter().enumerate() {
        for pattern in source.meters.iter().filter(|m| !m.starts_with('!')) {
            let provided = agent
                .plugins
                .pollsters()
                .flat_map(|p| p.info.meters.iter())
                .any(|spec| wildmatch::WildMatch::new(pattern).matches(&spec.meter.name));
            if !provided {
                println!(
                    "warning: {}: sources[{index}].meters: no loaded plugin provides `{pattern}` (a plugin may be added later)",
                    agent.pipeline.origin.display()
                );
            }
        }
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
