//! Storage: samples kept in a database, as the collector's `database` publisher
//! writes them (and the read API will read them). Two backends behind one type:
//! PostgreSQL (`postgresql://user@host/db`: samples partitioned by day, written with
//! one multi-row insert per batch) and SQLite (`sqlite:///path.db`, the embedded
//! default: WAL, one transaction per batch).
//!
//! The schema is Pollen's, created and migrated by Pollen (versioned migrations,
//! recorded in `pollen_schema_migrations`): `meters`, `resources` (one row per
//! version of a resource: its id, owner, source and metadata, identified by a digest
//! of all of them, so metadata is kept per version and queryable), and `samples`,
//! unique by `message_id` (with its timestamp on PostgreSQL, the partition key), so
//! that a redelivered batch never stores a sample twice.

mod migrations;
mod postgres;
pub mod read;
pub mod retention;
mod sqlite;

pub use retention::{Expired, RetentionRule};

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Where samples are stored.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreUrl {
    /// A PostgreSQL connection string (`postgresql://user@host:port/db`).
    Postgres(String),
    /// A SQLite file.
    Sqlite(PathBuf),
}

impl StoreUrl {
    /// Reads a database URL: `postgresql://…` (or `postgres://…`), `sqlite:///abs/path.db`,
    /// or `database://`, the embedded default: `samples.db` in the state directory
    /// ([`state_dir`]).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (scheme, rest) = text.split_once("://").ok_or_else(|| {
            format!("`{text}` is not a database URL: write `postgresql://user@host/db` or `sqlite:///path.db`")
        })?;
        match scheme {
            "postgresql" | "postgres" => {
                let config: tokio_postgres::Config =
                    text.parse().map_err(|e| format!("not a PostgreSQL connection string: {e}"))?;
                if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
                    return Err("sslmode=require: Pollen connects to PostgreSQL without TLS for now; use a local \
                                socket or an encrypted tunnel"
                        .into());
                }
                if config.get_dbname().is_none() {
                    return Err("names no database: write `postgresql://user@host/DATABASE`".into());
                }
                Ok(Self::Postgres(text.to_string()))
            }
            "sqlite" => {
                let path = rest.split('?').next().unwrap_or_default();
                if rest.contains('?') {
                    return Err("a sqlite:// URL takes no options".into());
                }
                if !path.starts_with('/') {
                    return Err(format!(
                        "`{text}`: write an absolute path after `sqlite://`, e.g. `sqlite:///var/lib/pollen/samples.db`"
                    ));
                }
                Ok(Self::Sqlite(PathBuf::from(path)))
            }
            "database" => {
                if !rest.trim_matches('/').is_empty() {
                    return Err("`database://` takes nothing after it: it is the embedded default (a SQLite file \
                                in the state directory); name a database with `postgresql://` or `sqlite://`"
                        .into());
                }
                Ok(Self::Sqlite(state_dir().join("samples.db")))
            }
            other => Err(format!("`{other}://` is no database; write `postgresql://…` or `sqlite:///path.db`")),
        }
    }

    /// The URL as shown in logs: a password cut.
    pub fn shown(&self) -> String {
        match self {
            Self::Postgres(text) => crate::publish::shown_url(text),
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
        }
    }
}

/// Pollen's state directory: `POLLEN_STATE_DIR`, else systemd's `STATE_DIRECTORY`, else
/// `$XDG_STATE_HOME/pollen`, else `~/.local/state/pollen`, else `/var/lib/pollen`.
pub fn state_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var("POLLEN_STATE_DIR") {
        return dir;
    }
    if let Some(dirs) = std::env::var("STATE_DIRECTORY").ok().filter(|v| !v.is_empty()) {
        // systemd may list several, separated by colons: the first is ours.
        return PathBuf::from(dirs.split(':').next().unwrap_or(&dirs));
    }
    if let Some(state) = var("XDG_STATE_HOME") {
        return state.join("pollen");
    }
    match var("HOME") {
        Some(home) => home.join(".local/state/pollen"),
        None => PathBuf::from("/var/lib/pollen"),
    }
}

/// Why storing failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached now (down, restarting, connection lost):
    /// worth trying again.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The database refused what was written (a value it cannot hold): the same
    /// write would fail again.
    #[error("the database refused the write: {0}")]
    Refused(String),
    /// The schema is not one this Pollen knows, or migrating it failed.
    #[error("the database's schema: {0}")]
    Schema(String),
}

/// A meter as stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MeterKey {
    /// Its name.
    pub name: String,
    /// `gauge`, `delta` or `cumulative`.
    pub kind: &'static str,
    /// Its unit.
    pub unit: String,
}

/// One version of a resource: its id, owner, source and metadata, named by the digest
/// of all of them.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceVersion {
    /// SHA-256 of the other fields.
    pub digest: [u8; 32],
    /// The resource's id.
    pub resource_id: String,
    /// Its user.
    pub user_id: Option<String>,
    /// Its project.
    pub project_id: Option<String>,
    /// The source its samples came through.
    pub source: String,
    /// Its metadata, as JSON text.
    pub metadata: String,
}

impl ResourceVersion {
    /// A version, its digest made.
    pub fn new(
        resource_id: &str,
        user_id: Option<&str>,
        project_id: Option<&str>,
        source: &str,
        metadata: &str,
    ) -> Self {
        let mut hash = Sha256::new();
        // Each field with its length, so no two versions' fields run together the same.
        for field in [Some(resource_id), user_id, project_id, Some(source), Some(metadata)] {
            match field {
                None => hash.update(u64::MAX.to_le_bytes()),
                Some(text) => {
                    hash.update((text.len() as u64).to_le_bytes());
                    hash.update(text.as_bytes());
                }
            }
        }
        Self {
            digest: hash.finalize().into(),
            resource_id: resource_id.to_string(),
            user_id: user_id.map(String::from),
            project_id: project_id.map(String::from),
            source: source.to_string(),
            metadata: metadata.to_string(),
        }
    }
}

/// One sample to store; its meter and resource version are indexes into its
/// [`WriteBatch`]'s lists.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The message id: what makes a redelivered sample the same one.
    pub message_id: Box<str>,
    /// Index into [`WriteBatch::meters`].
    pub meter: u32,
    /// Index into [`WriteBatch::resources`].
    pub resource: u32,
    /// The value.
    pub volume: f64,
    /// When, microseconds since the epoch (UTC).
    pub timestamp_us: i64,
}

/// Samples stored in one transaction, their meters and resource versions listed once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteBatch {
    /// The meters the rows name.
    pub meters: Vec<MeterKey>,
    /// The resource versions the rows name.
    pub resources: Vec<ResourceVersion>,
    /// The samples.
    pub rows: Vec<Row>,
}

impl WriteBatch {
    /// The same meters and resources with some of the rows: to find, by halves, the
    /// sample a database refuses.
    /// Only the meters and resource versions those rows name are kept (a version the
    /// database refuses goes with its rows).
    pub fn part(&self, rows: std::ops::Range<usize>) -> WriteBatch {
        let mut part = WriteBatch::default();
        let (mut meters, mut resources) = (HashMap::new(), HashMap::new());
        for row in &self.rows[rows] {
            let meter = *meters.entry(row.meter).or_insert_with(|| {
                part.meters.push(self.meters[row.meter as usize].clone());
                part.meters.len() as u32 - 1
            });
            let resource = *resources.entry(row.resource).or_insert_with(|| {
                part.resources.push(self.resources[row.resource as usize].clone());
                part.resources.len() as u32 - 1
            });
            part.rows.push(Row { meter, resource, ..row.clone() });
        }
        part
    }
}

/// What a store knows the database holds of its resource versions' spans (first
/// and last sample) and meters, so that each batch sends only what widens a span or
/// adds a meter. Bounded: past [`SPANS_CACHED`] entries it starts again (and sends
/// more).
#[derive(Debug, Default)]
pub(crate) struct Spans {
    known: HashMap<i64, (i64, i64)>,
    pairs: std::collections::HashSet<(i64, i64)>,
}

/// Entries [`Spans`] keeps at most.
const SPANS_CACHED: usize = 200_000;

/// What a batch adds to the spans: `(version, first, last)` and `(version, meter)`,
/// each sorted (two writers then lock rows in the same order).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Widened {
    pub spans: Vec<(i64, i64, i64)>,
    pub pairs: Vec<(i64, i64)>,
}

impl Spans {
    /// What rows `(version, meter, timestamp µs)` add to what the database holds.
    pub fn widened(&self, rows: impl Iterator<Item = (i64, i64, i64)>) -> Widened {
        let mut spans: HashMap<i64, (i64, i64)> = HashMap::new();
        let mut pairs = std::collections::HashSet::new();
        for (version, meter, timestamp) in rows {
            let span = spans.entry(version).or_insert((timestamp, timestamp));
            span.0 = span.0.min(timestamp);
            span.1 = span.1.max(timestamp);
            if !self.pairs.contains(&(version, meter)) {
                pairs.insert((version, meter));
            }
        }
        let mut widened = Widened {
            spans: spans
                .into_iter()
                .filter(|(version, (first, last))| {
                    self.known
                        .get(version)
                        .is_none_or(|(known_first, known_last)| first < known_first || last > known_last)
                })
                .map(|(version, (first, last))| (version, first, last))
                .collect(),
            pairs: pairs.into_iter().collect(),
        };
        widened.spans.sort_unstable();
        widened.pairs.sort_unstable();
        widened
    }

    /// Records what a batch added, once the database has it.
    pub fn commit(&mut self, widened: Widened) {
        if self.known.len() + widened.spans.len() > SPANS_CACHED
            || self.pairs.len() + widened.pairs.len() > SPANS_CACHED
        {
            *self = Self::default();
        }
        for (version, first, last) in widened.spans {
            let span = self.known.entry(version).or_insert((first, last));
            span.0 = span.0.min(first);
            span.1 = span.1.max(last);
        }
        self.pairs.extend(widened.pairs);
    }
}

/// What one write did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Samples stored now.
    pub stored: u64,
    /// Samples already stored (a redelivery), skipped.
    pub duplicates: u64,
}

/// A database of samples, connected (or to be connected again) and migrated.
pub enum Store {
    /// PostgreSQL.
    Postgres(Box<postgres::PgStore>),
    /// SQLite.
    Sqlite(sqlite::SqliteStore),
}

impl Store {
    /// Opens the store and migrates its schema to this Pollen's.
    pub async fn open(url: &StoreUrl) -> Result<Self, StoreError> {
        Ok(match url {
            StoreUrl::Postgres(config) => Self::Postgres(Box::new(postgres::PgStore::open(config).await?)),
            StoreUrl::Sqlite(path) => Self::Sqlite(sqlite::SqliteStore::open(path.clone()).await?),
        })
    }

    /// Stores a batch in one transaction; samples already there are skipped.
    pub async fn write(&mut self, batch: Arc<WriteBatch>) -> Result<Written, StoreError> {
        match self {
            Self::Postgres(store) => store.write(&batch).await,
            Self::Sqlite(store) => store.write(batch).await,
        }
    }

    /// Removes what the retention rules say is too old (`now_us`: now, in µs).
    pub async fn expire(&mut self, rules: Arc<Vec<RetentionRule>>, now_us: i64) -> Result<Expired, StoreError> {
        match self {
            Self::Postgres(store) => store.expire(&rules, now_us).await,
            Self::Sqlite(store) => store.expire(rules, now_us).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_send_only_what_widens_them_or_adds_a_meter() {
        let mut spans = Spans::default();
        let first = spans.widened([(7, 1, 100), (7, 2, 300), (7, 1, 200), (3, 1, 50)].into_iter());
        assert_eq!(first, Widened { spans: vec![(3, 50, 50), (7, 100, 300)], pairs: vec![(3, 1), (7, 1), (7, 2)] });
        spans.commit(first);
        let within = spans.widened([(7, 1, 150), (3, 1, 50)].into_iter());
        assert_eq!(within, Widened::default(), "nothing new: nothing sent");
        let later = spans.widened([(7, 2, 400), (3, 4, 10)].into_iter());
        assert_eq!(later, Widened { spans: vec![(3, 10, 10), (7, 400, 400)], pairs: vec![(3, 4)] });
    }

    #[test]
    fn urls_name_a_database_or_say_what_to_write() {
        assert_eq!(
            StoreUrl::parse("postgresql://pollen@127.0.0.1:5432/telemetry").unwrap(),
            StoreUrl::Postgres("postgresql://pollen@127.0.0.1:5432/telemetry".into())
        );
        assert_eq!(StoreUrl::parse("sqlite:///var/lib/s.db").unwrap(), StoreUrl::Sqlite("/var/lib/s.db".into()));
        let error = StoreUrl::parse("sqlite://relative.db").unwrap_err();
        assert!(error.contains("absolute path"), "{error}");
        let error = StoreUrl::parse("postgresql://host").unwrap_err();
        assert!(error.contains("names no database"), "{error}");
        let error = StoreUrl::parse("postgresql://h/db?sslmode=require").unwrap_err();
        assert!(error.contains("without TLS"), "{error}");
        let error = StoreUrl::parse("mysql://h/db").unwrap_err();
        assert!(error.contains("`mysql://` is no database"), "{error}");
        assert!(matches!(StoreUrl::parse("database://").unwrap(), StoreUrl::Sqlite(p) if p.ends_with("samples.db")));
        assert!(StoreUrl::parse("database://x").is_err());
        assert_eq!(
            StoreUrl::parse("postgresql://u:secret@h/db").unwrap().shown(),
            "postgresql://u:***@h/db",
            "the password is cut"
        );
    }

    #[test]
    fn a_part_keeps_only_what_its_rows_name() {
        let meter = |name: &str| MeterKey { name: name.into(), kind: "gauge", unit: "1".into() };
        let row = |meter, resource| Row { message_id: "m".into(), meter, resource, volume: 1.0, timestamp_us: 0 };
        let batch = WriteBatch {
            meters: vec![meter("a"), meter("b")],
            resources: vec![
                ResourceVersion::new("r0", None, None, "s", "{}"),
                ResourceVersion::new("r1", None, None, "s", "{}"),
            ],
            rows: vec![row(0, 0), row(1, 1), row(1, 1)],
        };
        let part = batch.part(1..3);
        assert_eq!((part.meters, part.resources.len()), (vec![meter("b")], 1));
        assert_eq!(part.resources[0].resource_id, "r1");
        assert_eq!((part.rows[0].meter, part.rows[0].resource, part.rows.len()), (0, 0, 2));
    }

    #[test]
    fn a_version_s_digest_changes_with_each_field_and_never_runs_fields_together() {
        let base = ResourceVersion::new("r", Some("u"), Some("p"), "openstack", "{}");
        for other in [
            ResourceVersion::new("r2", Some("u"), Some("p"), "openstack", "{}"),
            ResourceVersion::new("r", None, Some("p"), "openstack", "{}"),
            ResourceVersion::new("r", Some("u"), None, "openstack", "{}"),
            ResourceVersion::new("r", Some("u"), Some("p"), "other", "{}"),
            ResourceVersion::new("r", Some("u"), Some("p"), "openstack", "{\"a\":1}"),
            ResourceVersion::new("r", Some("up"), Some(""), "openstack", "{}"),
        ] {
            assert_ne!(base.digest, other.digest, "{other:?}");
        }
        assert_eq!(base.digest, ResourceVersion::new("r", Some("u"), Some("p"), "openstack", "{}").digest);
    }
}
