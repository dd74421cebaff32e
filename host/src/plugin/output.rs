//! A plugin's stdout and stderr: kept in memory until the host copies them into its
//! log after each call, at most [`OutputPipe::new`]'s capacity between two copies.
//! What comes beyond is dropped and counted, never an error the plugin sees: a
//! plugin printing all day must not start failing its writes (Rust's `println!`
//! panics on one), as wasmtime's `MemoryOutputPipe`, which fills for good, would.

use bytes::{Bytes, BytesMut};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// One of a plugin's output streams, shared by the host and the plugin's WASI.
#[derive(Clone)]
pub struct OutputPipe {
    held: Arc<Mutex<Held>>,
    capacity: usize,
}

#[derive(Default)]
struct Held {
    bytes: BytesMut,
    dropped: u64,
}

impl OutputPipe {
    /// A pipe holding at most `capacity` bytes between two [`take`](Self::take)s.
    pub fn new(capacity: usize) -> Self {
        Self { held: Arc::new(Mutex::new(Held::default())), capacity }
    }

    /// What was written since the last take, and how many bytes were dropped.
    pub fn take(&self) -> (Bytes, u64) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let dropped = std::mem::take(&mut held.dropped);
        (held.bytes.split().freeze(), dropped)
    }

    fn append(&self, bytes: &[u8]) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let room = self.capacity.saturating_sub(held.bytes.len()).min(bytes.len());
        held.bytes.extend_from_slice(&bytes[..room]);
        held.dropped += (bytes.len() - room) as u64;
    }
}

impl OutputStream for OutputPipe {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(self.capacity.max(1))
    }
}

#[async_trait::async_trait]
impl Pollable for OutputPipe {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for OutputPipe {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, bytes: &[u8]) -> Poll<std::io::Result<usize>> {
        self.append(bytes);
        Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for OutputPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for OutputPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_pipe_drops_and_counts_and_takes_empty_it() {
        let mut pipe = OutputPipe::new(8);
        pipe.write(Bytes::from_static(b"hello ")).unwrap();
        pipe.write(Bytes::from_static(b"world")).unwrap();
        assert_eq!(pipe.take(), (Bytes::from_static(b"hello wo"), 3));
        pipe.write(Bytes::from_static(b"again")).unwrap();
        assert_eq!(pipe.take(), (Bytes::from_static(b"again"), 0));
    }
}
