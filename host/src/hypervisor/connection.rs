//! The libvirt connection, owned by one thread of its own that runs every call, so
//! that a caller can stop waiting: a call that does not return within the timeout
//! fails with [`HypervisorError::Timeout`], and while it is still stuck (a frozen
//! `libvirtd`) every other call fails at once instead of queueing behind it. A lost
//! connection is re-opened on demand, with exponential backoff between attempts.

use super::HypervisorError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use virt::connect::Connect;

/// A call waiting for the connection's thread.
type Job = Box<dyn FnOnce(&mut Link) + Send>;

/// The handle callers use; the thread ends when it is dropped.
pub(super) struct Connection {
    uri: String,
    timeout: Duration,
    /// `None` once dropping.
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    busy: Arc<Busy>,
    /// Says when the thread has closed the connection and ended.
    ended: Mutex<mpsc::Receiver<()>>,
}

/// How long dropping waits for the thread to close the connection: libvirt must not
/// be torn down by the process's exit while the thread still uses it.
const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// Which call the thread is running, since when; whether that was logged as stuck.
#[derive(Default)]
struct Busy {
    call: Mutex<Option<(&'static str, Instant)>>,
    reported: AtomicBool,
}

/// The thread's side: the open connection, if any, and when to try again.
pub(super) struct Link {
    uri: String,
    connection: Option<Connect>,
    next_attempt: Instant,
    backoff: backon::ExponentialBackoff,
}

impl Connection {
    /// Starts the thread for `uri`; nothing is opened until the first call.
    pub fn new(uri: &str, timeout: Duration) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let busy = Arc::new(Busy::default());
        let mut link = Link {
            uri: uri.to_string(),
            connection: None,
            next_attempt: Instant::now(),
            backoff: crate::publish::reconnect_backoff(),
        };
        let thread_busy = busy.clone();
        let (end, ended) = mpsc::channel();
        let spawned = std::thread::Builder::new().name("libvirt".into()).spawn(move || {
            for job in queue {
                job(&mut link);
                *thread_busy.call.lock().unwrap_or_else(|p| p.into_inner()) = None;
                thread_busy.reported.store(false, Ordering::Relaxed);
            }
            link.close();
            let _ = end.send(());
        });
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start the libvirt thread; every hypervisor call will fail");
        }
        Self { uri: uri.to_string(), timeout, jobs: Mutex::new(Some(jobs)), busy, ended: Mutex::new(ended) }
    }

    /// Runs `f` on the open connection (opening it first if needed) and waits for it
    /// up to the timeout. A call that fails on a dead connection drops it; the next
    /// call re-opens it, after the backoff.
    pub fn call<T: Send + 'static>(
        &self,
        call: &'static str,
        f: impl FnOnce(&Connect) -> Result<T, virt::error::Error> + Send + 'static,
    ) -> Result<T, HypervisorError> {
        if let Some((stuck, since)) = self.stuck() {
            if !self.busy.reported.swap(true, Ordering::Relaxed) {
                tracing::warn!(uri = %self.uri, call = stuck, waited_ms = since.elapsed().as_millis() as u64,
                    "libvirt is not answering; hypervisor calls fail until it does");
            }
            return Err(HypervisorError::Timeout { call: stuck, uri: self.uri.clone(), after: since.elapsed() });
        }
        let (reply, answer) = mpsc::sync_channel(1);
        let abandoned = Arc::new(AtomicBool::new(false));
        let (job_abandoned, busy) = (abandoned.clone(), self.busy.clone());
        let job: Job = Box::new(move |link: &mut Link| {
            if job_abandoned.load(Ordering::Relaxed) {
                return;
            }
            *busy.call.lock().unwrap_or_else(|p| p.into_inner()) = Some((call, Instant::now()));
            let _ = reply.send(link.run(call, f));
        });
        let sent = self.jobs.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|jobs| jobs.send(job));
        if !matches!(sent, Some(Ok(()))) {
            return Err(HypervisorError::Connect {
                uri: self.uri.clone(),
                message: "the libvirt thread is gone".into(),
            });
        }
        match answer.recv_timeout(self.timeout) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                abandoned.store(true, Ordering::Relaxed);
                Err(HypervisorError::Timeout { call, uri: self.uri.clone(), after: self.timeout })
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(HypervisorError::Connect { uri: self.uri.clone(), message: "the libvirt thread is gone".into() })
            }
        }
    }

    /// The call the thread has been running for longer than the timeout, if any.
    fn stuck(&self) -> Option<(&'static str, Instant)> {
        let busy = *self.busy.call.lock().unwrap_or_else(|p| p.into_inner());
        busy.filter(|(_, since)| since.elapsed() > self.timeout)
    }
}

impl Drop for Connection {
    /// Ends the thread and waits (a little) for it to close the connection.
    fn drop(&mut self) {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        let ended = self.ended.lock().unwrap_or_else(|p| p.into_inner()).recv_timeout(CLOSE_WAIT);
        if ended.is_err() && self.stuck().is_some() {
            tracing::warn!(uri = %self.uri, "libvirt is not answering; leaving its connection open");
        }
    }
}

impl Link {
    fn run<T>(
        &mut self,
        call: &'static str,
        f: impl FnOnce(&Connect) -> Result<T, virt::error::Error>,
    ) -> Result<T, HypervisorError> {
        let connection = self.open()?;
        let result = f(connection);
        if result.is_err() && !connection.is_alive().unwrap_or(false) {
            tracing::warn!(uri = %self.uri, call, "the libvirt connection is lost; re-opening it");
            self.close();
            self.next_attempt = Instant::now();
        }
        result.map_err(|e| HypervisorError::from_libvirt(call, &self.uri, e))
    }

    /// The open connection, opening it if the backoff allows.
    fn open(&mut self) -> Result<&Connect, HypervisorError> {
        if self.connection.is_none() {
            let now = Instant::now();
            if now < self.next_attempt {
                let wait = self.next_attempt - now;
                return Err(HypervisorError::Connect {
                    uri: self.uri.clone(),
                    message: format!("not connected; next attempt in {} ms", wait.as_millis()),
                });
            }
            match Connect::open(Some(&self.uri)) {
                Ok(connection) => {
                    self.backoff = crate::publish::reconnect_backoff();
                    tracing::info!(uri = %self.uri, "connected to the hypervisor");
                    self.connection = Some(connection);
                }
                Err(error) => {
                    let delay = self.backoff.next().unwrap_or(Duration::from_secs(30));
                    self.next_attempt = Instant::now() + delay;
                    tracing::warn!(uri = %self.uri, %error, retry_in_ms = delay.as_millis() as u64, "cannot connect to the hypervisor");
                    return Err(HypervisorError::Connect { uri: self.uri.clone(), message: error.to_string() });
                }
            }
        }
        Ok(self.connection.as_ref().expect("opened above"))
    }

    fn close(&mut self) {
        if let Some(mut connection) = self.connection.take() {
            let _ = connection.close();
        }
    }
}
