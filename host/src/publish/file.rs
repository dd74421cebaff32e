//! `file:///path`: one JSON object per line (Ceilometer's sample keys), appended.

use super::{Batch, PublishError, Publisher};
use std::path::Path;
use tokio::fs::File;
use tokio::io::AsyncWriteExt;

/// Appends JSON lines to a file.
pub struct FilePublisher {
    url: String,
    file: File,
    buffer: Vec<u8>,
}

impl FilePublisher {
    /// Opens (creating if needed) the file, and its folder.
    pub async fn open(url: &str, path: &Path) -> Result<Self, PublishError> {
        let io = |source| PublishError::Io { url: url.to_string(), source };
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io)?;
        }
        let file = tokio::fs::OpenOptions::new().create(true).append(true).open(path).await.map_err(io)?;
        Ok(Self { url: url.to_string(), file, buffer: Vec::new() })
    }
}

impl Publisher for FilePublisher {
    async fn publish(&mut self, batch: &Batch) -> Result<(), PublishError> {
        self.buffer.clear();
        batch
            .write_json_lines(&mut self.buffer)
            .map_err(|source| PublishError::Io { url: self.url.clone(), source })?;
        self.file.write_all(&self.buffer).await.map_err(|source| PublishError::Io { url: self.url.clone(), source })
    }

    async fn flush(&mut self) -> Result<(), PublishError> {
        self.file.sync_data().await.map_err(|source| PublishError::Io { url: self.url.clone(), source })
    }
}
