//! The collector enforces its `retention` rules itself on every database its sinks
//! store into: at start, then every [`EVERY`], over a connection of its own.

use super::config::CollectorFile;
use crate::publish::PublisherConfig;
use crate::store::{Store, StoreUrl};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How often retention runs.
pub const EVERY: Duration = Duration::from_secs(600);

/// Starts retention on the file's databases, if it has rules.
pub(super) fn start(file: &CollectorFile) -> Option<JoinHandle<()>> {
    let rules = Arc::new(file.collector.retention.clone());
    if rules.is_empty() {
        return None;
    }
    let mut targets: Vec<StoreUrl> = Vec::new();
    for url in file.sinks.iter().flat_map(|s| &s.publishers) {
        if let Ok(PublisherConfig::Database(target)) = PublisherConfig::parse(url) {
            if !targets.contains(&target) {
                targets.push(target);
            }
        }
    }
    if targets.is_empty() {
        tracing::warn!("retention rules are set, but no sink stores into a database");
        return None;
    }
    Some(tokio::spawn(async move {
        let mut stores: Vec<(StoreUrl, Option<Store>)> = targets.into_iter().map(|t| (t, None)).collect();
        let mut ticker = tokio::time::interval(EVERY);
        loop {
            ticker.tick().await;
            for (target, store) in &mut stores {
                if store.is_none() {
                    match Store::open(target).await {
                        Ok(opened) => *store = Some(opened),
                        Err(error) => {
                            tracing::warn!(store = %target.shown(), "retention skipped this time: {error}");
                            continue;
                        }
                    }
                }
                let Some(opened) = store else { continue };
                let now_us = crate::sample::now_ns() / 1000;
                match opened.expire(rules.clone(), now_us).await {
                    Ok(expired) => tracing::info!(
                        store = %target.shown(),
                        samples = expired.samples,
                        partitions = expired.partitions,
                        "retention: samples past their time to live removed"
                    ),
                    Err(error) => {
                        tracing::warn!(store = %target.shown(), "retention failed; tried again later: {error}");
                        *store = None;
                    }
                }
            }
        }
    }))
}
