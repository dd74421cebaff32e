//! Several central agents sharing the work through Redis (`agent.coordination`), as
//! Ceilometer's agents do through tooz (`[coordination] backend_url`): each agent
//! joins one group per discoverer its partitioned sources use, renews its membership
//! every `heartbeat`, and polls only the resources a consistent hash ring of the
//! group's live members gives it, keyed by each resource's id (never its metadata, so
//! a resource stays with its agent whatever its status).
//!
//! Membership lives in Redis: one sorted set per group, each member scored with the
//! Redis server's time of its last heartbeat (one clock for all agents). A heartbeat
//! renews this agent in every group, drops the members silent for
//! `membership_timeout`, and reads who is left, in one script. A clean stop leaves at
//! once.
//!
//! Until the first heartbeat answers, and for a group it has not joined, an agent
//! polls everything (duplicates rather than gaps). When Redis cannot be reached it
//! keeps the last membership it read, logs and counts the failures and retries with
//! backoff: the others drop it after `membership_timeout` and take its share, while it
//! still polls its own, so its share is polled twice until Redis is back; a member
//! that joined meanwhile is unseen by it (its share overlaps). Nothing is missed as
//! long as every agent reaches Redis or still polls.

mod ring;

pub use ring::{HashRing, VIRTUAL_NODES};

use crate::config::CoordinationSettings;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The heartbeat, in one round trip: renew `ARGV[1]` in every group (`KEYS`), drop
/// the members silent for `ARGV[2]` ms, and return each group's members.
const HEARTBEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local timeout = tonumber(ARGV[2])
local members = {}
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - timeout)
  redis.call('PEXPIRE', key, timeout * 6)
  members[i] = redis.call('ZRANGE', key, 0, -1)
end
return members
";

/// This agent's view of its groups: the ring of each.
#[derive(Debug)]
pub struct Partition {
    member: String,
    rings: RwLock<HashMap<String, HashRing>>,
    /// Heartbeats that failed (Redis unreachable or refusing).
    pub failures: AtomicU64,
    /// Whether the last heartbeat failed.
    failing: AtomicBool,
}

impl Partition {
    /// A view of no group yet (everything is this agent's).
    pub fn new(member: String) -> Self {
        Self { member, rings: RwLock::default(), failures: AtomicU64::new(0), failing: AtomicBool::new(false) }
    }

    /// This agent's member id.
    pub fn member(&self) -> &str {
        &self.member
    }

    /// Whether this agent polls resource `id` of `group` (a discoverer's name, or
    /// `resources` for sources' static ones).
    pub fn owns(&self, group: &str, id: &str) -> bool {
        let rings = self.rings.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        match rings.get(group) {
            Some(ring) => ring.owner(id).is_none_or(|owner| owner == self.member),
            None => true,
        }
    }

    /// The members of `group` as last read, if it was.
    pub fn members(&self, group: &str) -> Option<Vec<String>> {
        let rings = self.rings.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        rings.get(group).map(|ring| ring.members().to_vec())
    }

    /// Takes in what a heartbeat read; logs each group whose members changed.
    fn update(&self, groups: &[String], members: Vec<Vec<String>>) {
        let mut rings = self.rings.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (group, members) in groups.iter().zip(members) {
            let ring = HashRing::new(&members);
            if rings.get(group).is_none_or(|old| old.members() != ring.members()) {
                tracing::info!(group = %group, members = ring.members().len(), member = %self.member,
                    "partition membership changed");
                rings.insert(group.clone(), ring);
            }
        }
    }
}

/// The static resources' group.
pub const STATIC_GROUP: &str = "resources";

/// Why coordination cannot start.
#[derive(Debug, thiserror::Error)]
pub enum CoordinationError {
    /// The backend URL is not one Pollen can use.
    #[error("agent.coordination.backend_url `{url}`: {message}")]
    BackendUrl {
        /// The URL.
        url: String,
        /// What is wrong.
        message: String,
    },
}

/// The membership task of one agent.
pub struct Coordinator {
    partition: Arc<Partition>,
    groups: Arc<Mutex<Vec<String>>>,
    backend: Arc<Backend>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Redis, and how this agent speaks to it.
struct Backend {
    client: redis::Client,
    prefix: String,
    heartbeat: Duration,
    timeout: Duration,
    connection: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    script: redis::Script,
}

impl Backend {
    fn key(&self, group: &str) -> String {
        format!("{}:group:{group}", self.prefix)
    }

    /// The connection in `slot`, made first if there is none.
    async fn connected<'c>(
        &self,
        slot: &'c mut Option<redis::aio::MultiplexedConnection>,
    ) -> Result<&'c mut redis::aio::MultiplexedConnection, String> {
        if slot.is_none() {
            *slot = Some(self.client.get_multiplexed_async_connection().await.map_err(|e| e.to_string())?);
        }
        Ok(slot.as_mut().expect("connected above"))
    }

    /// One round trip, within a heartbeat's time (else it counts as failed).
    async fn beat(&self, member: &str, groups: &[String]) -> Result<Vec<Vec<String>>, String> {
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let mut connection = self.connection.lock().await;
        let attempt = async {
            let conn = self.connected(&mut connection).await?;
            let mut invocation = self.script.prepare_invoke();
            for group in groups {
                invocation.key(self.key(group));
            }
            invocation.arg(member).arg(self.timeout.as_millis() as u64);
            invocation.invoke_async::<Vec<Vec<String>>>(conn).await.map_err(|e| e.to_string())
        };
        let bound = self.heartbeat.max(Duration::from_secs(1));
        let result = match tokio::time::timeout(bound, attempt).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {bound:?}")),
        };
        if result.is_err() {
            // A fresh connection next time.
            *connection = None;
        }
        result
    }

    async fn leave(&self, member: &str, groups: &[String]) -> Result<(), String> {
        let mut connection = self.connection.lock().await;
        let conn = self.connected(&mut connection).await?;
        let mut pipe = redis::pipe();
        for group in groups {
            pipe.cmd("ZREM").arg(self.key(group)).arg(member).ignore();
        }
        pipe.query_async::<()>(conn).await.map_err(|e| e.to_string())
    }
}

impl Coordinator {
    /// Starts the heartbeat of this agent (not in any group yet: see [`Coordinator::join`]).
    pub fn start(settings: &CoordinationSettings) -> Result<Self, CoordinationError> {
        let client = redis::Client::open(settings.backend_url.as_str())
            .map_err(|e| CoordinationError::BackendUrl { url: settings.backend_url.clone(), message: e.to_string() })?;
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        let member = format!("{host}-{}-{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let backend = Arc::new(Backend {
            client,
            prefix: settings.group_prefix.clone(),
            heartbeat: settings.heartbeat(),
            timeout: settings.membership_timeout(),
            connection: tokio::sync::Mutex::new(None),
            script: redis::Script::new(HEARTBEAT),
        });
        let partition = Arc::new(Partition::new(member));
        let groups = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(heartbeats(backend.clone(), partition.clone(), groups.clone(), stopped));
        tracing::info!(member = %partition.member(), backend = %settings.backend_url, "coordination started");
        Ok(Self { partition, groups, backend, stop, task })
    }

    /// The view the partitioned sources poll by.
    pub fn partition(&self) -> Arc<Partition> {
        self.partition.clone()
    }

    /// Takes part in `groups` (and no others): joins them now, waiting for one
    /// heartbeat (at most its bound), so that the first cycle polls only this agent's
    /// share; leaves the groups no longer named.
    pub async fn join(&self, groups: BTreeSet<String>) {
        let groups: Vec<String> = groups.into_iter().collect();
        let left: Vec<String> = {
            let mut current = self.groups.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let left = current.iter().filter(|g| !groups.contains(g)).cloned().collect();
            current.clone_from(&groups);
            left
        };
        if !left.is_empty() {
            if let Err(error) = self.backend.leave(self.partition.member(), &left).await {
                tracing::warn!(%error, groups = ?left, "cannot leave the groups no longer polled; they drop this agent after membership_timeout");
            }
        }
        beat_once(&self.backend, &self.partition, &groups).await;
    }

    /// Stops the heartbeat and leaves every group at once.
    pub async fn leave(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let groups = self.groups.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        match self.backend.leave(self.partition.member(), &groups).await {
            Ok(()) => tracing::info!(member = %self.partition.member(), "left the partition groups"),
            Err(error) => {
                tracing::warn!(%error, "cannot leave the partition groups; the others drop this agent after membership_timeout")
            }
        }
    }
}

/// One heartbeat: the view updated, or the failure counted and logged.
async fn beat_once(backend: &Backend, partition: &Partition, groups: &[String]) -> bool {
    match backend.beat(partition.member(), groups).await {
        Ok(members) => {
            if partition.failing.swap(false, Ordering::Relaxed) {
                tracing::info!(
                    failures = partition.failures.load(Ordering::Relaxed),
                    "coordination backend reachable again"
                );
            }
            partition.update(groups, members);
            true
        }
        Err(error) => {
            partition.failing.store(true, Ordering::Relaxed);
            let failures = partition.failures.fetch_add(1, Ordering::Relaxed) + 1;
            if failures == 1 || failures.is_power_of_two() {
                tracing::warn!(%error, failures,
                    "coordination backend unreachable: the last membership read is kept (this agent's share may be polled twice, or a new member's overlapped, until it is back)");
            }
            false
        }
    }
}

/// Renews the membership every heartbeat until stopped; after a failure, waits twice
/// as long each time (up to `membership_timeout`), then back to the heartbeat.
async fn heartbeats(
    backend: Arc<Backend>,
    partition: Arc<Partition>,
    groups: Arc<Mutex<Vec<String>>>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut delay = backend.heartbeat;
    loop {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stopped.changed() => return,
        }
        let current = groups.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        delay = if beat_once(&backend, &partition, &current).await {
            backend.heartbeat
        } else {
            (delay * 2).min(backend.timeout.max(backend.heartbeat))
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_group_is_all_this_agent_s() {
        let partition = Partition::new("me".into());
        assert!(partition.owns("images", "anything"));
        partition.update(&["images".into()], vec![vec!["me".into(), "other".into()]]);
        let mine = (0..1000).filter(|i| partition.owns("images", &format!("image-{i}"))).count();
        assert!((350..=650).contains(&mine), "{mine}");
        assert!(partition.owns("volumes", "v"));
        partition.update(&["images".into()], vec![vec!["other".into()]]);
        assert!(!partition.owns("images", "image-1"));
        assert_eq!(partition.members("images"), Some(vec!["other".to_string()]));
    }
}
