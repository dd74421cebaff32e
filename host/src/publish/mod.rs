//! Publishers: where samples go, chosen by URL in a sink (`file:///path`, `stdout://`).
//!
//! Each publisher runs in its own task behind a bounded queue, so one that is slow
//! never blocks polling or the others; what a full queue refuses is counted and
//! logged, never dropped silently.

mod file;
mod stdout;

use crate::registry::Registry;
use crate::sample::{Sample, SampleRecord};
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Batches a publisher's queue holds before it refuses more.
const QUEUE_BATCHES: usize = 64;

/// A publisher URL that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The URL is malformed or of an unknown scheme.
    #[error("publisher `{url}`: {message}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// Writing failed.
    #[error("publisher `{url}`: {source}")]
    Io {
        /// The URL.
        url: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The publisher a URL names.
#[derive(Debug, Clone, PartialEq)]
pub enum PublisherUrl {
    /// `file:///path`: JSON lines appended to a file.
    File(PathBuf),
    /// `stdout://`: JSON lines on standard output.
    Stdout,
}

/// Schemes Pollen publishes to.
pub const KNOWN_SCHEMES: &[&str] = &["file", "stdout"];

impl PublisherUrl {
    /// Parses a sink's publisher URL.
    pub fn parse(text: &str) -> Result<Self, PublishError> {
        let error = |message: String| PublishError::Url { url: text.to_string(), message };
        let url = url::Url::parse(text).map_err(|e| {
            error(format!("not a URL ({e}); e.g. `file:///var/lib/pollen/samples.jsonl` or `stdout://`"))
        })?;
        match url.scheme() {
            "file" => {
                let path = url.to_file_path().map_err(|()| {
                    error("a file URL needs an absolute path, e.g. `file:///var/lib/pollen/samples.jsonl`".into())
                })?;
                if path.as_os_str().len() <= 1 {
                    return Err(error("names no file".into()));
                }
                Ok(Self::File(path))
            }
            "stdout" => Ok(Self::Stdout),
            other => Err(error(format!("unknown scheme `{other}`; Pollen publishes to: {}", KNOWN_SCHEMES.join(", ")))),
        }
    }
}

/// Samples of one source and cycle, with what is needed to write them out.
pub struct Batch {
    /// The samples.
    pub samples: Vec<Sample>,
    /// Where their handles resolve.
    pub registry: Arc<Registry>,
    /// The `source` field of every sample.
    pub source: Arc<str>,
}

impl Batch {
    /// Writes each sample as one JSON line (Ceilometer's keys) to `out`. Samples whose
    /// handles do not resolve are skipped and counted in the result.
    pub fn write_json_lines(&self, out: &mut impl Write) -> std::io::Result<usize> {
        let mut skipped = 0;
        for sample in &self.samples {
            let (Some(meter), Some(resource)) =
                (self.registry.meter(sample.meter), self.registry.resource(sample.resource))
            else {
                skipped += 1;
                continue;
            };
            let record = SampleRecord {
                meter: &meter,
                resource: &resource,
                volume: sample.volume,
                timestamp: sample.timestamp,
                source: &self.source,
                id: uuid::Uuid::new_v4(),
            };
            serde_json::to_writer(&mut *out, &record)?;
            out.write_all(b"\n")?;
        }
        Ok(skipped)
    }
}

/// Something that sends batches somewhere. Runs in its own task.
pub trait Publisher: Send + 'static {
    /// Sends one batch.
    fn publish(&mut self, batch: &Batch) -> impl Future<Output = Result<(), PublishError>> + Send;
    /// Makes sure everything sent so far has left.
    fn flush(&mut self) -> impl Future<Output = Result<(), PublishError>> + Send;
}

/// A running publisher: its queue and its task.
pub struct PublisherHandle {
    url: String,
    queue: Option<mpsc::Sender<Arc<Batch>>>,
    task: JoinHandle<()>,
    stats: Arc<PublisherStats>,
}

/// What a publisher did.
#[derive(Debug, Default)]
pub struct PublisherStats {
    /// Samples sent.
    pub published: AtomicU64,
    /// Samples refused because the queue was full, or lost to a failed write.
    pub dropped: AtomicU64,
}

impl PublisherHandle {
    /// Builds the publisher a URL names and starts its task.
    pub async fn start(url: &str) -> Result<Self, PublishError> {
        match PublisherUrl::parse(url)? {
            PublisherUrl::File(path) => Ok(Self::spawn(url, file::FilePublisher::open(url, &path).await?)),
            PublisherUrl::Stdout => Ok(Self::spawn(url, stdout::StdoutPublisher::new())),
        }
    }

    fn spawn(url: &str, mut publisher: impl Publisher) -> Self {
        let (queue, mut batches) = mpsc::channel::<Arc<Batch>>(QUEUE_BATCHES);
        let stats = Arc::new(PublisherStats::default());
        let (task_stats, task_url) = (stats.clone(), url.to_string());
        let task = tokio::spawn(async move {
            while let Some(batch) = batches.recv().await {
                let count = batch.samples.len() as u64;
                match publisher.publish(&batch).await {
                    Ok(()) => task_stats.published.fetch_add(count, Ordering::Relaxed),
                    Err(error) => {
                        tracing::error!(publisher = %task_url, %error, samples = count, "publishing failed; samples lost");
                        task_stats.dropped.fetch_add(count, Ordering::Relaxed)
                    }
                };
            }
            if let Err(error) = publisher.flush().await {
                tracing::error!(publisher = %task_url, %error, "flushing failed");
            }
        });
        Self { url: url.to_string(), queue: Some(queue), task, stats }
    }

    /// The URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What it did so far.
    pub fn stats(&self) -> &PublisherStats {
        &self.stats
    }

    /// Queues a batch; if the queue is full the batch is dropped, counted and logged.
    pub fn send(&self, batch: Arc<Batch>) {
        let Some(queue) = &self.queue else { return };
        let count = batch.samples.len() as u64;
        if queue.try_send(batch).is_err() {
            self.stats.dropped.fetch_add(count, Ordering::Relaxed);
            tracing::warn!(publisher = %self.url, samples = count, "publisher queue full; batch dropped");
        }
    }

    /// Stops taking batches, sends what is queued and flushes, within `deadline`.
    /// Returns whether it finished in time.
    pub async fn shutdown(mut self, deadline: Duration) -> bool {
        self.queue = None;
        match tokio::time::timeout(deadline, &mut self.task).await {
            Ok(_) => true,
            Err(_) => {
                self.task.abort();
                tracing::error!(publisher = %self.url, "publisher did not finish within {deadline:?}; queued samples lost");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_publisher_or_say_what_is_wrong() {
        assert_eq!(PublisherUrl::parse("stdout://").unwrap(), PublisherUrl::Stdout);
        assert_eq!(PublisherUrl::parse("file:///tmp/s.jsonl").unwrap(), PublisherUrl::File("/tmp/s.jsonl".into()));
        let error = PublisherUrl::parse("gnocchi://").unwrap_err().to_string();
        assert!(error.contains("unknown scheme `gnocchi`"), "{error}");
        assert!(error.contains("file, stdout"), "{error}");
        assert!(PublisherUrl::parse("samples.jsonl").unwrap_err().to_string().contains("not a URL"));
    }
}
