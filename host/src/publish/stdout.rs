//! `stdout://`: one JSON object per line on standard output.

use super::{Batch, Delivery, PublishError, Publisher, LINES_CHUNK};
use tokio::io::AsyncWriteExt;

/// Writes JSON lines to standard output.
pub struct StdoutPublisher {
    out: tokio::io::Stdout,
    buffer: Vec<u8>,
}

impl StdoutPublisher {
    /// A publisher on this process's stdout.
    pub fn new() -> Self {
        Self { out: tokio::io::stdout(), buffer: Vec::new() }
    }

    fn io(source: std::io::Error) -> PublishError {
        PublishError::Io { url: "stdout://".into(), source }
    }
}

impl Publisher for StdoutPublisher {
    async fn publish(&mut self, batch: &Batch) -> Result<Delivery, PublishError> {
        let mut records = batch.records();
        for chunk in batch.samples.chunks(LINES_CHUNK) {
            self.buffer.clear();
            records.write_json_lines_of(chunk, &mut self.buffer);
            self.out.write_all(&self.buffer).await.map_err(Self::io)?;
        }
        self.out.flush().await.map_err(Self::io)?;
        Ok(Delivery { sent: batch.samples.len() as u64, dropped: 0 })
    }

    async fn flush(&mut self) -> Result<Delivery, PublishError> {
        self.out.flush().await.map_err(Self::io)?;
        Ok(Delivery::default())
    }
}
