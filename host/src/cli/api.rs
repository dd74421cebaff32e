//! `pollen api`: Ceilometer's v2 read API over a store (see [`crate::api`]).

use crate::api::ApiSettings;
use crate::config::{ConfigError, ConfigErrors};
use crate::store::read::Reader;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// `pollen api`'s arguments.
#[derive(Args)]
pub struct ApiArgs {
    /// A file of the API's settings: `listen`, `store`, `tokens` (each with a
    /// `project_id` or `admin: true`) or `keystone` (service credentials).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The store to read (default: the file's `store`, else `database://`).
    #[arg(long, env = "POLLEN_STORE")]
    store: Option<String>,
    /// The address to listen on (default: the file's `listen`, else 127.0.0.1:8777).
    #[arg(long)]
    listen: Option<String>,
}

/// Serves the API until SIGINT or SIGTERM.
pub fn api(args: &ApiArgs) -> anyhow::Result<ExitCode> {
    let origin = args.config.clone().unwrap_or_else(|| PathBuf::from("(command line)"));
    let problem = |message: String| ConfigErrors::one(ConfigError::new(&origin, message));
    let mut settings = match &args.config {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| problem(format!("cannot read the API's settings: {e}")))?;
            serde_yaml::from_str::<ApiSettings>(&text)
                .map_err(|error| ConfigErrors::one(ConfigError::from_yaml(path, &error)))?
        }
        None => ApiSettings::default(),
    };
    if let Some(store) = &args.store {
        settings.store = Some(store.clone());
    }
    if let Some(listen) = &args.listen {
        settings.listen = listen.clone();
    }
    let checked = settings.check().map_err(problem)?;
    let url = settings.store_url(None).map_err(problem)?;
    super::runtime()?.block_on(async move {
        let reader = Reader::open(&url).await.map_err(|e| anyhow::anyhow!("{}: {e}", url.shown()))?;
        let listener = crate::api::bind(checked.listen).await?;
        tracing::info!(listen = %checked.listen, store = %url.shown(), "API serving Ceilometer's v2 paths");
        let serving = crate::api::serve(listener, reader, checked.authenticator);
        super::run::shutdown_signal().await;
        serving.abort();
        anyhow::Ok(ExitCode::SUCCESS)
    })
}
