//! Why a plugin was refused at load, and why a call into one failed.

use super::PluginKind;
use std::path::PathBuf;
use std::time::Duration;

/// A plugin file that cannot be used. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not WebAssembly at all.
    #[error("{path}: not a WebAssembly file (no `\\0asm` header)")]
    NotWasm {
        /// The file.
        path: PathBuf,
    },
    /// A core module rather than a component.
    #[error("{path}: a core WebAssembly module, not a component; build the plugin for the `wasm32-wasip2` target (or wrap it with `wasm-tools component new`)")]
    CoreModule {
        /// The file.
        path: PathBuf,
    },
    /// Larger than the agent accepts.
    #[error("{path}: {size} bytes, more than the {limit} bytes a plugin may have; raise `agent.max_plugin_mib` if it is meant to be this large")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size (or what was read of it).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A function too large to compile within reason.
    #[error("{path}: has a function of {size} bytes, more than the {limit} bytes a plugin's function may have (compiling one takes minutes); raise `agent.max_function_kib` if it is meant to be this large")]
    FunctionTooLarge {
        /// The file.
        path: PathBuf,
        /// The largest function's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Compiling needed more memory than its budget.
    #[error("{path}: compiling needed more than {limit_mib} MiB (`agent.compile_memory_mib`)")]
    CompileMemory {
        /// The file.
        path: PathBuf,
        /// The budget, MiB.
        limit_mib: u64,
    },
    /// Compiling took longer than the load deadline.
    #[error("{path}: compiling took longer than {timeout:?} (`agent.load_timeout`)")]
    CompileTimeout {
        /// The file.
        path: PathBuf,
        /// The deadline.
        timeout: Duration,
    },
    /// wasmtime could not compile or validate it.
    #[error("{path}: invalid component: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// wasmtime's message.
        message: String,
    },
    /// It exports none of Pollen's worlds.
    #[error("{path}: implements none of Pollen's worlds: a plugin exports one of `pollen:plugin/pollster@{version}`, `pollen:plugin/discoverer@{version}` or `pollen:plugin/transformer@{version}`, and this one exports {exports}", version = super::CONTRACT_VERSION)]
    UnknownWorld {
        /// The file.
        path: PathBuf,
        /// What it exports instead.
        exports: String,
    },
    /// It exports more than one of Pollen's worlds.
    #[error(
        "{path}: exports several of Pollen's worlds ({kinds}); a plugin is one pollster, discoverer or transformer"
    )]
    SeveralWorlds {
        /// The file.
        path: PathBuf,
        /// The kinds found.
        kinds: String,
    },
    /// Built against another version of the contract.
    #[error("{path}: built against `{found}`, but this agent speaks `pollen:plugin@{expected}`; rebuild it with a matching pollen-sdk", expected = super::CONTRACT_VERSION)]
    WrongVersion {
        /// The file.
        path: PathBuf,
        /// The interface it uses.
        found: String,
    },
    /// Imports an interface its kind may never use.
    #[error("{path}: a {kind} may not import `{import}`{hint}")]
    Forbidden {
        /// The file.
        path: PathBuf,
        /// Its kind.
        kind: PluginKind,
        /// The import.
        import: String,
        /// Why, or what to do (with its leading space and parentheses).
        hint: String,
    },
    /// Imports an interface the pipeline does not grant it.
    #[error("{path}: imports `{import}`, which the pipeline does not grant to plugin `{plugin}`; to allow it, add `grants: [{grant}]` under `agent.plugins.{plugin}` in the pipeline file")]
    NotGranted {
        /// The file.
        path: PathBuf,
        /// The plugin's name.
        plugin: String,
        /// The import.
        import: String,
        /// The grant that would allow it.
        grant: &'static str,
    },
    /// The host cannot satisfy its imports.
    #[error("{path}: cannot be linked: {message}")]
    Link {
        /// The file.
        path: PathBuf,
        /// wasmtime's message.
        message: String,
    },
    /// Describing itself failed.
    #[error("{path}: failed while describing itself: {source}")]
    Describe {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: PluginError,
    },
    /// Described itself wrongly.
    #[error("{path}: bad description: {message}")]
    BadDescription {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Conflicts with a plugin loaded before it.
    #[error("{path}: {message}")]
    Conflict {
        /// The file.
        path: PathBuf,
        /// What conflicts with what.
        message: String,
    },
}

impl LoadError {
    /// The refused file.
    pub fn path(&self) -> &std::path::Path {
        match self {
            Self::Read { path, .. }
            | Self::NotWasm { path, .. }
            | Self::CoreModule { path, .. }
            | Self::TooLarge { path, .. }
            | Self::FunctionTooLarge { path, .. }
            | Self::CompileTimeout { path, .. }
            | Self::CompileMemory { path, .. }
            | Self::Invalid { path, .. }
            | Self::UnknownWorld { path, .. }
            | Self::SeveralWorlds { path, .. }
            | Self::WrongVersion { path, .. }
            | Self::Forbidden { path, .. }
            | Self::NotGranted { path, .. }
            | Self::Link { path, .. }
            | Self::Describe { path, .. }
            | Self::BadDescription { path, .. }
            | Self::Conflict { path, .. } => path,
        }
    }
}

/// A call into a plugin that failed. The agent and other plugins go on; after a
/// trap, deadline or memory failure the instance is thrown away and re-made.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginError {
    /// Ran past the deadline of its own running time.
    #[error(
        "plugin `{plugin}` ran past its deadline of {timeout:?} (its own running time; `call_timeout`) and was stopped"
    )]
    Deadline {
        /// The plugin.
        plugin: String,
        /// Its deadline.
        timeout: Duration,
    },
    /// Ran past the deadline of its wall time (waits on the host included).
    #[error(
        "plugin `{plugin}` ran past its wall-time deadline of {timeout:?} (waits on the host included; `call_wall_timeout`) and was stopped"
    )]
    WallDeadline {
        /// The plugin.
        plugin: String,
        /// Its deadline.
        timeout: Duration,
    },
    /// Tried to use more memory than its limit.
    #[error("plugin `{plugin}` exceeded its memory limit of {limit_mib} MiB and was stopped")]
    MemoryLimit {
        /// The plugin.
        plugin: String,
        /// Its limit.
        limit_mib: usize,
    },
    /// Trapped (a panic, an `unreachable`, an out-of-bounds access...).
    #[error("plugin `{plugin}` trapped: {message}")]
    Trap {
        /// The plugin.
        plugin: String,
        /// wasmtime's description.
        message: String,
    },
    /// Returned an error of its own.
    #[error("plugin `{plugin}` reported an error: {message}")]
    Reported {
        /// The plugin.
        plugin: String,
        /// Its message.
        message: String,
    },
    /// Failed after Keystone gave it no token: the OpenStack catalog was out of reach.
    #[error("plugin `{plugin}` could not read the OpenStack catalog: {keystone}")]
    NoCatalog {
        /// The plugin.
        plugin: String,
        /// Why Keystone gave no token.
        keystone: String,
    },
    /// Returned something the host refuses (e.g. an index out of range).
    #[error("plugin `{plugin}` returned malformed output: {message}")]
    Malformed {
        /// The plugin.
        plugin: String,
        /// What is wrong.
        message: String,
    },
    /// Was called for something its world does not do.
    #[error("plugin `{plugin}` is a {kind}, not a {wanted}")]
    WrongKind {
        /// The plugin.
        plugin: String,
        /// What it is.
        kind: PluginKind,
        /// What the caller wanted.
        wanted: PluginKind,
    },
}

impl PluginError {
    /// The plugin whose call failed.
    pub fn plugin(&self) -> &str {
        match self {
            Self::Deadline { plugin, .. }
            | Self::WallDeadline { plugin, .. }
            | Self::MemoryLimit { plugin, .. }
            | Self::Trap { plugin, .. }
            | Self::Reported { plugin, .. }
            | Self::NoCatalog { plugin, .. }
            | Self::Malformed { plugin, .. }
            | Self::WrongKind { plugin, .. } => plugin,
        }
    }

    /// Whether the failure threw the instance away (as opposed to an error the
    /// plugin returned itself).
    pub fn discards_instance(&self) -> bool {
        matches!(self, Self::Deadline { .. } | Self::WallDeadline { .. } | Self::MemoryLimit { .. } | Self::Trap { .. })
    }

    /// Its kind, as `pollen_plugin_errors_total` labels it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Deadline { .. } => "deadline",
            Self::WallDeadline { .. } => "wall_deadline",
            Self::MemoryLimit { .. } => "memory",
            Self::Trap { .. } => "trap",
            Self::Reported { .. } => "reported",
            Self::NoCatalog { .. } => "no_catalog",
            Self::Malformed { .. } => "refused_output",
            Self::WrongKind { .. } => "wrong_kind",
        }
    }
}

/// The WebAssembly engine could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the WebAssembly engine: {0}")]
pub struct EngineError(pub String);
