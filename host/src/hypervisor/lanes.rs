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

use std::sync::Mutex;

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

/// Runs `work` on every item, the items shared in order among up to `lanes` threads
/// (the caller's among them), and returns the outputs in the items' order. A lane
/// stops at its first `Err` (e.g. the connection died); the first lane's error, in the
/// items' order, is returned once every lane has ended. A lane whose thread cannot be
/// started runs on the caller's thread.
pub(super) fn in_lanes<I: Send, T: Send, S: Send>(
    items: Vec<I>,
    lanes: usize,
    work: impl Fn(I) -> Result<T, S> + Sync,
) -> Result<Vec<T>, S> {
    let lanes = lanes.clamp(1, items.len().max(1));
    if lanes == 1 {
        return items.into_iter().map(work).collect();
    }
    let per_lane = items.len().div_ceil(lanes);
    let lanes = items.len().div_ceil(per_lane);
    let mut items = items.into_iter();
    // Each lane's items, taken by the thread that runs it (or by the caller, for a
    // thread that could not be started).
    let groups: Vec<Mutex<Vec<I>>> = (0..lanes).map(|_| Mutex::new(items.by_ref().take(per_lane).collect())).collect();
    let run = |group: &Mutex<Vec<I>>| -> Result<Vec<T>, S> {
        let items = std::mem::take(&mut *group.lock().unwrap_or_else(|p| p.into_inner()));
        items.into_iter().map(&work).collect()
    };
    let outputs: Vec<Result<Vec<T>, S>> = std::thread::scope(|scope| {
        let started: Vec<_> = groups[1..]
            .iter()
            .map(|group| std::thread::Builder::new().name("libvirt-lane".into()).spawn_scoped(scope, || run(group)))
            .collect();
        let mut outputs = vec![run(&groups[0])];
        for (group, thread) in groups[1..].iter().zip(started) {
            outputs.push(match thread {
                Ok(thread) => thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err(_) => run(group),
            });
        }
        outputs
    });
    let mut out = Vec::with_capacity(per_lane * lanes);
    for lane in outputs {
        out.extend(lane?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn outputs_keep_the_items_order_and_lanes_run_on_threads_of_their_own() {
        let threads = Mutex::new(HashSet::new());
        let out = in_lanes((0..103).collect(), LANES, |item: u32| {
            threads.lock().unwrap().insert(std::thread::current().id());
            Ok::<_, ()>(item * 2)
        })
        .unwrap();
        assert_eq!(out, (0..103).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(threads.lock().unwrap().len(), LANES, "each lane on a thread of its own");
        let few = in_lanes(vec![1, 2], LANES, |item: u32| Ok::<_, ()>(item)).unwrap();
        assert_eq!(few, [1, 2], "no more lanes than items");
        assert_eq!(in_lanes(Vec::new(), LANES, |item: u32| Ok::<_, ()>(item)).unwrap(), Vec::<u32>::new());
    }

    #[test]
    fn a_lane_stops_at_its_first_error_and_the_first_error_in_order_is_returned() {
        let done = Mutex::new(Vec::new());
        let result = in_lanes((0..16).collect(), 4, |item: u32| {
            if item == 5 || item == 13 {
                return Err(item);
            }
            done.lock().unwrap().push(item);
            Ok(item)
        });
        assert_eq!(result, Err(5));
        let done = done.into_inner().unwrap();
        assert!(!done.contains(&6) && !done.contains(&14), "a lane goes no further than its error: {done:?}");
        assert!(done.contains(&8) && done.contains(&4), "the other lanes ran: {done:?}");
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
