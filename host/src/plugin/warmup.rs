//! Compiling plugins ahead of loading them: every file not yet in the cache at once,
//! as many at a time as the machine has cores, each on a thread of its own (which
//! runs the child compiler). The loader waits for them as long as its caller allows
//! (`pollen run`: `agent.compile_wait`); one still compiling then is left out of that
//! load and joins at the next, which the agent asks for when it is done.

use super::cache::ComponentCache;
use super::compiler::{CompileBudget, CompileError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use wasmtime::Engine;

/// A compile that takes longer than this is logged as it goes.
const SLOW: Duration = Duration::from_secs(2);

/// Why a compile ahead failed (kept, so that a file is not compiled again with the
/// same budget until it changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompileFailure {
    /// Past the deadline.
    TimedOut(Duration),
    /// Over the memory budget (bytes).
    OverMemory(u64),
    /// wasmtime refused it.
    Invalid(String),
}

impl From<CompileError> for CompileFailure {
    fn from(error: CompileError) -> Self {
        match error {
            CompileError::TimedOut(timeout) => Self::TimedOut(timeout),
            CompileError::OverMemory(limit) => Self::OverMemory(limit),
            CompileError::Wasmtime(error) => Self::Invalid(format!("{error:#}")),
        }
    }
}

/// One file's compile ahead.
pub struct CompileJob {
    /// The plugin file.
    pub plugin: PathBuf,
    started: Instant,
    outcome: Mutex<Option<Result<(), CompileFailure>>>,
    finished: Condvar,
}

impl CompileJob {
    /// Its outcome, waiting until `deadline` (forever: `None`); `None` if it is still
    /// compiling then.
    pub fn wait_until(&self, deadline: Option<Instant>) -> Option<Result<(), CompileFailure>> {
        let outcome = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
        let outcome = match deadline {
            None => self.finished.wait_while(outcome, |o| o.is_none()).unwrap_or_else(|p| p.into_inner()),
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                self.finished.wait_timeout_while(outcome, left, |o| o.is_none()).unwrap_or_else(|p| p.into_inner()).0
            }
        };
        outcome.clone()
    }

    /// How long it has been compiling (or took).
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn finish(&self, outcome: Result<(), CompileFailure>) {
        *self.outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
        self.finished.notify_all();
    }
}

/// The compiles ahead of one engine, by cache entry and budget.
#[derive(Default)]
pub struct Warmup {
    jobs: Mutex<HashMap<(PathBuf, Duration, u64), Arc<CompileJob>>>,
    /// Compilers running, and the signal that one ended.
    running: Arc<(Mutex<usize>, Condvar)>,
}

impl Warmup {
    /// The job compiling `bytes` (of the file `plugin`) into `cache`, started now
    /// unless one with the same budget runs or ran already; `None` if the bytes are
    /// in the cache (nothing to wait for).
    pub fn start(
        &self,
        engine: &Engine,
        cache: &ComponentCache,
        bytes: Arc<Vec<u8>>,
        budget: CompileBudget,
        plugin: &Path,
    ) -> Option<Arc<CompileJob>> {
        let entry = cache.entry(&bytes);
        let key = (entry.clone(), budget.timeout, budget.memory);
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(job) = jobs.get(&key) {
            return Some(job.clone());
        }
        if entry.exists() {
            return None;
        }
        let job = Arc::new(CompileJob {
            plugin: plugin.to_path_buf(),
            started: Instant::now(),
            outcome: Mutex::new(None),
            finished: Condvar::new(),
        });
        jobs.insert(key, job.clone());
        let (engine, cache, running, run) = (engine.clone(), cache.clone(), self.running.clone(), job.clone());
        let spawned = std::thread::Builder::new().name("pollen-compile-ahead".into()).spawn(move || {
            let _slot = Slot::take(&running);
            let size_mib = bytes.len() as f64 / (1024.0 * 1024.0);
            let reporter = SlowReporter::start(run.clone(), size_mib);
            let outcome = cache.compile_ahead(&engine, &bytes, budget, &run.plugin).map_err(CompileFailure::from);
            drop(reporter);
            if run.elapsed() >= SLOW {
                tracing::info!(plugin = %run.plugin.display(), seconds = run.elapsed().as_secs_f64(), ok = outcome.is_ok(),
                    "compiled a plugin (its native code is cached: the next start reads it in milliseconds)");
            }
            run.finish(outcome);
        });
        if let Err(error) = spawned {
            job.finish(Err(CompileFailure::Invalid(format!("cannot start a compiler thread: {error}"))));
        }
        Some(job)
    }
}

/// One of the machine's cores for a compiler, held until dropped.
struct Slot(Arc<(Mutex<usize>, Condvar)>);

impl Slot {
    fn take(running: &Arc<(Mutex<usize>, Condvar)>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let (count, ended) = &**running;
        let mut count = ended
            .wait_while(count.lock().unwrap_or_else(|p| p.into_inner()), |n| *n >= cores)
            .unwrap_or_else(|p| p.into_inner());
        *count += 1;
        Self(running.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let (count, ended) = &*self.0;
        *count.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        ended.notify_one();
    }
}

/// Says once, after [`SLOW`], that a plugin is still compiling.
struct SlowReporter(Option<std::sync::mpsc::Sender<()>>);

impl SlowReporter {
    fn start(job: Arc<CompileJob>, size_mib: f64) -> Self {
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let _ = std::thread::Builder::new().name("pollen-compile-watch".into()).spawn(move || {
            if finished.recv_timeout(SLOW) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                tracing::info!(plugin = %job.plugin.display(), size_mib = format!("{size_mib:.1}"),
                    "compiling a plugin to native code is taking a while (once per new file; the result is cached)");
            }
        });
        Self(Some(done))
    }
}

impl Drop for SlowReporter {
    fn drop(&mut self) {
        if let Some(done) = self.0.take() {
            let _ = done.send(());
        }
    }
}
