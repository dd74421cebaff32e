//! The libvirt connection, owned by one thread of its own that runs every call, so
//! that a caller can stop waiting: a call that does not return within the timeout
//! fails with [`HypervisorError::Timeout`], and while it is still stuck (a frozen
//! `libvirtd`) every other call fails at once instead of queueing behind it. A lost
//! connection is re-opened on demand, with exponential backoff between attempts.
//! Opening has a bound of its own ([`Connection::new`]'s `open_timeout`): a daemon
//! loading a large node file takes seconds to accept a connection, and then answers
//! each call within the call timeout.

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
    open_timeout: Duration,
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

/// What the thread is doing while it opens the connection.
const OPENING: &str = "virConnectOpen";

/// The thread's side: the open connection, if any, and when to try again.
pub(super) struct Link {
    uri: String,
    connection: Option<Connect>,
    next_attempt: Instant,
    backoff: backon::ExponentialBackoff,
    /// Where it says what it runs.
    busy: Arc<Busy>,
}

impl Connection {
    /// Starts the thread for `uri`; nothing is opened until the first call. A call
    /// may take `timeout`, opening the connection `open_timeout` more.
    pub fn new(uri: &str, timeout: Duration, open_timeout: Duration) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let busy = Arc::new(Busy::default());
        let mut link = Link {
            uri: uri.to_string(),
            connection: None,
            next_attempt: Instant::now(),
            backoff: crate::publish::reconnect_backoff(),
            busy: busy.clone(),
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
        Self {
            uri: uri.to_string(),
            timeout,
            open_timeout,
            jobs: Mutex::new(Some(jobs)),
            busy,
            ended: Mutex::new(ended),
        }
    }

    /// Runs `f` on the open connection (opening it first if needed) and waits for it
    /// up to the timeout. A call that fails on a dead connection drops it; the next
    /// call re-opens it, after the backoff.
    pub fn call<T: Send + 'static>(
        &self,
        call: &'static str,
        f: impl FnOnce(&Connect) -> Result<T, virt::error::Error> + Send + 'static,
    ) -> Result<T, HypervisorError> {
        let started = Instant::now();
        let result = self.call_waiting(call, f);
        let metrics = crate::self_metrics::get();
        if metrics.enabled() {
            metrics.libvirt_calls.with_label_values(&[call]).inc();
            metrics.libvirt_call_seconds.with_label_values(&[call]).observe(started.elapsed().as_secs_f64());
            if result.is_err() {
                metrics.libvirt_errors.with_label_values(&[call]).inc();
            }
        }
        result
    }

    /// [`Connection::call`] itself.
    fn call_waiting<T: Send + 'static>(
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
        let job_abandoned = abandoned.clone();
        let job: Job = Box::new(move |link: &mut Link| {
            if job_abandoned.load(Ordering::Relaxed) {
                return;
            }
            let _ = reply.send(link.run(call, f));
        });
        let sent = self.jobs.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|jobs| jobs.send(job));
        if !matches!(sent, Some(Ok(()))) {
            return Err(HypervisorError::Connect {
                uri: self.uri.clone(),
                message: "the libvirt thread is gone".into(),
            });
        }
        let asked = Instant::now();
        let mut wait = self.timeout;
        loop {
            match answer.recv_timeout(wait) {
                Ok(result) => return result,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    // While the thread opens the connection, or has just begun a call
                    // after opening it, each has its own bound.
                    let running = *self.busy.call.lock().unwrap_or_else(|p| p.into_inner());
                    let left = running.and_then(|(what, since)| self.bound_of(what).checked_sub(since.elapsed()));
                    if let Some(left) = left.filter(|left| !left.is_zero()) {
                        wait = left;
                        continue;
                    }
                    abandoned.store(true, Ordering::Relaxed);
                    let (what, after) =
                        running.map_or((call, asked.elapsed()), |(what, since)| (what, since.elapsed()));
                    return Err(HypervisorError::Timeout { call: what, uri: self.uri.clone(), after });
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(HypervisorError::Connect {
                        uri: self.uri.clone(),
                        message: "the libvirt thread is gone".into(),
                    })
                }
            }
        }
    }

    /// How long the thread may spend on `what`: opening, or a call.
    fn bound_of(&self, what: &str) -> Duration {
        if what == OPENING {
            self.open_timeout
        } else {
            self.timeout
        }
    }

    /// The call the thread has been running for longer than its bound, if any.
    fn stuck(&self) -> Option<(&'static str, Instant)> {
        let busy = *self.busy.call.lock().unwrap_or_else(|p| p.into_inner());
        busy.filter(|(what, since)| since.elapsed() > self.bound_of(what))
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
        if self.connection.is_none() {
            self.say(OPENING);
        }
        let busy = self.busy.clone();
        let connection = self.open()?;
        *busy.call.lock().unwrap_or_else(|p| p.into_inner()) = Some((call, Instant::now()));
        let result = f(connection);
        if result.is_err() && !connection.is_alive().unwrap_or(false) {
            tracing::warn!(uri = %self.uri, call, "the libvirt connection is lost; re-opening it");
            self.close();
            self.next_attempt = Instant::now();
        }
        result.map_err(|e| HypervisorError::from_libvirt(call, &self.uri, e))
    }

    /// Says what the thread runs from now.
    fn say(&self, what: &'static str) {
        *self.busy.call.lock().unwrap_or_else(|p| p.into_inner()) = Some((what, Instant::now()));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A daemon that accepts the connection and never answers: the first call waits
    /// for the open's own bound, not the call's, and says it was opening; the next one
    /// fails at once while the open is stuck.
    #[test]
    fn opening_has_a_bound_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("silent.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                held.push(stream);
            }
        });
        let uri = format!("qemu+unix:///system?socket={}", socket.display());
        let connection = Connection::new(&uri, Duration::from_millis(300), Duration::from_secs(2));
        let started = Instant::now();
        let first = connection.call("virConnectListAllDomains", |c| c.list_all_domains(0).map(|d| d.len()));
        let took = started.elapsed();
        match first {
            Err(HypervisorError::Timeout { call, .. }) => assert_eq!(call, OPENING),
            other => panic!("expected the open to time out, got {other:?}"),
        }
        assert!(took >= Duration::from_secs(2), "the open had its own bound, not the call's: {took:?}");
        let started = Instant::now();
        let second = connection.call("virConnectListAllDomains", |c| c.list_all_domains(0).map(|d| d.len()));
        assert!(matches!(second, Err(HypervisorError::Timeout { .. })), "{second:?}");
        assert!(started.elapsed() < Duration::from_secs(1), "fails at once while the open is stuck");
        std::mem::forget(connection);
    }
}
