//! The command line: parse, set up logging, run one subcommand, turn its outcome
//! into an exit code (0 fine, 78 configuration problem, 1 anything else).

mod api;
mod collect;
mod plugin_new;
mod plugin_test;
mod plugins;
mod poll;
mod query;
mod run;
mod status;
mod validate;

use crate::config::{self, ConfigErrors, Pipeline};
use crate::pipeline::BuildError;
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
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
    /// How log lines are written: `text` for people, or `json` for machines (one
    /// object a line: `timestamp`, `level`, `target`, `fields` with the message and
    /// the plugin, meter, resource and other fields, and the `spans`).
    #[arg(long, global = true, env = "POLLEN_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent: poll every source at its interval until SIGINT or SIGTERM;
    /// SIGHUP reloads the configuration and the plugin directory.
    Run(run::RunArgs),
    /// Poll every source once and print the samples as JSON lines on stdout.
    Poll(poll::PollArgs),
    /// Run the collector: receive metering messages (UDP, TCP), check their
    /// signatures, and hand them to sinks, until SIGINT or SIGTERM.
    Collect(collect::CollectArgs),
    /// Serve Ceilometer's v2 read API (`/v2/meters`, `/v2/samples`, `/v2/resources`,
    /// statistics, complex queries) over a store, until SIGINT or SIGTERM.
    Api(api::ApiArgs),
    /// Ask a store what the API answers, from a terminal: meters, samples,
    /// resources or statistics, as a table or `--json`.
    #[command(subcommand)]
    Query(query::QueryCommand),
    /// Check the pipeline file and the plugin directory, then exit (0, or 78 with every problem).
    Validate(ConfigArgs),
    /// What a running agent says of itself (its heartbeat socket): cycles, pollsters,
    /// publishers, its share of each partitioned group; exits 1 if it is not ready.
    Status(status::StatusArgs),
    /// List, inspect or test plugins (`pollen plugin …` works too).
    #[command(subcommand, alias = "plugin")]
    Plugins(plugins::PluginsCommand),
    /// Compile a plugin read on stdin into native code on stdout, within a memory cap:
    /// the child process in which `pollen` compiles each plugin (not for people).
    #[command(hide = true)]
    CompilePlugin(CompilePluginArgs),
}

/// How log lines are written (`--log-format`).
#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object a line.
    Json,
}

/// The child compiler's arguments.
#[derive(Args)]
struct CompilePluginArgs {
    /// The cap on its data memory.
    #[arg(long)]
    memory_bytes: u64,
    /// The plugin file it compiles (for `ps`; the bytes come on stdin).
    #[arg(long = "for")]
    plugin: PathBuf,
}

/// Where the configuration is, and overrides of it.
#[derive(Args, Clone)]
pub struct ConfigArgs {
    /// Pollen's pipeline file (default `pipeline.yaml`); with `--polling` or
    /// `--pipeline`, only its `agent` section is read.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Ceilometer's `polling.yaml`: what is polled, how often.
    #[arg(long)]
    pub polling: Option<PathBuf>,
    /// Ceilometer's `pipeline.yaml`: which meters go to which sinks (with their
    /// transformers and publishers).
    #[arg(long)]
    pub pipeline: Option<PathBuf>,
    /// Hypervisor URI, overriding `agent.libvirt_uri` (e.g. `qemu:///system`).
    #[arg(long)]
    pub libvirt_uri: Option<String>,
    /// Plugin directory, overriding `agent.plugin_dir`.
    #[arg(long, env = "POLLEN_PLUGIN_DIR")]
    pub plugin_dir: Option<PathBuf>,
    /// Ceilometer's `ceilometer.conf`: its `[service_credentials]` are the OpenStack
    /// credentials unless the pipeline's `agent.openstack` gives them.
    #[arg(long = "config-file")]
    pub ceilometer_conf: Option<PathBuf>,
    /// With Ceilometer's files and no `--config`: which agent this is, as
    /// `ceilometer-polling --polling-namespaces` says (`central`: the built-in central
    /// plugins of `plugins/dist-central`, granted the OpenStack catalog).
    #[arg(long = "polling-namespaces", value_enum, default_value_t)]
    pub namespace: config::ceilometer::Namespace,
}

impl ConfigArgs {
    /// Loads the configuration (Pollen's file, or Ceilometer's files) and applies the
    /// overrides.
    pub fn load(&self) -> Result<Pipeline, ConfigErrors> {
        let mut pipeline = if self.polling.is_some() || self.pipeline.is_some() {
            let agent = match &self.config {
                Some(path) => Some(agent_section(path)?),
                None => None,
            };
            config::ceilometer::load(config::ceilometer::CeilometerFiles {
                polling: self.polling.as_deref(),
                pipeline: self.pipeline.as_deref(),
                agent,
                namespace: self.namespace,
            })?
        } else {
            config::load(self.config.as_deref().unwrap_or(Path::new("pipeline.yaml")))?
        };
        if let Some(uri) = &self.libvirt_uri {
            pipeline.agent.libvirt_uri = uri.clone();
        }
        if let Some(dir) = &self.plugin_dir {
            pipeline.agent.plugin_dir = dir.clone();
        }
        let conf = match &self.ceilometer_conf {
            Some(path) => Some(config::ceilometer_conf::CeilometerConf::read(path).map_err(ConfigErrors::one)?),
            None => None,
        };
        if let Some(conf) = &conf {
            pipeline.agent.resolve_openstack(Some(&crate::openstack::Credentials::from_ceilometer_conf(conf)));
            if pipeline.agent.coordination.is_none() {
                let (url, prefix) = conf.coordination();
                if let Some(backend_url) = url {
                    let mut settings = config::CoordinationSettings::with_backend(backend_url);
                    if let Some(prefix) = prefix {
                        settings.group_prefix = prefix;
                    }
                    pipeline.agent.coordination = Some(settings);
                }
            }
            if pipeline.agent.heartbeat_socket_dir.is_none() {
                pipeline.agent.heartbeat_socket_dir = conf.heartbeat_socket_dir();
            }
        }
        let problems = config::check_openstack(&pipeline.agent);
        if !problems.is_empty() {
            let origin = pipeline.origin.clone();
            return Err(ConfigErrors(
                problems.into_iter().map(|(path, message)| config::ConfigError::at(&origin, path, message)).collect(),
            ));
        }
        config::dynamic::resolve(&mut pipeline, conf.as_ref(), self.namespace.name())?;
        Ok(pipeline)
    }
}

/// The `agent` section of a Pollen file given beside Ceilometer's files; its sources
/// and sinks would be ignored, so they are refused.
fn agent_section(path: &Path) -> Result<config::Agent, ConfigErrors> {
    let pollen = config::load(path)?;
    if !pollen.sources.is_empty() || !pollen.sinks.is_empty() {
        return Err(ConfigErrors::one(config::ConfigError::new(
            path,
            "with --polling or --pipeline, --config gives only the `agent` section; move its sources and sinks out (or drop --polling/--pipeline)",
        )));
    }
    Ok(pollen.agent)
}

/// Runs the `pollen` command line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before any thread exists. Not for the collector: each of its few threads
    // allocates all the time (reading, batching, storing), and sharing two arenas
    // made them wait on each other's locks.
    if !matches!(cli.command, Command::Collect(_)) {
        crate::allocator::limit_arenas();
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|error| {
        eprintln!("pollen: bad --log filter `{}` ({error}); using `info`", cli.log);
        tracing_subscriber::EnvFilter::new("info")
    });
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
        LogFormat::Json => logs.json().with_current_span(false).init(),
    }

    if !matches!(cli.command, Command::CompilePlugin(_)) {
        // Plugins are compiled in child processes running this binary, each within its
        // memory budget and killed at its deadline.
        match crate::plugin::compiler::this_executable() {
            Ok(program) => crate::plugin::compiler::compile_in_child_processes(program),
            Err(error) => tracing::warn!(%error,
                "cannot find this program to compile plugins in a child process; compiling in-process, without a memory budget"),
        }
    }
    let outcome = match cli.command {
        Command::CompilePlugin(args) => Ok(crate::plugin::compiler::serve(args.memory_bytes)),
        Command::Run(args) => run::run(&args),
        Command::Poll(args) => poll::poll(&args),
        Command::Collect(args) => collect::collect(&args),
        Command::Api(args) => api::api(&args),
        Command::Query(command) => query::query(&command),
        Command::Validate(args) => validate::validate(&args),
        Command::Status(args) => status::status(&args),
        Command::Plugins(command) => plugins::plugins(&command),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("pollen: {error:#}");
            if error.downcast_ref::<ConfigErrors>().is_some()
                || matches!(error.downcast_ref::<BuildError>(), Some(BuildError::Plugins(..) | BuildError::Config(_)))
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
