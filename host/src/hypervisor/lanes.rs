//! Per-domain calls kept in flight together on the one connection.
//!
//! Through `libvirtd` each per-domain call is a round trip on the connection's socket.
//! Asked one after the other, every call puts the agent's thread to sleep and wakes
//! the daemon, then the other way round: at ten thousand test-driver domains (about
//! 65,000 calls a cycle) that was most of the agent's CPU. libvirt's client multiplexes
//! the calls of several threads over one connection, so a job's domains are shared
//! among [`LANES`] threads: the daemon's workers answer several at once, and neither
//! side sleeps between most calls. An in-process driver (`test:///…`) gains nothing
//! from it (its calls take one lock and never wait), so it keeps one lane.
//!
//! The lanes' threads are started once per connection and kept ([`Lanes`]), asleep
//! between jobs. Started for each job of 100 domains, as they first were, they made
//! the calls cost half as much again: the 60,000 calls of 10,000 test-driver domains
//! through libvirtd took 1.6–1.7 CPU s on threads started per job of 100, 1.0–1.4 on
//! kept ones (`scripts/libvirt-calls.c`), and the agent's reads alone 1.9–2.05 CPU s a
//! cycle before, 1.4–1.7 after (`docs/benchmarks.md`, session 18).

use std::sync::{mpsc, Arc, OnceLock};

/// Calls in flight at once on a connection to a daemon. libvirtd serves a client's
/// requests with up to `max_client_requests` workers (5 by default) and queues the
/// rest, so a few more than that keep its workers busy.
pub(super) const LANES: usize = 8;

/// How many lanes a connection to `uri` gets: one for libvirt's in-process test
/// driver (`test:///…`), [`LANES`] for everything that goes through a daemon.
pub(super) fn for_uri(uri: &str) -> usize {
    let scheme = uri.split_once(':').map_or(uri, |(scheme, _)| scheme);
    if scheme == "test" {
        1
    } else {
        LANES
    }
}

/// What a lane's thread is given to run.
type Job = Box<dyn FnOnce() + Send>;

/// A connection's lanes: one thread each, started at the first job with more than one
/// item and kept from one job to the next, asleep in between (none for one lane, or
/// when none could be started: then every item runs on the caller's thread).
pub(super) struct Lanes {
    lanes: usize,
    threads: OnceLock<Vec<mpsc::Sender<Job>>>,
}

impl Lanes {
    /// `lanes` lanes; their threads end when it is dropped.
    pub(super) fn new(lanes: usize) -> Self {
        Self { lanes, threads: OnceLock::new() }
    }

    /// The lanes' threads, started on first use.
    fn threads(&self) -> &[mpsc::Sender<Job>] {
        self.threads.get_or_init(|| {
            if self.lanes <= 1 {
                return Vec::new();
            }
            let mut threads = Vec::with_capacity(self.lanes);
            for _ in 0..self.lanes {
                let (jobs, queue) = mpsc::channel::<Job>();
                let started = std::thread::Builder::new().name("libvirt-lane".into()).spawn(move || {
                    for job in queue {
                        // A job that panics costs its own output (its caller sees it
                        // missing), not the lane.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                });
                match started {
                    Ok(_) => threads.push(jobs),
                    Err(error) => {
                        tracing::warn!(%error, "cannot start a libvirt lane's thread; the others share its calls")
                    }
                }
            }
            threads
        })
    }

    /// Runs `work` on every item, the items shared in order among the lanes, and
    /// returns the outputs in the items' order. A lane stops at its first `Err` (e.g.
    /// the connection died); the first lane's error, in the items' order, is returned
    /// once every lane has ended. Panics if `work` panicked.
    pub(super) fn run<I, T, S, F>(&self, items: Vec<I>, work: F) -> Result<Vec<T>, S>
    where
        I: Send + 'static,
        T: Send + 'static,
        S: Send + 'static,
        F: Fn(I) -> Result<T, S> + Send + Sync + 'static,
    {
        let threads = if items.len() > 1 { self.threads() } else { &[] };
        if threads.is_empty() {
            return items.into_iter().map(work).collect();
        }
        let work = Arc::new(work);
        let count = items.len();
        let per_lane = count.div_ceil(threads.len());
        let lanes = count.div_ceil(per_lane);
        let (done, outputs) = mpsc::channel();
        let mut items = items.into_iter();
        for (lane, thread) in threads.iter().enumerate().take(lanes) {
            let group: Vec<I> = items.by_ref().take(per_lane).collect();
            let (work, done) = (work.clone(), done.clone());
            let job: Job = Box::new(move || {
                let output: Result<Vec<T>, S> = group.into_iter().map(|item| work(item)).collect();
                let _ = done.send((lane, output));
            });
            // A lane whose thread is gone: its job runs here.
            if let Err(mpsc::SendError(job)) = thread.send(job) {
                job();
            }
        }
        drop(done);
        let mut by_lane: Vec<Option<Result<Vec<T>, S>>> = (0..lanes).map(|_| None).collect();
        for (lane, output) in outputs {
            by_lane[lane] = Some(output);
        }
        let mut out = Vec::with_capacity(count);
        for output in by_lane {
            out.extend(output.expect("a libvirt lane's job panicked")?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Mutex;
    use std::thread::ThreadId;

    /// Runs `items` in `lanes`, recording the threads that ran them.
    fn run_recording(lanes: &Lanes, items: Vec<u32>) -> (Vec<u32>, HashSet<ThreadId>) {
        let threads = Arc::new(Mutex::new(HashSet::new()));
        let seen = threads.clone();
        let out = lanes
            .run(items, move |item: u32| {
                seen.lock().unwrap().insert(std::thread::current().id());
                Ok::<_, ()>(item * 2)
            })
            .unwrap();
        let threads = threads.lock().unwrap().clone();
        (out, threads)
    }

    #[test]
    fn outputs_keep_the_items_order_and_lanes_keep_their_threads() {
        let lanes = Lanes::new(LANES);
        assert!(lanes.threads.get().is_none(), "no thread before the first job");
        let (out, first) = run_recording(&lanes, (0..103).collect());
        assert_eq!(out, (0..103).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(first.len(), LANES, "each lane on a thread of its own");
        assert!(!first.contains(&std::thread::current().id()), "not on the caller's");
        let (_, second) = run_recording(&lanes, (0..103).collect());
        assert_eq!(first, second, "the next job runs on the same threads: none is started for it");
        let (few, _) = run_recording(&lanes, vec![1, 2]);
        assert_eq!(few, [2, 4], "no more lanes than items");
        assert_eq!(run_recording(&lanes, Vec::new()).0, Vec::<u32>::new());
        let (_, one) = run_recording(&Lanes::new(1), (0..10).collect());
        assert_eq!(one, HashSet::from([std::thread::current().id()]), "one lane runs on the caller's thread");
    }

    #[test]
    fn a_lane_stops_at_its_first_error_and_the_first_error_in_order_is_returned() {
        let done = Arc::new(Mutex::new(Vec::new()));
        let record = done.clone();
        let result = Lanes::new(4).run((0..16).collect(), move |item: u32| {
            if item == 5 || item == 13 {
                return Err(item);
            }
            record.lock().unwrap().push(item);
            Ok(item)
        });
        assert_eq!(result, Err(5));
        let done = done.lock().unwrap().clone();
        assert!(!done.contains(&6) && !done.contains(&14), "a lane goes no further than its error: {done:?}");
        assert!(done.contains(&8) && done.contains(&4), "the other lanes ran: {done:?}");
    }

    #[test]
    fn a_job_that_panics_is_reported_and_its_lane_serves_the_next() {
        let lanes = Lanes::new(2);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            lanes.run((0..4).collect(), |item: u32| if item == 3 { panic!("boom") } else { Ok::<_, ()>(item) })
        }));
        assert!(panicked.is_err(), "the caller learns that a job panicked");
        let (out, threads) = run_recording(&lanes, (0..4).collect());
        assert_eq!(out, [0, 2, 4, 6]);
        assert_eq!(threads.len(), 2, "both lanes still serve");
    }

    #[test]
    fn only_the_in_process_test_driver_keeps_one_lane() {
        assert_eq!(for_uri("test:///default"), 1);
        assert_eq!(for_uri("test:///tmp/node.xml"), 1);
        assert_eq!(for_uri("test+unix:///tmp/node.xml"), LANES);
        assert_eq!(for_uri("qemu:///system"), LANES);
        assert_eq!(for_uri("qemu+ssh://compute-1/system"), LANES);
    }
}
