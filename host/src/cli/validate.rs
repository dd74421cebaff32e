//! `pollen validate`: the pipeline file and the plugin directory, checked as `run`
//! would, without polling.

use super::ConfigArgs;
use crate::pipeline::Agent;
use std::process::ExitCode;

/// Exits 0 if `pollen run` would start, else reports every problem (exit 78).
pub fn validate(args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    let pipeline = args.load()?;
    for warning in &pipeline.warnings {
        println!("warning: {warning}");
    }
    let agent = Agent::build(pipeline)?;
    // Meters no plugin provides: a warning per pattern, naming the sources that list it.
    for unprovided in crate::pipeline::names::unprovided_meters(&agent.pipeline, &agent.plugins) {
        println!(
            "warning: {}: no loaded plugin provides `{}`{} (source{} {}); a plugin may be added later",
            agent.pipeline.origin.display(),
            unprovided.pattern,
            unprovided.suggestion,
            if unprovided.sources.len() == 1 { "" } else { "s" },
            unprovided.sources.join(", ")
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
