//! `pollen plugin new NAME --kind … --lang …`: a plugin project, and what to do next.

use crate::plugin::PluginKind;
use crate::scaffold::{self, Language, NewPlugin, SdkSource};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// The kinds `--kind` takes.
#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    /// Measures meters.
    Pollster,
    /// Finds resources.
    Discoverer,
    /// Turns samples into samples.
    Transformer,
}

/// Arguments of `pollen plugin new`.
#[derive(Args)]
pub struct NewArgs {
    /// The plugin's name (lowercase letters, digits, `_`): its file, crate and
    /// settings key; also the meter's name in the pollster written.
    name: String,
    /// What it is.
    #[arg(long, value_enum, default_value = "pollster")]
    kind: Kind,
    /// What it is written in.
    #[arg(long = "lang", value_enum, default_value = "rust")]
    language: Language,
    /// The project's folder (default: `./NAME`).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Rust: where `pollen-sdk` comes from: a checkout of Pollen (or its `sdk`
    /// folder), or the URL of Pollen's git repository (at this release's tag).
    /// Default: the checkout this `pollen` was built from.
    #[arg(long)]
    sdk: Option<String>,
}

/// Runs `pollen plugin new`.
pub fn new(args: &NewArgs) -> anyhow::Result<ExitCode> {
    let kind = match args.kind {
        Kind::Pollster => PluginKind::Pollster,
        Kind::Discoverer => PluginKind::Discoverer,
        Kind::Transformer => PluginKind::Transformer,
    };
    let sdk = args.sdk.as_deref().map(SdkSource::parse).transpose()?;
    let plan = NewPlugin { name: args.name.clone(), kind, language: args.language, sdk };
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(&args.name));
    let files = scaffold::create(&plan, &dir)?;
    println!("wrote a {kind} in {:?} to {}/ ({} files)", args.language, dir.display(), files.len());
    println!("next:");
    println!("  cd {}", dir.display());
    println!("  {}", scaffold::build_command(&plan));
    println!("  pollen plugin test {} {}", scaffold::artifact(&plan), scaffold::test_arguments(&plan));
    if args.language == Language::Python {
        println!(
            "(the build needs componentize-py: pip install componentize-py=={})",
            scaffold::COMPONENTIZE_PY_VERSION
        );
    }
    Ok(ExitCode::SUCCESS)
}
