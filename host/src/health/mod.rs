//! What the agent says of itself while it runs: Ceilometer's heartbeat socket
//! (`[polling] heartbeat_socket_dir`: one line per pollster with the time it last
//! started), the fuller status `pollen status` reads from the same socket (each
//! pollster's last success and error and samples of the last cycle, each publisher's
//! queue and last error, this agent's share of each partitioned group), and the
//! `/healthz` and `/readyz` answers of the Prometheus endpoint.

mod socket;

pub use socket::{serve_socket, socket_path, STATUS_REQUEST};

use crate::coordination::Partition;
use crate::pipeline::cycle::CycleOutput;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// An instant as Ceilometer's heartbeat writes it: UTC, ISO 8601, no zone.
fn ceilometer_time(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at).format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// An instant as `pollen status` shows it: RFC 3339, UTC, milliseconds.
pub(crate) fn iso(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// One pollster's record.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PollsterStatus {
    /// When a cycle last polled it without a failed call.
    pub last_success: Option<String>,
    /// When a call of it last failed, and why.
    pub last_error: Option<(String, String)>,
    /// Samples it gave in its last cycle.
    pub samples_last_cycle: usize,
}

/// One polling task's record (the sources of one interval).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TaskStatus {
    /// Cycles finished (`pollen_cycles_total` of its interval).
    pub cycles: u64,
    /// When the last one finished.
    pub last_finished: Option<String>,
    /// When the one in progress started, if one is.
    pub running_since: Option<String>,
    #[serde(skip)]
    started: Option<SystemTime>,
    #[serde(skip)]
    finished: Option<SystemTime>,
}

/// One publisher's record.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PublisherStatus {
    /// Its sink.
    pub sink: String,
    /// Its URL, credentials cut.
    pub url: String,
    /// Samples in its queue now.
    pub queued: u64,
    /// Samples it holds to send again (a broker or server away).
    pub held: u64,
    /// Samples sent, and given up on, since start.
    pub published: u64,
    /// Likewise.
    pub dropped: u64,
    /// When it last sent samples.
    pub last_success: Option<String>,
    /// When it last failed, and why.
    pub last_error: Option<(String, String)>,
}

/// This agent's part in one partitioned group.
#[derive(Debug, Clone, Serialize)]
pub struct GroupStatus {
    /// The group (a discoverer).
    pub group: String,
    /// Its live members, as last read.
    pub members: usize,
    /// This agent's share of the ring (1 / members).
    pub share: f64,
}

/// Everything `pollen status` prints.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// When the agent started.
    pub started: String,
    /// Whether it is ready (see [`Health::readiness`]), and if not, why.
    pub ready: bool,
    /// What keeps it from being ready.
    pub not_ready: Vec<String>,
    /// By interval, seconds.
    pub tasks: BTreeMap<u64, TaskStatus>,
    /// By pollster plugin.
    pub pollsters: BTreeMap<String, PollsterStatus>,
    /// Every publisher.
    pub publishers: Vec<PublisherStatus>,
    /// With coordination: this agent's member id.
    pub member: Option<String>,
    /// With coordination: its groups.
    pub groups: Vec<GroupStatus>,
    /// With coordination: heartbeats that failed.
    pub coordination_failures: u64,
}

/// What the schedule, the cycles and the publishers tell of the running agent.
pub struct Health {
    started: SystemTime,
    state: Mutex<State>,
    partition: Mutex<Option<Arc<Partition>>>,
    publishers: Mutex<Option<PublisherReport>>,
}

/// Reads the publishers' records when asked.
type PublisherReport = Box<dyn Fn() -> Vec<PublisherStatus> + Send + Sync>;

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health").field("started", &self.started).finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct State {
    /// Ceilometer's heartbeat: by meter, when its polling last started.
    meters: BTreeMap<String, SystemTime>,
    pollsters: BTreeMap<String, PollsterStatus>,
    tasks: BTreeMap<u64, TaskStatus>,
    /// The partitioned groups this agent takes part in.
    groups: Vec<String>,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    /// A record of an agent starting now.
    pub fn new() -> Self {
        Self {
            started: SystemTime::now(),
            state: Mutex::default(),
            partition: Mutex::default(),
            publishers: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The polling tasks of a (new) configuration: their intervals.
    pub fn tasks(&self, intervals: impl IntoIterator<Item = u64>) {
        let mut state = self.state();
        let intervals: Vec<u64> = intervals.into_iter().collect();
        state.tasks.retain(|interval, _| intervals.contains(interval));
        for interval in intervals {
            state.tasks.entry(interval).or_default();
        }
    }

    /// Coordination's view and groups, to report this agent's shares.
    pub fn coordination(&self, partition: Arc<Partition>, groups: Vec<String>) {
        *self.partition.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(partition);
        self.state().groups = groups;
    }

    /// A cycle of `interval` starts, polling `meters`.
    pub fn cycle_started(&self, interval: u64, meters: impl IntoIterator<Item = String>) {
        let now = SystemTime::now();
        let mut state = self.state();
        for meter in meters {
            state.meters.insert(meter, now);
        }
        let task = state.tasks.entry(interval).or_default();
        task.started = Some(now);
        task.running_since = Some(iso(now));
    }

    /// A cycle of `interval` ended with `output`.
    pub fn cycle_done(&self, interval: u64, output: &CycleOutput) {
        let now = SystemTime::now();
        let mut state = self.state();
        let mut failed: BTreeMap<&str, String> = BTreeMap::new();
        for failure in &output.failures {
            failed.entry(failure.plugin()).or_insert_with(|| failure.to_string());
        }
        for (pollster, samples) in &output.per_pollster {
            let record = state.pollsters.entry(pollster.clone()).or_default();
            record.samples_last_cycle = *samples;
            match failed.get(pollster.as_str()) {
                Some(error) => record.last_error = Some((iso(now), error.clone())),
                None => record.last_success = Some(iso(now)),
            }
        }
        let task = state.tasks.entry(interval).or_default();
        task.finished = Some(now);
        task.last_finished = Some(iso(now));
        task.started = None;
        task.running_since = None;
    }

    /// How to read the publishers' records (those of the running configuration).
    pub fn report_publishers(&self, report: impl Fn() -> Vec<PublisherStatus> + Send + Sync + 'static) {
        *self.publishers.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Box::new(report));
    }

    fn publisher_statuses(&self) -> Vec<PublisherStatus> {
        let report = self.publishers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        report.as_ref().map(|report| report()).unwrap_or_default()
    }

    /// Ceilometer's heartbeat report: `<pollster> <time it last started>` per line.
    pub fn heartbeat_lines(&self) -> String {
        let state = self.state();
        state
            .meters
            .iter()
            .map(|(meter, at)| format!("{meter} {}", ceilometer_time(*at)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Whether the agent is ready, and if not, why: the configuration loaded (it runs),
    /// each polling task's last cycle finished (one has, and none is overdue past
    /// twice its interval), and every publisher connected (none holds samples to send
    /// again, none failed since it last succeeded).
    pub fn readiness(&self) -> Vec<String> {
        let now = SystemTime::now();
        let publishers = self.publisher_statuses();
        let state = self.state();
        let mut reasons = Vec::new();
        for (interval, task) in &state.tasks {
            if task.finished.is_none() {
                reasons.push(format!("the {interval} s task has not finished a cycle yet"));
            }
            if let Some(started) = task.started {
                let running = now.duration_since(started).unwrap_or_default();
                if running.as_secs() > 2 * interval {
                    reasons.push(format!("the {interval} s task's cycle has run for {} s", running.as_secs()));
                }
            }
        }
        for publisher in &publishers {
            if publisher.held > 0 {
                reasons.push(format!(
                    "publisher {} cannot reach its peer: it holds {} samples to send again",
                    publisher.url, publisher.held
                ));
                continue;
            }
            let failed_last = match (&publisher.last_error, &publisher.last_success) {
                (Some((error_at, _)), Some(success_at)) => error_at > success_at,
                (Some(_), None) => true,
                _ => false,
            };
            if failed_last {
                let why = publisher.last_error.as_ref().map(|(_, why)| why.as_str()).unwrap_or_default();
                reasons.push(format!("publisher {} failed: {why}", publisher.url));
            }
        }
        reasons
    }

    /// Everything, for `pollen status`.
    pub fn status(&self) -> Status {
        let not_ready = self.readiness();
        let publishers = self.publisher_statuses();
        let partition = self.partition.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let state = self.state();
        let groups = match &partition {
            Some(partition) => state
                .groups
                .iter()
                .map(|group| {
                    let members = partition.members(group).map_or(0, |m| m.len());
                    let share = if members == 0 { 1.0 } else { 1.0 / members as f64 };
                    GroupStatus { group: group.clone(), members, share }
                })
                .collect(),
            None => Vec::new(),
        };
        Status {
            started: iso(self.started),
            ready: not_ready.is_empty(),
            not_ready,
            // Cycles are counted once, by the metrics `/metrics` serves.
            tasks: state
                .tasks
                .iter()
                .map(|(interval, task)| {
                    let cycles = crate::self_metrics::get().cycles.with_label_values(&[&interval.to_string()]).get();
                    (*interval, TaskStatus { cycles, ..task.clone() })
                })
                .collect(),
            pollsters: state.pollsters.clone(),
            publishers,
            member: partition.as_ref().map(|p| p.member().to_string()),
            groups,
            coordination_failures: partition.map_or(0, |p| p.failures.load(std::sync::atomic::Ordering::Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heartbeat_is_ceilometer_s_and_readiness_says_why() {
        let health = Health::new();
        health.tasks([60]);
        assert_eq!(health.readiness(), ["the 60 s task has not finished a cycle yet"]);
        health.cycle_started(60, ["cpu".to_string(), "memory.usage".to_string()]);
        let lines = health.heartbeat_lines();
        let lines: Vec<&str> = lines.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("cpu 20") && lines[1].starts_with("memory.usage 20"), "{lines:?}");
        // `2026-12-01T21:22:30.123456`: Python's isoformat() of a naive UTC time.
        let time = lines[0].split_once(' ').unwrap().1;
        assert_eq!(time.len(), 26, "{time}");
        assert!(chrono::NaiveDateTime::parse_from_str(time, "%Y-%m-%dT%H:%M:%S%.6f").is_ok());
        let mut output = CycleOutput::default();
        output.per_pollster.insert("cpu".into(), 10);
        health.cycle_done(60, &output);
        assert!(health.readiness().is_empty());
        health.report_publishers(|| {
            vec![PublisherStatus {
                url: "notifier://".into(),
                last_error: Some((iso(SystemTime::now()), "connection refused".into())),
                ..Default::default()
            }]
        });
        assert_eq!(health.readiness(), ["publisher notifier:// failed: connection refused"]);
        let status = health.status();
        assert!(!status.ready);
        assert_eq!(status.pollsters["cpu"].samples_last_cycle, 10);
        assert!(status.pollsters["cpu"].last_success.is_some());
    }
}
