//! PostgreSQL: samples in a table partitioned by day, each batch one multi-row
//! `INSERT … SELECT FROM unnest(…)` (one statement, one transaction, one round trip;
//! a batch holding a sample stored before is stored again with `ON CONFLICT DO
//! NOTHING`), meters and resource versions upserted once and their ids cached.
//! Partitions are made as samples for a new day arrive, and retention drops whole
//! ones.

use super::migrations::{self, POSTGRES};
use super::retention::time_to_live_of;
use super::{Expired, MeterKey, RetentionRule, StoreError, WriteBatch, Written};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};
use tokio_postgres::{Client, NoTls, Statement};

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Ids cached at most before the cache starts again.
const CACHED: usize = 100_000;
/// Microseconds in a day: partitions are days (UTC).
const DAY_US: i64 = 86_400_000_000;
/// The advisory lock that serialises migrations and partition making across
/// collectors sharing a database ("pollen" in ASCII).
const LOCK: i64 = 0x706f_6c6c_656e;

/// A PostgreSQL database of samples; reconnects after the connection is lost.
pub struct PgStore {
    config: String,
    link: Option<Link>,
    meters: HashMap<MeterKey, i32>,
    resources: HashMap<[u8; 32], i64>,
    /// Days (since the epoch) whose partition exists.
    partitions: HashSet<i64>,
    /// What the database holds of the resource versions' spans and meters, so that
    /// a batch sends only what widens or adds to them.
    spans: super::Spans,
}

/// A connection and its prepared statements.
struct Link {
    client: Client,
    /// Samples none of which is stored yet (fails on one that is).
    insert_new_samples: Statement,
    /// Samples, skipping those already stored.
    insert_samples: Statement,
    upsert_meters: Statement,
    upsert_resources: Statement,
}

impl PgStore {
    /// Connects and migrates the schema.
    pub async fn open(config: &str) -> Result<Self, StoreError> {
        let mut store = Self {
            config: config.to_string(),
            link: None,
            meters: HashMap::new(),
            resources: HashMap::new(),
            partitions: HashSet::new(),
            spans: super::Spans::default(),
        };
        store.link().await?;
        Ok(store)
    }

    /// The connection, made (and the schema migrated) if there is none.
    async fn link(&mut self) -> Result<&Link, StoreError> {
        if self.link.is_none() {
            let (mut client, connection) =
                tokio::time::timeout(CONNECT_TIMEOUT, tokio_postgres::connect(&self.config, NoTls))
                    .await
                    .map_err(|_| StoreError::Unavailable("connecting timed out".into()))?
                    .map_err(classify)?;
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "PostgreSQL connection ended");
                }
            });
            migrate(&mut client).await?;
            self.partitions = partitions(&client).await?;
            // One statement, so the spans widen in the transaction that stores the
            // samples; rows in a fixed order, so two collectors lock them alike. A
            // plain insert first: a batch seen before (a redelivery) fails it on the
            // key, and is then stored by the statement that skips what is there
            // (its speculative insertion costs every row a second search of the key).
            let spans_and_pairs = "spans AS (
                       INSERT INTO resource_spans (resource_version, first_timestamp, last_timestamp)
                       SELECT * FROM unnest($6::int8[], $7::timestamptz[], $8::timestamptz[])
                       ON CONFLICT (resource_version) DO UPDATE SET
                         first_timestamp = least(resource_spans.first_timestamp, EXCLUDED.first_timestamp),
                         last_timestamp = greatest(resource_spans.last_timestamp, EXCLUDED.last_timestamp)),
                     pairs AS (
                       INSERT INTO resource_meters (resource_version, meter_id)
                       SELECT * FROM unnest($9::int8[], $10::int4[]) ON CONFLICT DO NOTHING)";
            let insert_new_samples = client
                .prepare(&format!(
                    "WITH {spans_and_pairs}
                     INSERT INTO samples (timestamp, message_id, meter_id, resource_version, volume)
                     SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::int4[], $4::int8[], $5::float8[])"
                ))
                .await
                .map_err(classify)?;
            let insert_samples = client
                .prepare(&format!(
                    "WITH inserted AS (
                       INSERT INTO samples (timestamp, message_id, meter_id, resource_version, volume)
                       SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::int4[], $4::int8[], $5::float8[])
                       ON CONFLICT DO NOTHING RETURNING 1),
                     {spans_and_pairs}
                     SELECT count(*) FROM inserted"
                ))
                .await
                .map_err(classify)?;
            let upsert_meters = client
                .prepare(
                    "INSERT INTO meters (name, type, unit) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
                     ON CONFLICT (name, type, unit) DO UPDATE SET name = EXCLUDED.name
                     RETURNING id, name, type, unit",
                )
                .await
                .map_err(classify)?;
            let upsert_resources = client
                .prepare(
                    "INSERT INTO resources (digest, resource_id, user_id, project_id, source, metadata)
                     SELECT d, r, u, p, s, m::jsonb
                     FROM unnest($1::bytea[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
                          AS v(d, r, u, p, s, m)
                     ON CONFLICT (digest) DO UPDATE SET digest = EXCLUDED.digest
                     RETURNING id, digest",
                )
                .await
                .map_err(classify)?;
            self.link = Some(Link { client, insert_new_samples, insert_samples, upsert_meters, upsert_resources });
        }
        Ok(self.link.as_ref().expect("made above"))
    }

    /// Stores a batch: its meters and resource versions first (upserts, so a retry
    /// finds them), then every sample in one statement.
    pub async fn write(&mut self, batch: &WriteBatch) -> Result<Written, StoreError> {
        let result = self.try_write(batch).await;
        if let Err(StoreError::Unavailable(_)) = &result {
            // Made again on the next attempt.
            self.link = None;
        }
        result
    }

    async fn try_write(&mut self, batch: &WriteBatch) -> Result<Written, StoreError> {
        self.link().await?;
        let meter_ids = self.meter_ids(batch).await?;
        let resource_ids = self.resource_ids(batch).await?;
        self.make_partitions(batch).await?;
        let mut timestamps = Vec::with_capacity(batch.rows.len());
        let mut message_ids = Vec::with_capacity(batch.rows.len());
        let mut meters = Vec::with_capacity(batch.rows.len());
        let mut resources = Vec::with_capacity(batch.rows.len());
        let mut volumes = Vec::with_capacity(batch.rows.len());
        for row in &batch.rows {
            let (Some(meter), Some(resource)) =
                (meter_ids.get(row.meter as usize), resource_ids.get(row.resource as usize))
            else {
                return Err(StoreError::Refused("a row names a meter or resource its batch lacks".into()));
            };
            timestamps.push(system_time(row.timestamp_us));
            message_ids.push(&*row.message_id);
            meters.push(*meter);
            resources.push(*resource);
            volumes.push(row.volume);
        }
        let widened = self.spans.widened(
            resources.iter().zip(&meters).zip(&batch.rows).map(|((v, m), row)| (*v, i64::from(*m), row.timestamp_us)),
        );
        let span_versions: Vec<i64> = widened.spans.iter().map(|s| s.0).collect();
        let span_firsts: Vec<SystemTime> = widened.spans.iter().map(|s| system_time(s.1)).collect();
        let span_lasts: Vec<SystemTime> = widened.spans.iter().map(|s| system_time(s.2)).collect();
        let pair_versions: Vec<i64> = widened.pairs.iter().map(|p| p.0).collect();
        let pair_meters: Vec<i32> = widened.pairs.iter().map(|p| p.1 as i32).collect();
        let link = self.link.as_ref().expect("linked above");
        let parameters: [&(dyn tokio_postgres::types::ToSql + Sync); 10] = [
            &timestamps,
            &message_ids,
            &meters,
            &resources,
            &volumes,
            &span_versions,
            &span_firsts,
            &span_lasts,
            &pair_versions,
            &pair_meters,
        ];
        let stored = match link.client.execute(&link.insert_new_samples, &parameters).await {
            Ok(stored) => stored,
            Err(error) if error.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                tracing::debug!("a sample of the batch is stored already (a redelivery): stored again, skipping it");
                let inserted = link.client.query_one(&link.insert_samples, &parameters).await;
                inserted.map_err(|error| self.classify_insert(error))?.get::<_, i64>(0) as u64
            }
            Err(error) => return Err(self.classify_insert(error)),
        };
        self.spans.commit(widened);
        Ok(Written { stored, duplicates: batch.rows.len() as u64 - stored })
    }

    /// An insert's error; a row for a partition that is gone (dropped by another
    /// collector's retention) makes the partitions be read again and the write retried.
    fn classify_insert(&mut self, error: tokio_postgres::Error) -> StoreError {
        if error.code().map(|c| c.code()) == Some("23514") {
            self.partitions.clear();
            return StoreError::Unavailable(format!("a partition went missing, made again: {error}"));
        }
        classify(error)
    }

    async fn meter_ids(&mut self, batch: &WriteBatch) -> Result<Vec<i32>, StoreError> {
        let unknown: Vec<&MeterKey> = batch.meters.iter().filter(|m| !self.meters.contains_key(*m)).collect();
        if !unknown.is_empty() {
            let names: Vec<&str> = unknown.iter().map(|m| m.name.as_str()).collect();
            let kinds: Vec<&str> = unknown.iter().map(|m| m.kind).collect();
            let units: Vec<&str> = unknown.iter().map(|m| m.unit.as_str()).collect();
            let link = self.link.as_ref().expect("linked before");
            let rows = link.client.query(&link.upsert_meters, &[&names, &kinds, &units]).await.map_err(classify)?;
            if self.meters.len() + rows.len() > CACHED {
                self.meters.clear();
            }
            for row in rows {
                let (name, kind, unit): (&str, &str, &str) = (row.get(1), row.get(2), row.get(3));
                if let Some(meter) = batch.meters.iter().find(|m| m.name == name && m.kind == kind && m.unit == unit) {
                    self.meters.insert(meter.clone(), row.get(0));
                }
            }
        }
        batch
            .meters
            .iter()
            .map(|m| {
                self.meters.get(m).copied().ok_or_else(|| StoreError::Refused(format!("meter {} not stored", m.name)))
            })
            .collect()
    }

    async fn resource_ids(&mut self, batch: &WriteBatch) -> Result<Vec<i64>, StoreError> {
        let unknown: Vec<&super::ResourceVersion> =
            batch.resources.iter().filter(|r| !self.resources.contains_key(&r.digest)).collect();
        if !unknown.is_empty() {
            let digests: Vec<&[u8]> = unknown.iter().map(|r| &r.digest[..]).collect();
            let ids: Vec<&str> = unknown.iter().map(|r| r.resource_id.as_str()).collect();
            let users: Vec<Option<&str>> = unknown.iter().map(|r| r.user_id.as_deref()).collect();
            let projects: Vec<Option<&str>> = unknown.iter().map(|r| r.project_id.as_deref()).collect();
            let sources: Vec<&str> = unknown.iter().map(|r| r.source.as_str()).collect();
            let metadata: Vec<&str> = unknown.iter().map(|r| r.metadata.as_str()).collect();
            let link = self.link.as_ref().expect("linked before");
            let rows = link
                .client
                .query(&link.upsert_resources, &[&digests, &ids, &users, &projects, &sources, &metadata])
                .await
                .map_err(classify)?;
            if self.resources.len() + rows.len() > CACHED {
                self.resources.clear();
            }
            for row in rows {
                let digest: &[u8] = row.get(1);
                if let Ok(digest) = <[u8; 32]>::try_from(digest) {
                    self.resources.insert(digest, row.get(0));
                }
            }
        }
        batch
            .resources
            .iter()
            .map(|r| {
                self.resources
                    .get(&r.digest)
                    .copied()
                    .ok_or_else(|| StoreError::Refused(format!("resource {} not stored", r.resource_id)))
            })
            .collect()
    }

    /// Makes the partitions of the batch's days that do not exist yet.
    async fn make_partitions(&mut self, batch: &WriteBatch) -> Result<(), StoreError> {
        let days: HashSet<i64> = batch.rows.iter().map(|r| r.timestamp_us.div_euclid(DAY_US)).collect();
        let link = self.link.as_ref().expect("linked before");
        for day in days {
            if self.partitions.contains(&day) {
                continue;
            }
            let (name, from, to) = partition(day);
            link.client
                .batch_execute(&format!(
                    "BEGIN; SELECT pg_advisory_xact_lock({LOCK});
                     CREATE TABLE IF NOT EXISTS {name} PARTITION OF samples FOR VALUES FROM ('{from}') TO ('{to}');
                     COMMIT;"
                ))
                .await
                .map_err(classify)?;
            tracing::info!(partition = %name, "samples partition made");
            self.partitions.insert(day);
        }
        Ok(())
    }

    /// Drops the partitions every meter's samples in them are too old for (when a
    /// rule covers every meter), then deletes the older samples of meters kept less.
    pub async fn expire(&mut self, rules: &[RetentionRule], now_us: i64) -> Result<Expired, StoreError> {
        let result = self.try_expire(rules, now_us).await;
        if let Err(StoreError::Unavailable(_)) = &result {
            self.link = None;
        }
        result
    }

    async fn try_expire(&mut self, rules: &[RetentionRule], now_us: i64) -> Result<Expired, StoreError> {
        self.link().await?;
        let client = &self.link.as_ref().expect("linked above").client;
        let mut expired = Expired::default();
        // A `*` rule covers every meter: what is older than the longest time to live
        // of the rules that can match (those up to it) goes with its partition.
        if let Some(last) = rules.iter().position(|r| r.meters == "*") {
            let longest = rules[..=last].iter().map(|r| r.time_to_live).max().unwrap_or_default();
            let before_day = (now_us - micros(longest)).div_euclid(DAY_US);
            for day in partitions(client).await? {
                if day < before_day {
                    let (name, ..) = partition(day);
                    client
                        .batch_execute(&format!(
                            "BEGIN; SELECT pg_advisory_xact_lock({LOCK}); DROP TABLE IF EXISTS {name}; COMMIT;"
                        ))
                        .await
                        .map_err(classify)?;
                    tracing::info!(partition = %name, "samples partition past every time to live dropped");
                    self.partitions.remove(&day);
                    expired.partitions += 1;
                }
            }
            if expired.partitions > 0 {
                // Spans start no later than the oldest sample kept, and versions with
                // none left go.
                let kept_from = system_time(before_day * DAY_US);
                client
                    .execute(
                        "WITH gone AS (DELETE FROM resource_spans WHERE last_timestamp < $1 RETURNING resource_version)
                         DELETE FROM resource_meters WHERE resource_version IN (SELECT resource_version FROM gone)",
                        &[&kept_from],
                    )
                    .await
                    .map_err(classify)?;
                client
                    .execute("UPDATE resource_spans SET first_timestamp = $1 WHERE first_timestamp < $1", &[&kept_from])
                    .await
                    .map_err(classify)?;
                self.spans = super::Spans::default();
            }
        }
        let meters = client.query("SELECT id, name FROM meters", &[]).await.map_err(classify)?;
        let mut by_time_to_live: HashMap<Duration, Vec<i32>> = HashMap::new();
        for meter in meters {
            if let Some(time_to_live) = time_to_live_of(rules, meter.get(1)) {
                by_time_to_live.entry(time_to_live).or_default().push(meter.get(0));
            }
        }
        for (time_to_live, meters) in by_time_to_live {
            let before = system_time(now_us - micros(time_to_live));
            expired.samples += client
                .execute("DELETE FROM samples WHERE meter_id = ANY($1) AND timestamp < $2", &[&meters, &before])
                .await
                .map_err(classify)?;
        }
        Ok(expired)
    }
}

/// Applies what the database lacks, in one transaction, under the advisory lock (a
/// second collector starting at once waits, then finds it done).
async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let transaction = client.transaction().await.map_err(classify)?;
    transaction.batch_execute(&format!("SELECT pg_advisory_xact_lock({LOCK})")).await.map_err(classify)?;
    transaction.batch_execute(migrations::JOURNAL).await.map_err(classify)?;
    let applied: Option<i32> =
        transaction.query_one("SELECT max(version) FROM pollen_schema_migrations", &[]).await.map_err(classify)?.get(0);
    let pending = migrations::pending(POSTGRES, applied.map(|v| v as u32)).map_err(StoreError::Schema)?;
    for migration in pending {
        transaction.batch_execute(migration.sql).await.map_err(|e| {
            StoreError::Schema(format!("migration {} ({}) failed: {e}", migration.version, migration.description))
        })?;
        let version = migration.version as i32;
        let at = crate::sample::iso8601(crate::sample::now_ns());
        transaction
            .execute(
                "INSERT INTO pollen_schema_migrations (version, description, applied_at) VALUES ($1, $2, $3)",
                &[&version, &migration.description, &at],
            )
            .await
            .map_err(classify)?;
    }
    transaction.commit().await.map_err(classify)?;
    for migration in pending {
        tracing::info!(version = migration.version, "{}: schema migrated", migration.description);
    }
    Ok(())
}

/// The days whose partition of `samples` exists.
async fn partitions(client: &Client) -> Result<HashSet<i64>, StoreError> {
    let rows = client
        .query(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'samples'::regclass",
            &[],
        )
        .await
        .map_err(classify)?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let name: &str = row.get(0);
            let date = chrono::NaiveDate::parse_from_str(name.strip_prefix("samples_")?, "%Y%m%d").ok()?;
            Some(date.signed_duration_since(chrono::NaiveDate::default()).num_days())
        })
        .collect())
}

/// A day's partition: its name and bounds.
fn partition(day: i64) -> (String, String, String) {
    let date = chrono::NaiveDate::default() + chrono::Days::new(day.max(0) as u64);
    let next = date + chrono::Days::new(1);
    (format!("samples_{}", date.format("%Y%m%d")), format!("{date} 00:00:00+00"), format!("{next} 00:00:00+00"))
}

fn micros(duration: Duration) -> i64 {
    duration.as_micros().min(i64::MAX as u128) as i64
}

/// A time from microseconds since the epoch.
pub(super) fn system_time(us: i64) -> SystemTime {
    if us >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_micros(us as u64)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_micros(us.unsigned_abs())
    }
}

/// Whether an error is worth retrying: the connection (lost, refused, timed out), the
/// server (shutting down, starting, out of resources), a conflict between
/// transactions; or the database refused what was written.
fn classify(error: tokio_postgres::Error) -> StoreError {
    let Some(code) = error.code().map(|c| c.code()) else {
        return StoreError::Unavailable(error.to_string());
    };
    let transient =
        ["08", "53", "57", "58"].iter().any(|class| code.starts_with(class)) || code == "40001" || code == "40P01";
    let text = match error.as_db_error() {
        Some(db) => format!("{} ({code})", db.message()),
        None => error.to_string(),
    };
    if transient {
        StoreError::Unavailable(text)
    } else {
        StoreError::Refused(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_name_their_partition_and_bounds() {
        let day = 1_796_601_600_000_000i64.div_euclid(DAY_US); // 2026-12-07T00:00:00Z
        assert_eq!(
            partition(day),
            ("samples_20261207".into(), "2026-12-07 00:00:00+00".into(), "2026-12-08 00:00:00+00".into())
        );
    }
}
