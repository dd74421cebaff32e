//! `tcp://host:port`: each sample as a signed metering message, msgpack-encoded and
//! prefixed with its length as 8 bytes little-endian, over one connection that is
//! re-opened (with backoff) when it breaks. What cannot be sent is held, up to a
//! bound, and retried.

use super::local_queue::{delivered, OutboxPublisher, Pending, Policy, Receipt, Transport};
use super::options::SocketOptions;
use super::Batch;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Frames held while the peer is unreachable.
const MAX_PENDING_FRAMES: usize = 100_000;
/// How long a connection attempt or a write may take.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A publisher that streams length-prefixed msgpack frames; it connects on first use.
/// What it cannot send is held under `policy` (`queue`, or `handover` behind a disk queue).
pub fn publisher(url: &str, options: SocketOptions, secret: String, policy: Policy) -> OutboxPublisher<Peer> {
    OutboxPublisher::new(url, Peer { options, secret, stream: None }, policy, MAX_PENDING_FRAMES, 0)
}

/// The collector, and the connection to it, opened on demand.
pub struct Peer {
    options: SocketOptions,
    secret: String,
    stream: Option<TcpStream>,
}

impl Transport for Peer {
    type Message = Vec<u8>;
    const WINDOW: usize = 1;

    fn encode(&self, batch: &Batch) -> Vec<Pending<Vec<u8>>> {
        super::metering::msgpack_messages(batch, &self.secret)
            .into_iter()
            .map(|message| Pending { message, samples: 1 })
            .collect()
    }

    async fn send(&mut self, frames: &[&Vec<u8>]) -> Result<Receipt, String> {
        for frame in frames {
            if let Err(error) = send(&mut self.stream, &self.options, frame).await {
                self.stream = None;
                return Err(error.to_string());
            }
        }
        Ok(delivered())
    }

    fn disconnect(&mut self) {
        self.stream = None;
    }

    async fn close(&mut self) {
        if let Some(mut stream) = self.stream.take() {
            let _ = stream.shutdown().await;
        }
    }
}

async fn send(stream: &mut Option<TcpStream>, options: &SocketOptions, frame: &[u8]) -> std::io::Result<()> {
    if stream.as_ref().is_some_and(|s| !is_open(s)) {
        *stream = None;
    }
    if stream.is_none() {
        let url = format!("tcp://{}:{}", options.host, options.port);
        crate::self_metrics::get().publisher_connections.with_label_values(&[&url]).inc();
        let connect = TcpStream::connect((options.host.as_str(), options.port));
        *stream = Some(tokio::time::timeout(IO_TIMEOUT, connect).await.map_err(|_| timed_out())??);
    }
    let stream = stream.as_mut().expect("connected above");
    let mut framed = Vec::with_capacity(frame.len() + 8);
    framed.extend_from_slice(&(frame.len() as u64).to_le_bytes());
    framed.extend_from_slice(frame);
    tokio::time::timeout(IO_TIMEOUT, stream.write_all(&framed)).await.map_err(|_| timed_out())?
}

/// Whether the peer has not closed the connection. A collector sends nothing back,
/// so a readable end of stream means it hung up: writing now would succeed into the
/// kernel's buffer and be lost. The socket itself is asked (a non-blocking peek), not
/// the runtime's readiness cache, which learns of the hang-up only when its reactor
/// next runs. (A peer that vanished without closing cannot be seen this way; that is
/// TCP's limit, as for Ceilometer's TCP publisher.)
fn is_open(stream: &TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut probe = [0u8; 1];
    // SAFETY: `probe` is a valid buffer of the length given, and the descriptor is the
    // stream's own, open for as long as `stream` is borrowed.
    let read = unsafe {
        libc::recv(stream.as_raw_fd(), probe.as_mut_ptr().cast(), probe.len(), libc::MSG_PEEK | libc::MSG_DONTWAIT)
    };
    match read {
        0 => false,
        n if n > 0 => true,
        _ => std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock,
    }
}

fn timed_out() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out")
}
