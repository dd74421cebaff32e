//! SQLite: the embedded store. WAL mode (readers never wait for the writer), one
//! transaction per batch, fsynced at commit (`synchronous=FULL`), on a blocking
//! thread so the collector's tasks never wait on the disk.

use super::migrations::{self, Migration};
use super::retention::time_to_live_of;
use super::{Expired, MeterKey, RetentionRule, StoreError, WriteBatch, Written};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Ids the database gave meters and resource versions, kept at most this many before
/// the cache starts again.
const CACHED: usize = 100_000;

/// A SQLite file of samples.
pub struct SqliteStore {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    connection: Connection,
    meters: HashMap<MeterKey, i64>,
    resources: HashMap<[u8; 32], i64>,
    spans: super::Spans,
    /// When the planner's statistics were last taken.
    analyzed: std::time::Instant,
}

/// How often the planner's statistics are taken again as the tables grow: without
/// them SQLite reads a meter's every sample to find one resource's (52 against 6 ms
/// for a resource's month of 4.3 million samples). Each time costs about 2 ms
/// (`analysis_limit`: a thousand rows an index).
const ANALYZE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Takes the planner's statistics, from a sample of each index.
fn analyze(connection: &Connection) -> Result<(), StoreError> {
    connection.execute_batch("PRAGMA analysis_limit = 1000; ANALYZE;").map_err(classify)
}

impl SqliteStore {
    /// Opens (making it and its folder if need be) and migrates the file.
    pub async fn open(path: PathBuf) -> Result<Self, StoreError> {
        let inner = blocking(move || {
            if let Some(folder) = path.parent() {
                std::fs::create_dir_all(folder).map_err(|e| {
                    StoreError::Unavailable(format!("cannot make the folder {}: {e}", folder.display()))
                })?;
            }
            let connection = Connection::open(&path)
                .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
            connection
                // A page cache of 32 MiB keeps the indexes' hot pages (the default 2 MiB
                // made each batch read them again as the file grew).
                .execute_batch(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;
                     PRAGMA cache_size = -32768;",
                )
                .map_err(classify)?;
            migrate(&connection)?;
            analyze(&connection)?;
            Ok(Inner {
                connection,
                meters: HashMap::new(),
                resources: HashMap::new(),
                spans: super::Spans::default(),
                analyzed: std::time::Instant::now(),
            })
        })
        .await?;
        Ok(Self { inner: Arc::new(Mutex::new(inner)) })
    }

    /// Stores a batch in one transaction.
    pub async fn write(&mut self, batch: Arc<WriteBatch>) -> Result<Written, StoreError> {
        let inner = self.inner.clone();
        blocking(move || inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).write(&batch)).await
    }

    /// Deletes the samples older than their meter's time to live.
    pub async fn expire(&mut self, rules: Arc<Vec<RetentionRule>>, now_us: i64) -> Result<Expired, StoreError> {
        let inner = self.inner.clone();
        blocking(move || inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).expire(&rules, now_us)).await
    }
}

impl Inner {
    fn write(&mut self, batch: &WriteBatch) -> Result<Written, StoreError> {
        let transaction = self.connection.transaction().map_err(classify)?;
        // Ids made in this transaction join the caches only once it commits.
        let mut meter_ids = Vec::with_capacity(batch.meters.len());
        let mut new_meters = Vec::new();
        for meter in &batch.meters {
            let id = match self.meters.get(meter) {
                Some(id) => *id,
                None => {
                    let id: i64 = transaction
                        .prepare_cached(
                            "INSERT INTO meters (name, type, unit) VALUES (?1, ?2, ?3)
                             ON CONFLICT (name, type, unit) DO UPDATE SET name = excluded.name RETURNING id",
                        )
                        .and_then(|mut s| s.query_row(params![meter.name, meter.kind, meter.unit], |r| r.get(0)))
                        .map_err(classify)?;
                    new_meters.push((meter.clone(), id));
                    id
                }
            };
            meter_ids.push(id);
        }
        let now_us = crate::sample::now_ns() / 1000;
        let mut resource_ids = Vec::with_capacity(batch.resources.len());
        let mut new_resources = Vec::new();
        for version in &batch.resources {
            let id = match self.resources.get(&version.digest) {
                Some(id) => *id,
                None => {
                    let id: i64 = transaction
                        .prepare_cached(
                            "INSERT INTO resources (digest, resource_id, user_id, project_id, source, metadata, first_stored)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                             ON CONFLICT (digest) DO UPDATE SET digest = excluded.digest RETURNING id",
                        )
                        .and_then(|mut s| {
                            s.query_row(
                                params![
                                    &version.digest[..],
                                    version.resource_id,
                                    version.user_id,
                                    version.project_id,
                                    version.source,
                                    version.metadata,
                                    now_us
                                ],
                                |r| r.get(0),
                            )
                        })
                        .map_err(classify)?;
                    new_resources.push((version.digest, id));
                    id
                }
            };
            resource_ids.push(id);
        }
        let mut written = Written::default();
        {
            let mut insert = transaction
                .prepare_cached(
                    "INSERT INTO samples (message_id, timestamp, meter_id, resource_version, volume, recorded_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (timestamp, message_id) DO NOTHING",
                )
                .map_err(classify)?;
            for row in &batch.rows {
                let (Some(meter), Some(resource)) =
                    (meter_ids.get(row.meter as usize), resource_ids.get(row.resource as usize))
                else {
                    return Err(StoreError::Refused("a row names a meter or resource its batch lacks".into()));
                };
                let changed = insert
                    .execute(params![&*row.message_id, row.timestamp_us, meter, resource, row.volume, now_us])
                    .map_err(classify)?;
                if changed == 1 {
                    written.stored += 1;
                } else {
                    written.duplicates += 1;
                }
            }
        }
        let widened = self.spans.widened(batch.rows.iter().filter_map(|row| {
            Some((*resource_ids.get(row.resource as usize)?, *meter_ids.get(row.meter as usize)?, row.timestamp_us))
        }));
        {
            let mut span = transaction
                .prepare_cached(
                    "INSERT INTO resource_spans (resource_version, first_timestamp, last_timestamp) VALUES (?1, ?2, ?3)
                     ON CONFLICT (resource_version) DO UPDATE SET
                       first_timestamp = min(first_timestamp, excluded.first_timestamp),
                       last_timestamp = max(last_timestamp, excluded.last_timestamp)",
                )
                .map_err(classify)?;
            for (version, first, last) in &widened.spans {
                span.execute(params![version, first, last]).map_err(classify)?;
            }
            let mut pair = transaction
                .prepare_cached(
                    "INSERT INTO resource_meters (resource_version, meter_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                )
                .map_err(classify)?;
            for (version, meter) in &widened.pairs {
                pair.execute(params![version, meter]).map_err(classify)?;
            }
        }
        transaction.commit().map_err(classify)?;
        self.spans.commit(widened);
        if self.analyzed.elapsed() >= ANALYZE_EVERY {
            analyze(&self.connection)?;
            self.analyzed = std::time::Instant::now();
        }
        if self.meters.len() + new_meters.len() > CACHED {
            self.meters.clear();
        }
        self.meters.extend(new_meters);
        if self.resources.len() + new_resources.len() > CACHED {
            self.resources.clear();
        }
        self.resources.extend(new_resources);
        Ok(written)
    }

    fn expire(&mut self, rules: &[RetentionRule], now_us: i64) -> Result<Expired, StoreError> {
        let transaction = self.connection.transaction().map_err(classify)?;
        let meters: Vec<(i64, String)> = transaction
            .prepare("SELECT id, name FROM meters")
            .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
            .map_err(classify)?;
        let mut expired = Expired::default();
        for (id, name) in meters {
            let Some(time_to_live) = time_to_live_of(rules, &name) else { continue };
            let before = now_us.saturating_sub(time_to_live.as_micros().min(i64::MAX as u128) as i64);
            expired.samples += transaction
                .execute("DELETE FROM samples WHERE meter_id = ?1 AND timestamp < ?2", params![id, before])
                .map_err(classify)? as u64;
        }
        // With a rule for every meter, spans start no later than the oldest sample
        // kept, and versions with none left go.
        if let Some(last) = rules.iter().position(|r| r.meters == "*") {
            let longest = rules[..=last].iter().map(|r| r.time_to_live).max().unwrap_or_default();
            let kept_from = now_us.saturating_sub(longest.as_micros().min(i64::MAX as u128) as i64);
            transaction
                .execute(
                    "DELETE FROM resource_meters WHERE resource_version IN
                       (SELECT resource_version FROM resource_spans WHERE last_timestamp < ?1)",
                    params![kept_from],
                )
                .and_then(|_| {
                    transaction.execute("DELETE FROM resource_spans WHERE last_timestamp < ?1", params![kept_from])
                })
                .and_then(|_| {
                    transaction.execute(
                        "UPDATE resource_spans SET first_timestamp = ?1 WHERE first_timestamp < ?1",
                        params![kept_from],
                    )
                })
                .map_err(classify)?;
            self.spans = super::Spans::default();
        }
        transaction.commit().map_err(classify)?;
        Ok(expired)
    }
}

/// The highest migration the file records.
fn applied(connection: &Connection) -> Result<Option<u32>, StoreError> {
    connection.execute_batch(migrations::JOURNAL).map_err(classify)?;
    connection
        .query_row("SELECT max(version) FROM pollen_schema_migrations", [], |r| r.get::<_, Option<u32>>(0))
        .optional()
        .map(Option::flatten)
        .map_err(classify)
}

/// Applies what the file lacks, each migration in its own transaction (an immediate
/// one: another process migrating waits, then finds it done).
fn migrate(connection: &Connection) -> Result<(), StoreError> {
    connection.execute_batch("BEGIN IMMEDIATE").map_err(classify)?;
    let result = (|| {
        let pending: &[Migration] =
            migrations::pending(migrations::SQLITE, applied(connection)?).map_err(StoreError::Schema)?;
        for migration in pending {
            connection.execute_batch(migration.sql).map_err(|e| {
                StoreError::Schema(format!("migration {} ({}) failed: {e}", migration.version, migration.description))
            })?;
            connection
                .execute(
                    "INSERT INTO pollen_schema_migrations (version, description, applied_at) VALUES (?1, ?2, ?3)",
                    params![migration.version, migration.description, crate::sample::iso8601(crate::sample::now_ns())],
                )
                .map_err(classify)?;
            tracing::info!(version = migration.version, "{}: schema migrated", migration.description);
        }
        Ok(())
    })();
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    connection.execute_batch(end).map_err(classify)?;
    result
}

/// Whether an error is worth retrying (the file busy, locked, unreadable, the disk
/// full) or the database refused what was written.
fn classify(error: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match &error {
        rusqlite::Error::SqliteFailure(failure, _)
            if matches!(
                failure.code,
                ErrorCode::DatabaseBusy
                    | ErrorCode::DatabaseLocked
                    | ErrorCode::CannotOpen
                    | ErrorCode::DiskFull
                    | ErrorCode::SystemIoFailure
                    | ErrorCode::OutOfMemory
                    | ErrorCode::ReadOnly
            ) =>
        {
            StoreError::Unavailable(error.to_string())
        }
        _ => StoreError::Refused(error.to_string()),
    }
}

/// Runs `work` on a blocking thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Unavailable(format!("the SQLite thread ended: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ResourceVersion, Row};

    /// A file at schema version 2 (samples unique by message id alone), with two
    /// samples in it.
    fn file_at_version_2(path: &std::path::Path) {
        let connection = Connection::open(path).unwrap();
        connection.execute_batch(migrations::JOURNAL).unwrap();
        for migration in &migrations::SQLITE[..2] {
            connection.execute_batch(migration.sql).unwrap();
            connection
                .execute(
                    "INSERT INTO pollen_schema_migrations VALUES (?1, ?2, 'then')",
                    params![migration.version, "old"],
                )
                .unwrap();
        }
        connection
            .execute_batch(
                "INSERT INTO meters (id, name, type, unit) VALUES (1, 'cpu', 'cumulative', 'ns');
                 INSERT INTO resources (id, digest, resource_id, source, metadata, first_stored)
                   VALUES (1, x'00', 'vm', 'openstack', '{}', 0);
                 INSERT INTO samples VALUES (7, 'm-1', 100, 1, 1, 1.5, 0), (8, 'm-2', 200, 1, 1, 2.5, 0);",
            )
            .unwrap();
    }

    #[tokio::test]
    async fn an_older_file_keeps_its_samples_and_is_then_unique_by_time_and_message_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("samples.db");
        file_at_version_2(&path);
        let mut store = SqliteStore::open(path.clone()).await.unwrap();
        let connection = Connection::open(&path).unwrap();
        let kept: Vec<(i64, String, i64)> = connection
            .prepare("SELECT id, message_id, timestamp FROM samples ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(kept, [(7, "m-1".into(), 100), (8, "m-2".into(), 200)], "samples and their ids kept");
        let version: u32 =
            connection.query_row("SELECT max(version) FROM pollen_schema_migrations", [], |r| r.get(0)).unwrap();
        assert_eq!(version, migrations::SQLITE.len() as u32);
        // A redelivered sample (same time, same id) is skipped; a new one stored.
        let row =
            |id: &str, timestamp_us| Row { message_id: id.into(), meter: 0, resource: 0, volume: 1.0, timestamp_us };
        let batch = WriteBatch {
            meters: vec![MeterKey { name: "cpu".into(), kind: "cumulative", unit: "ns".into() }],
            resources: vec![ResourceVersion::new("vm", None, None, "openstack", "{}")],
            rows: vec![row("m-2", 200), row("m-3", 300)],
        };
        let written = store.write(Arc::new(batch)).await.unwrap();
        assert_eq!((written.stored, written.duplicates), (1, 1));
        let plan: String = connection
            .query_row(
                "EXPLAIN QUERY PLAN SELECT 1 FROM samples WHERE timestamp = 300 AND message_id = 'm-3'",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("sqlite_autoindex_samples"), "the unique key is an index: {plan}");
    }
}
