//! The schema's versions, for each backend: each migration once, in order, recorded
//! in `pollen_schema_migrations` in the transaction that applies it. A database whose
//! schema is newer than this Pollen knows is refused, not written to.

/// One step of the schema.
#[derive(Debug)]
pub struct Migration {
    /// Its version: 1, 2, … in order.
    pub version: u32,
    /// What it does.
    pub description: &'static str,
    /// Its SQL (several statements).
    pub sql: &'static str,
}

/// The table that records the applied migrations, both backends.
pub const JOURNAL: &str = "CREATE TABLE IF NOT EXISTS pollen_schema_migrations (
    version integer PRIMARY KEY,
    description text NOT NULL,
    applied_at text NOT NULL)";

/// PostgreSQL's schema. Samples are partitioned by day (`samples_YYYYMMDD`, made as
/// samples arrive), so that retention drops whole partitions; their key is
/// `(timestamp, message_id)`, since a partitioned table's unique keys must hold the
/// partition key (a redelivered sample has its timestamp too). Message ids compare
/// bytewise (`COLLATE "C"`: a locale's rules cost a fifth of an insert), and one index
/// serves a meter's samples and a meter's samples of a resource, in time (two cost a
/// third more per sample than one: 9.5 against 6.4 µs a row, measured here).
pub const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        description: "meters, resource versions and samples partitioned by day",
        sql: "
CREATE TABLE meters (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    type text NOT NULL,
    unit text NOT NULL,
    UNIQUE (name, type, unit));
CREATE TABLE resources (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    digest bytea NOT NULL UNIQUE,
    resource_id text NOT NULL,
    user_id text,
    project_id text,
    source text NOT NULL,
    metadata jsonb NOT NULL,
    first_stored timestamptz NOT NULL DEFAULT now());
CREATE INDEX resources_by_resource_id ON resources (resource_id);
CREATE INDEX resources_by_project_id ON resources (project_id);
CREATE INDEX resources_by_user_id ON resources (user_id);
CREATE INDEX resources_by_metadata ON resources USING gin (metadata jsonb_path_ops);
CREATE TABLE samples (
    timestamp timestamptz NOT NULL,
    message_id text COLLATE \"C\" NOT NULL,
    meter_id integer NOT NULL,
    resource_version bigint NOT NULL,
    volume double precision NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (timestamp, message_id)
) PARTITION BY RANGE (timestamp);
CREATE INDEX samples_by_meter_and_resource ON samples (meter_id, resource_version, timestamp);
",
    },
    Migration {
        version: 2,
        description: "each resource version's span of samples and its meters, for the read API",
        sql: SPANS_POSTGRES,
    },
];

/// What the read API asks of every resource without reading its samples: when each
/// resource version was first and last sampled (widened as batches arrive, in the
/// statement that inserts them), and which meters it has. Filled from the samples
/// already stored. And the samples' index made covering (`INCLUDE (volume)`): a
/// resource's samples lie one per heap page (they arrive in time order, among every
/// other resource's), so statistics read from the index alone (4.5 against 43 ms for
/// a resource's month, measured on 43 million samples).
const SPANS_POSTGRES: &str = "
DROP INDEX samples_by_meter_and_resource;
CREATE INDEX samples_by_meter_and_resource ON samples (meter_id, resource_version, timestamp) INCLUDE (volume);
CREATE TABLE resource_spans (
    resource_version bigint PRIMARY KEY,
    first_timestamp timestamptz NOT NULL,
    last_timestamp timestamptz NOT NULL);
CREATE TABLE resource_meters (
    resource_version bigint NOT NULL,
    meter_id integer NOT NULL,
    PRIMARY KEY (resource_version, meter_id));
INSERT INTO resource_spans
    SELECT resource_version, min(timestamp), max(timestamp) FROM samples GROUP BY resource_version;
INSERT INTO resource_meters SELECT DISTINCT resource_version, meter_id FROM samples;
";

/// SQLite's schema: times in microseconds since the epoch, metadata as JSON text
/// (queryable with SQLite's `json_extract`).
pub const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        description: "meters, resource versions and samples",
        sql: "
CREATE TABLE meters (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    unit TEXT NOT NULL,
    UNIQUE (name, type, unit));
CREATE TABLE resources (
    id INTEGER PRIMARY KEY,
    digest BLOB NOT NULL UNIQUE,
    resource_id TEXT NOT NULL,
    user_id TEXT,
    project_id TEXT,
    source TEXT NOT NULL,
    metadata TEXT NOT NULL,
    first_stored INTEGER NOT NULL);
CREATE INDEX resources_by_resource_id ON resources (resource_id);
CREATE INDEX resources_by_project_id ON resources (project_id);
CREATE TABLE samples (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL UNIQUE,
    timestamp INTEGER NOT NULL,
    meter_id INTEGER NOT NULL,
    resource_version INTEGER NOT NULL,
    volume REAL NOT NULL,
    recorded_at INTEGER NOT NULL);
CREATE INDEX samples_by_meter_and_resource ON samples (meter_id, resource_version, timestamp);
",
    },
    Migration {
        version: 2,
        description: "each resource version's span of samples and its meters, for the read API",
        sql: "
CREATE TABLE resource_spans (
    resource_version INTEGER PRIMARY KEY,
    first_timestamp INTEGER NOT NULL,
    last_timestamp INTEGER NOT NULL);
CREATE TABLE resource_meters (
    resource_version INTEGER NOT NULL,
    meter_id INTEGER NOT NULL,
    PRIMARY KEY (resource_version, meter_id)) WITHOUT ROWID;
DROP INDEX samples_by_meter_and_resource;
CREATE INDEX samples_by_meter_and_resource ON samples (meter_id, resource_version, timestamp, volume);
INSERT INTO resource_spans
    SELECT resource_version, min(timestamp), max(timestamp) FROM samples GROUP BY resource_version;
INSERT INTO resource_meters SELECT DISTINCT resource_version, meter_id FROM samples;
",
    },
    Migration {
        version: 3,
        description: "samples unique by (timestamp, message_id), in time order",
        sql: TIME_ORDERED_SQLITE,
    },
];

/// Samples made unique by `(timestamp, message_id)`, as on PostgreSQL, instead of by
/// `message_id` alone (a redelivered sample has its timestamp too). Message ids are
/// random: each sample of a batch landed on a page of its own in the unique index,
/// and every page a transaction touches is written whole to the WAL at commit (4 KiB
/// a sample once the index outgrew a batch); in time order a batch's keys share a
/// few pages. SQLite cannot change a table's constraints, so the table is made anew
/// (once, at the upgrade: as long as copying the samples takes).
const TIME_ORDERED_SQLITE: &str = "
CREATE TABLE samples_in_time (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    meter_id INTEGER NOT NULL,
    resource_version INTEGER NOT NULL,
    volume REAL NOT NULL,
    recorded_at INTEGER NOT NULL,
    UNIQUE (timestamp, message_id));
INSERT INTO samples_in_time SELECT id, message_id, timestamp, meter_id, resource_version, volume, recorded_at
    FROM samples ORDER BY id;
DROP TABLE samples;
ALTER TABLE samples_in_time RENAME TO samples;
CREATE INDEX samples_by_meter_and_resource ON samples (meter_id, resource_version, timestamp, volume);
";

/// The migrations still to apply to a database at `applied` (the highest version it
/// records), or why it cannot be written to.
pub fn pending(all: &'static [Migration], applied: Option<u32>) -> Result<&'static [Migration], String> {
    let latest = all.last().map_or(0, |m| m.version);
    match applied {
        None => Ok(all),
        Some(version) if version > latest => Err(format!(
            "it is at version {version}, made by a newer Pollen (this one knows up to {latest}); \
             upgrade Pollen, or store into another database"
        )),
        Some(version) => Ok(&all[all.iter().position(|m| m.version > version).unwrap_or(all.len())..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_run_in_order_and_a_newer_schema_is_refused() {
        for all in [POSTGRES, SQLITE] {
            for (index, migration) in all.iter().enumerate() {
                assert_eq!(migration.version as usize, index + 1, "versions are 1, 2, … in order");
            }
            assert_eq!(pending(all, None).unwrap().len(), all.len());
            assert!(pending(all, Some(all.len() as u32)).unwrap().is_empty());
            let error = pending(all, Some(99)).unwrap_err();
            assert!(error.contains("newer Pollen"), "{error}");
        }
    }
}
