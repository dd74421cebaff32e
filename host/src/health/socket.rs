//! The heartbeat socket, as Ceilometer serves it (`[polling] heartbeat_socket_dir`,
//! `ceilometer/polling/manager.py`'s `AgentHeartBeatManager`): a Unix socket
//! `ceilometer-<namespaces>.socket` that answers each connection with one line per
//! pollster, `<name> <time it last started>`, and closes it. A client that first
//! sends [`STATUS_REQUEST`] gets the whole [`Status`](super::Status) in JSON instead
//! (`pollen status`).

use super::Health;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// What `pollen status` sends, on a line of its own.
pub const STATUS_REQUEST: &str = "status";

/// How long a connection may take to ask for the status before it gets the heartbeat
/// lines (Ceilometer's clients send nothing).
const ASKING: Duration = Duration::from_millis(200);

/// The socket's path: `<dir>/ceilometer-<namespaces, sorted, joined by ->.socket`.
pub fn socket_path(dir: &Path, namespaces: &[String]) -> PathBuf {
    let mut namespaces = namespaces.to_vec();
    namespaces.sort();
    dir.join(format!("ceilometer-{}.socket", namespaces.join("-")))
}

/// Listens on `path` (a stale socket file there is replaced) and answers until the
/// runtime stops.
pub async fn serve_socket(path: PathBuf, health: Arc<Health>) -> std::io::Result<()> {
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path).map_err(|error| {
        std::io::Error::new(error.kind(), format!("cannot open the heartbeat socket {}: {error}", path.display()))
    })?;
    tracing::info!(socket = %path.display(), "heartbeat socket listening");
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "heartbeat socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let health = health.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut line = String::new();
                let asked = tokio::time::timeout(ASKING, BufReader::new(read).read_line(&mut line)).await;
                let answer = match asked {
                    Ok(Ok(_)) if line.trim() == STATUS_REQUEST => {
                        serde_json::to_string(&health.status()).unwrap_or_default() + "\n"
                    }
                    _ => health.heartbeat_lines(),
                };
                let _ = write.write_all(answer.as_bytes()).await;
                let _ = write.shutdown().await;
            });
        }
    });
    Ok(())
}
