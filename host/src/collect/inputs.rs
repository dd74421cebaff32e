//! The collector's socket inputs (UDP datagrams, TCP frames): each decodes, verifies
//! and reads what arrives, and hands the samples on; what cannot be taken is counted
//! and skipped. (The AMQP input, which acknowledges, is [`super::amqp`].)

use super::config::Input;
use super::{Arrival, Counters};
use crate::publish::metering::decode;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The largest TCP frame taken, bytes (a metering message is a few KiB).
const MAX_FRAME: u64 = 1 << 20;
/// The UDP receive buffer asked for, bytes.
const UDP_BUFFER: usize = 8 << 20;

/// Binds a socket input's address and starts taking messages.
pub(super) async fn listen(
    kind: Input,
    input: usize,
    out: mpsc::Sender<Arrival>,
    secrets: Arc<Vec<String>>,
    counters: Arc<Counters>,
) -> anyhow::Result<JoinHandle<()>> {
    let (address, udp): (SocketAddr, bool) = match kind {
        Input::Udp(address) => (address, true),
        Input::Tcp(address) => (address, false),
        Input::Amqp(_) => anyhow::bail!("an AMQP input is no socket"),
    };
    let name = format!("{}://{address}", if udp { "udp" } else { "tcp" });
    Ok(if udp {
        let socket = bind_udp(address).map_err(|e| anyhow::anyhow!("cannot listen on {name}: {e}"))?;
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 65_536];
            loop {
                let Ok((length, _peer)) = socket.recv_from(&mut buffer).await else { continue };
                if !take(&buffer[..length], &name, input, &out, &secrets, &counters).await {
                    return;
                }
            }
        })
    } else {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {name}: {e}"))?;
        tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else { continue };
                let (name, out, secrets, counters) = (name.clone(), out.clone(), secrets.clone(), counters.clone());
                tokio::spawn(async move {
                    if let Err(why) = frames(stream, &name, input, &out, &secrets, &counters).await {
                        tracing::warn!(input = %name, %peer, "connection closed: {why}");
                    }
                });
            }
        })
    })
}

/// A UDP socket with a receive buffer of [`UDP_BUFFER`] (as far as the kernel's
/// `net.core.rmem_max` allows): a burst larger than the buffer is lost before the
/// collector sees it, and the buffer is all the memory a flood can take.
fn bind_udp(address: SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(address), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = socket.set_recv_buffer_size(UDP_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    let size = socket.recv_buffer_size().unwrap_or_default();
    if size < UDP_BUFFER {
        tracing::info!(
            bytes = size,
            "udp receive buffer below {UDP_BUFFER} bytes (net.core.rmem_max caps it): a larger burst is lost"
        );
    }
    tokio::net::UdpSocket::from_std(socket.into())
}

/// Reads a connection's frames until it closes or sends one it cannot take.
async fn frames(
    mut stream: tokio::net::TcpStream,
    name: &str,
    input: usize,
    out: &mpsc::Sender<Arrival>,
    secrets: &[String],
    counters: &Counters,
) -> Result<(), String> {
    loop {
        let mut head = [0u8; 8];
        match stream.read_exact(&mut head).await {
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(error) => return Err(error.to_string()),
        }
        let length = u64::from_le_bytes(head);
        if length > MAX_FRAME {
            counters.refuse(name, false, &format!("a frame of {length} bytes (at most {MAX_FRAME})"));
            return Err("a frame over the bound: the stream cannot be followed".into());
        }
        let mut frame = vec![0u8; length as usize];
        stream.read_exact(&mut frame).await.map_err(|e| format!("a frame cut short: {e}"))?;
        if !take(&frame, name, input, out, secrets, counters).await {
            return Ok(());
        }
    }
}

/// Takes one msgpack metering message; false once the collector stopped taking.
async fn take(
    bytes: &[u8],
    name: &str,
    input: usize,
    out: &mpsc::Sender<Arrival>,
    secrets: &[String],
    counters: &Counters,
) -> bool {
    counters.received.fetch_add(1, Ordering::Relaxed);
    let read = decode::from_msgpack(bytes)
        .and_then(|message| decode::verify(&message, secrets).map(|()| message))
        .and_then(decode::into_sample);
    match read {
        Ok(sample) => out.send(Arrival { input, samples: vec![sample], ack: None, alone: false }).await.is_ok(),
        Err(error) => {
            counters.refuse_decoded(name, &error);
            true
        }
    }
}
