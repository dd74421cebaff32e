//! `file:///path?max_bytes=N&backup_count=N`: one JSON object per line (Ceilometer's
//! sample keys), appended; with `max_bytes` and `backup_count`, the file is rotated
//! as Python's `RotatingFileHandler` (Ceilometer's) does it: `path` → `path.1` → … →
//! `path.<backup_count>`, the oldest deleted. (`json` is accepted for Ceilometer's
//! URLs; Pollen always writes JSON.)

use super::options::Query;
use super::{Batch, Delivery, PublishError, Publisher, Records, LINES_CHUNK};
use crate::sample::Sample;
use std::path::{Path, PathBuf};
use tokio::fs::File;
use tokio::io::AsyncWriteExt;

/// The file publisher's settings, from its URL.
#[derive(Debug, Clone, PartialEq)]
pub struct FileOptions {
    /// The file.
    pub path: PathBuf,
    /// Size past which the file is rotated.
    pub max_bytes: Option<u64>,
    /// Rotated files kept.
    pub backup_count: u32,
}

impl FileOptions {
    /// Reads a `file://` URL.
    pub fn from_url(url: &url::Url) -> Result<Self, String> {
        let path = url.to_file_path().map_err(|()| {
            "a file URL needs an absolute path, e.g. `file:///var/lib/pollen/samples.jsonl`".to_string()
        })?;
        if path.file_name().is_none() {
            return Err("names no file".into());
        }
        let mut query = Query::new(url);
        let max_bytes: u64 = query.parse("max_bytes", 0)?;
        let backup_count = query.parse("backup_count", 0)?;
        query.flag("json")?;
        query.finish()?;
        if max_bytes > 0 && backup_count == 0 {
            return Err("`max_bytes` rotates only with `backup_count` of 1 or more".into());
        }
        Ok(Self { path, max_bytes: (max_bytes > 0).then_some(max_bytes), backup_count })
    }
}

/// Appends JSON lines to a file, rotating it when asked.
pub struct FilePublisher {
    url: String,
    options: FileOptions,
    file: File,
    size: u64,
    lines: Vec<u8>,
}

impl FilePublisher {
    /// Opens (creating if needed) the file, and its folder.
    pub async fn open(url: &str, options: FileOptions) -> Result<Self, PublishError> {
        let io = |source| PublishError::Io { url: url.to_string(), source };
        if let Some(parent) = options.path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io)?;
        }
        let file = append(&options.path).await.map_err(io)?;
        let size = file.metadata().await.map_err(io)?.len();
        Ok(Self { url: url.to_string(), options, file, size, lines: Vec::new() })
    }

    fn io(&self, source: std::io::Error) -> PublishError {
        PublishError::Io { url: self.url.clone(), source }
    }

    /// `path.N-1` → `path.N`, …, `path` → `path.1`, and a new `path`.
    async fn rotate(&mut self) -> std::io::Result<()> {
        self.file.flush().await?;
        let numbered = |n: u32| PathBuf::from(format!("{}.{n}", self.options.path.display()));
        for n in (1..self.options.backup_count).rev() {
            if tokio::fs::try_exists(numbered(n)).await? {
                tokio::fs::rename(numbered(n), numbered(n + 1)).await?;
            }
        }
        tokio::fs::rename(&self.options.path, numbered(1)).await?;
        self.file = append(&self.options.path).await?;
        self.size = 0;
        Ok(())
    }
}

async fn append(path: &Path) -> std::io::Result<File> {
    tokio::fs::OpenOptions::new().create(true).append(true).open(path).await
}

impl Publisher for FilePublisher {
    async fn publish(&mut self, batch: &Batch) -> Result<Delivery, PublishError> {
        let mut records = batch.records();
        for chunk in batch.samples.chunks(LINES_CHUNK) {
            self.write_chunk(&mut records, chunk).await?;
        }
        Ok(Delivery { sent: batch.samples.len() as u64, dropped: 0 })
    }

    async fn flush(&mut self) -> Result<Delivery, PublishError> {
        self.file.sync_data().await.map_err(|e| self.io(e))?;
        Ok(Delivery::default())
    }
}

impl FilePublisher {
    /// Writes some of a batch's samples, rotating between lines when the file is full.
    async fn write_chunk(&mut self, records: &mut Records<'_>, samples: &[Sample]) -> Result<(), PublishError> {
        self.lines.clear();
        records.write_json_lines_of(samples, &mut self.lines);
        let lines = std::mem::take(&mut self.lines);
        let written = self.write_lines(&lines).await;
        self.lines = lines;
        written
    }

    /// Writes whole JSON lines (each ended by a newline, as
    /// [`Records::write_json_lines_of`] writes them): at once when they leave the file under
    /// its bound (or it has none); otherwise whole runs of lines that fit, rotating between
    /// lines. Lines are looked for only then.
    async fn write_lines(&mut self, lines: &[u8]) -> Result<(), PublishError> {
        let mut start = 0;
        if let Some(max) = self.options.max_bytes.filter(|max| self.size + lines.len() as u64 >= *max) {
            let mut end = 0;
            for line_end in memchr::memchr_iter(b'\n', lines).map(|newline| newline + 1) {
                let pending = (end - start) as u64;
                // As Python's `RotatingFileHandler`: a line that would bring the file to
                // `max_bytes` or past it starts the next file (an empty one is kept).
                if self.size + pending > 0 && self.size + pending + (line_end - end) as u64 >= max {
                    self.file.write_all(&lines[start..end]).await.map_err(|e| self.io(e))?;
                    self.size += pending;
                    self.rotate().await.map_err(|e| self.io(e))?;
                    start = end;
                }
                end = line_end;
            }
        }
        self.file.write_all(&lines[start..]).await.map_err(|e| self.io(e))?;
        self.size += (lines.len() - start) as u64;
        Ok(())
    }
}
