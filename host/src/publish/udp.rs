//! `udp://host[:port]`: each sample as one msgpack-encoded, signed metering message per
//! datagram, as Ceilometer's UDP publisher sends them (default port 4952; IPv4 and
//! IPv6, e.g. `udp://[::1]:4952`).

use super::options::SocketOptions;
use super::{Batch, Delivery, PublishError, Publisher};
use std::net::SocketAddr;
use tokio::net::UdpSocket;

/// Ceilometer's default UDP port.
pub const DEFAULT_PORT: u16 = 4952;

/// Sends one datagram per sample.
pub struct UdpPublisher {
    url: String,
    options: SocketOptions,
    secret: String,
    socket: Option<(UdpSocket, SocketAddr)>,
}

impl UdpPublisher {
    /// A publisher; the address is resolved and the socket opened on first use.
    pub fn new(url: &str, options: SocketOptions, secret: String) -> Self {
        Self { url: url.into(), options, secret, socket: None }
    }

    async fn socket(&mut self) -> std::io::Result<&(UdpSocket, SocketAddr)> {
        if self.socket.is_none() {
            let target = self.options.resolve().await?.into_iter().next().ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("`{}` resolves to no address", self.options.host),
                )
            })?;
            let local: SocketAddr =
                if target.is_ipv6() { "[::]:0".parse() } else { "0.0.0.0:0".parse() }.expect("literal addresses parse");
            self.socket = Some((UdpSocket::bind(local).await?, target));
        }
        Ok(self.socket.as_ref().expect("opened above"))
    }
}

impl Publisher for UdpPublisher {
    async fn publish(&mut self, batch: &Batch) -> Result<Delivery, PublishError> {
        let url = self.url.clone();
        let mut delivery = Delivery::default();
        for part in batch.chunks() {
            let messages = super::metering::msgpack_messages(&part, &self.secret);
            let (socket, target) =
                self.socket().await.map_err(|source| PublishError::Io { url: url.clone(), source })?;
            for message in &messages {
                match socket.send_to(message, *target).await {
                    Ok(_) => delivery.sent += 1,
                    Err(error) => {
                        tracing::warn!(publisher = %url, %error, "datagram not sent");
                        delivery.dropped += 1;
                    }
                }
            }
        }
        Ok(delivery)
    }

    async fn flush(&mut self) -> Result<Delivery, PublishError> {
        Ok(Delivery::default())
    }
}
