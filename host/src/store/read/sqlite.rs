//! Reading from SQLite: a read-only connection per question, on a blocking thread
//! (WAL lets it read while a collector writes), with the two functions SQLite
//! lacks: `REGEXP` and `stddev_pop`.

use super::no_schema;
use super::rows::Cells;
use super::sql::{Param, Query};
use crate::store::StoreError;
use rusqlite::functions::{Aggregate as SqlAggregate, Context, FunctionFlags};
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, Row};
use std::path::PathBuf;
use std::sync::Arc;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A SQLite store opened for reading.
pub struct SqliteReader {
    path: Arc<PathBuf>,
}

impl SqliteReader {
    /// Checks the file holds a store this Pollen knows.
    pub async fn open(path: PathBuf) -> Result<Self, StoreError> {
        let reader = Self { path: Arc::new(path) };
        reader
            .with(|connection| {
                connection
                    .query_row(
                        "SELECT max(version) FROM pollen_schema_migrations
                         WHERE EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'resource_spans')",
                        [],
                        |row| row.get::<_, Option<i64>>(0),
                    )
                    .map_err(|e| no_schema(e.to_string()))?
                    .ok_or_else(|| no_schema("it has no spans table".into()))
            })
            .await?;
        Ok(reader)
    }

    async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let connection = Connection::open_with_flags(
                &*path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
            )
            .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
            connection.busy_timeout(std::time::Duration::from_secs(5)).map_err(refused)?;
            register_functions(&connection).map_err(refused)?;
            work(&connection)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("the SQLite thread ended: {e}")))?
    }

    /// The rows of `query`, each through `decode`, on the blocking thread.
    pub async fn read<T: Send + 'static>(
        &self,
        query: Query,
        decode: impl Fn(&dyn Cells) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<Vec<T>, StoreError> {
        self.with(move |connection| {
            let mut statement = connection.prepare(&query.text).map_err(refused)?;
            let params: Vec<Value> = query.params.into_iter().map(value).collect();
            let mut rows = statement.query(rusqlite::params_from_iter(params)).map_err(refused)?;
            let mut decoded = Vec::new();
            while let Some(row) = rows.next().map_err(refused)? {
                decoded.push(decode(row)?);
            }
            Ok(decoded)
        })
        .await
    }
}

impl Cells for Row<'_> {
    fn text(&self, index: usize) -> Result<String, StoreError> {
        self.get(index).map_err(refused)
    }

    fn opt_text(&self, index: usize) -> Result<Option<String>, StoreError> {
        self.get(index).map_err(refused)
    }

    fn opt_float(&self, index: usize) -> Result<Option<f64>, StoreError> {
        self.get(index).map_err(refused)
    }

    fn opt_micros(&self, index: usize) -> Result<Option<i64>, StoreError> {
        self.get(index).map_err(refused)
    }
}

fn value(param: Param) -> Value {
    match param {
        Param::Text(text) => Value::Text(text),
        Param::Int(n) | Param::Time(n) => Value::Integer(n),
        Param::Float(n) => Value::Real(n),
        Param::Bool(b) => Value::Integer(i64::from(b)),
        Param::TextList(list) => Value::Text(serde_json::Value::from(list).to_string()),
    }
}

/// `X REGEXP Y` (`regexp(Y, X)`), each pattern compiled once per statement, and
/// `stddev_pop(X)` (Welford's running variance).
fn register_functions(connection: &Connection) -> rusqlite::Result<()> {
    connection.create_scalar_function(
        "regexp",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |context| {
            let pattern: Arc<regex::Regex> = context
                .get_or_create_aux(0, |value| -> Result<_, BoxError> { Ok(regex::Regex::new(value.as_str()?)?) })?;
            let Ok(text) = context.get_raw(1).as_str() else { return Ok(false) };
            Ok(pattern.is_match(text))
        },
    )?;
    connection.create_aggregate_function(
        "stddev_pop",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        PopulationStddev,
    )
}

/// The population standard deviation, as PostgreSQL's `stddev_pop`.
struct PopulationStddev;

impl SqlAggregate<(u64, f64, f64), Option<f64>> for PopulationStddev {
    fn init(&self, _: &mut Context<'_>) -> rusqlite::Result<(u64, f64, f64)> {
        Ok((0, 0.0, 0.0))
    }

    fn step(&self, context: &mut Context<'_>, state: &mut (u64, f64, f64)) -> rusqlite::Result<()> {
        let Some(x) = context.get::<Option<f64>>(0)? else { return Ok(()) };
        let (count, mean, squares) = state;
        *count += 1;
        let delta = x - *mean;
        *mean += delta / *count as f64;
        *squares += delta * (x - *mean);
        Ok(())
    }

    fn finalize(&self, _: &mut Context<'_>, state: Option<(u64, f64, f64)>) -> rusqlite::Result<Option<f64>> {
        Ok(state.filter(|s| s.0 > 0).map(|(count, _, squares)| (squares / count as f64).sqrt()))
    }
}

fn refused(error: rusqlite::Error) -> StoreError {
    StoreError::Refused(error.to_string())
}
