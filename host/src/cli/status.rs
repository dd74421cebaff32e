//! `pollen status`: what a running agent says of itself, read from its heartbeat
//! socket: each polling task's last cycle, each pollster's last success, last error and
//! samples of its last cycle, each publisher's queue and last error, and its share of
//! each partitioned group. Exits 0 if the agent is ready, 1 if not (the reasons are
//! printed).

use super::ConfigArgs;
use anyhow::Context;
use clap::Args;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// `pollen status`'s arguments.
#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The agent's heartbeat socket, instead of the one its configuration names
    /// (`agent.heartbeat_socket_dir`).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Print the status as JSON.
    #[arg(long)]
    json: bool,
}

/// Reads the status and prints it.
pub fn status(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let path = match &args.socket {
        Some(path) => path.clone(),
        None => {
            let pipeline = args.config.load()?;
            pipeline.agent.heartbeat_socket().with_context(|| {
                format!("{}: the agent serves no heartbeat socket; set agent.heartbeat_socket_dir (Ceilometer's [polling] heartbeat_socket_dir) or give --socket", pipeline.origin.display())
            })?
        }
    };
    let mut stream = std::os::unix::net::UnixStream::connect(&path).with_context(|| {
        format!("cannot reach the agent's heartbeat socket {} (is `pollen run` running?)", path.display())
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(format!("{}\n", crate::health::STATUS_REQUEST).as_bytes())?;
    let mut text = String::new();
    stream.read_to_string(&mut text).with_context(|| format!("reading {}", path.display()))?;
    let status: Value = serde_json::from_str(&text).with_context(|| {
        format!("{} answered no status (an agent older than `pollen status`?): {text}", path.display())
    })?;
    if args.json {
        println!("{status}");
    } else {
        print!("{}", render(&status));
    }
    Ok(if status["ready"] == Value::Bool(true) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(text) => text.clone(),
        Value::Array(pair) if pair.len() == 2 => format!("{} {}", text(&pair[0]), text(&pair[1])),
        other => other.to_string(),
    }
}

/// The status as a person reads it.
fn render(status: &Value) -> String {
    let mut out = String::new();
    let ready = if status["ready"] == Value::Bool(true) { "ready".to_string() } else { "NOT READY".to_string() };
    out.push_str(&format!("agent started {}: {ready}\n", text(&status["started"])));
    for reason in status["not_ready"].as_array().into_iter().flatten() {
        out.push_str(&format!("  - {}\n", text(reason)));
    }
    out.push_str("\npolling tasks\n");
    for (interval, task) in status["tasks"].as_object().into_iter().flatten() {
        out.push_str(&format!(
            "  every {interval} s: {} cycles, last finished {}{}\n",
            text(&task["cycles"]),
            text(&task["last_finished"]),
            task["running_since"].as_str().map(|at| format!(", one running since {at}")).unwrap_or_default()
        ));
    }
    out.push_str("\npollsters (last success | last error | samples of the last cycle)\n");
    for (name, pollster) in status["pollsters"].as_object().into_iter().flatten() {
        out.push_str(&format!(
            "  {name}: {} | {} | {}\n",
            text(&pollster["last_success"]),
            text(&pollster["last_error"]),
            text(&pollster["samples_last_cycle"])
        ));
    }
    out.push_str("\npublishers (queued, held to send again, published, dropped | last success | last error)\n");
    for publisher in status["publishers"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {} {}: {} queued, {} held, {} published, {} dropped | {} | {}\n",
            text(&publisher["sink"]),
            text(&publisher["url"]),
            text(&publisher["queued"]),
            text(&publisher["held"]),
            text(&publisher["published"]),
            text(&publisher["dropped"]),
            text(&publisher["last_success"]),
            text(&publisher["last_error"])
        ));
    }
    if let Some(member) = status["member"].as_str() {
        out.push_str(&format!(
            "\ncoordination: member {member}, {} failed heartbeats\n",
            text(&status["coordination_failures"])
        ));
        for group in status["groups"].as_array().into_iter().flatten() {
            let share = group["share"].as_f64().unwrap_or(0.0) * 100.0;
            out.push_str(&format!(
                "  {}: {} members, this agent's share {share:.0} %\n",
                text(&group["group"]),
                text(&group["members"])
            ));
        }
    }
    out
}
