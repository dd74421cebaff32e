//! The command line: parse, set up logging, run one subcommand, turn its outcome
//! into an exit code (0 fine, 78 configuration problem, 1 anything else).

mod plugins;
mod poll;
mod run;
mod validate;

use crate::config::{self, ConfigErrors, Pipeline};
use crate::pipeline::BuildError;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit code for configuration errors (sysexits' EX_CONFIG).
pub const EXIT_CONFIG: u8 = 78;

/// Pollen: a telemetry polling agent whose meters are sandboxed WebAssembly components.
#[derive(Parser)]
#[command(name = "pollen", version, about, long_about = None)]
struct Cli {
    /// Log filter (e.g. `info`, `debug`, `pollen_host=debug`); logs go to stderr.
    #[arg(long, global = true, env = "POLLEN_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent: poll every source at its interval until SIGINT or SIGTERM.
    Run(ConfigArgs),
    /// Poll every source once and print the samples as JSON lines on stdout.
    Poll(poll::PollArgs),
    /// Check the pipeline file and the plugin directory, then exit (0, or 78 with every problem).
    Validate(ConfigArgs),
    /// List or inspect plugins.
    #[command(subcommand)]
    Plugins(plugins::PluginsCommand),
}

/// Where the configuration is, and overrides of it.
#[derive(Args, Clone)]
pub struct ConfigArgs {
    /// The pipeline file.
    #[arg(long, short, default_value = "pipeline.yaml")]
    pub config: PathBuf,
    /// Hypervisor URI, overriding `agent.libvirt_uri` (e.g. `qemu:///system`).
    #[arg(long)]
    pub libvirt_uri: Option<String>,
}

impl ConfigArgs {
    /// Loads the pipeline and applies the overrides.
    pub fn load(&self) -> Result<Pipeline, ConfigErrors> {
        let mut pipeline = config::load(&self.config)?;
        if let Some(uri) = &self.libvirt_uri {
            pipeline.agent.libvirt_uri = uri.clone();
        }
        Ok(pipeline)
    }
}

/// Runs the `pollen` command line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|error| {
        eprintln!("pollen: bad --log filter `{}` ({error}); using `info`", cli.log);
        tracing_subscriber::EnvFilter::new("info")
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();

    let outcome = match cli.command {
        Command::Run(args) => run::run(&args),
        Command::Poll(args) => poll::poll(&args),
        Command::Validate(args) => validate::validate(&args),
        Command::Plugins(command) => plugins::plugins(&command),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("pollen: {error:#}");
            if error.downcast_ref::<ConfigErrors>().is_some()
                || matches!(error.downcast_ref::<BuildError>(), Some(BuildError::Plugins(_) | BuildError::Config(_)))
            {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// A multi-threaded runtime for the subcommands that poll.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("pollen").build()?)
}
