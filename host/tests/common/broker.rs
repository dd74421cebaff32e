//! RabbitMQ for the tests: a proxy in front of it that a test cuts and restores, so that
//! the broker goes away for one client only (the real one stays up for the others).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};

/// Where the broker listens.
pub const BROKER: &str = "127.0.0.1:5672";

/// A TCP proxy to the broker that the test can cut and restore.
pub struct BrokerProxy {
    /// The port it listens on.
    pub port: u16,
    up: Arc<AtomicBool>,
    /// Connections refused while cut.
    pub refused: Arc<std::sync::atomic::AtomicUsize>,
    links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl BrokerProxy {
    /// Listens on a free port, forwarding to the broker.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let refused: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let (accept_up, accept_links, accept_refused) = (up.clone(), links.clone(), refused.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accept_up.load(Ordering::SeqCst) {
                    accept_refused.fetch_add(1, Ordering::SeqCst);
                    continue; // dropped: the connection is refused as soon as it opens
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut broker) = TcpStream::connect(BROKER).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
                    }
                });
                accept_links.lock().unwrap().push(link);
            }
        });
        Self { port, up, links, refused }
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}
