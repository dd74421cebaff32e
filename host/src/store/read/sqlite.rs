//! Reading from SQLite: a read-only connection per question, on a blocking thread
//! (WAL lets it read while a collector writes), with the two functions SQLite
//! lacks: `REGEXP` and `stddev_pop`.

use super::sql::{Param, Query};
use super::{no_schema, MeterOfResource, ResourceOwner, StatisticsQuery, StatisticsRow, StoredResource, StoredSample};
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

    async fn rows<T: Send + 'static>(
        &self,
        query: Query,
        read: impl Fn(&Row) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<Vec<T>, StoreError> {
        self.with(move |connection| {
            let mut statement = connection.prepare(&query.text).map_err(refused)?;
            let params: Vec<Value> = query.params.into_iter().map(value).collect();
            let rows = statement.query_map(rusqlite::params_from_iter(params), |row| read(row)).map_err(refused)?;
            rows.collect::<Result<Vec<T>, _>>().map_err(refused)
        })
        .await
    }

    pub async fn samples(&self, query: Query) -> Result<Vec<StoredSample>, StoreError> {
        self.rows(query, |row| {
            Ok(StoredSample {
                message_id: row.get(0)?,
                meter: row.get(1)?,
                meter_type: row.get(2)?,
                unit: row.get(3)?,
                volume: row.get(4)?,
                resource_id: row.get(5)?,
                user_id: row.get(6)?,
                project_id: row.get(7)?,
                source: row.get(8)?,
                timestamp: row.get(9)?,
                recorded_at: row.get(10)?,
                metadata: row.get(11)?,
            })
        })
        .await
    }

    pub async fn meters(&self, query: Query, unique: bool) -> Result<Vec<MeterOfResource>, StoreError> {
        self.rows(query, move |row| {
            Ok(MeterOfResource {
                name: row.get(0)?,
                meter_type: row.get(1)?,
                unit: row.get(2)?,
                resource: if unique { None } else { Some(owner(row, 3)?) },
            })
        })
        .await
    }

    pub async fn resources(&self, query: Query) -> Result<Vec<StoredResource>, StoreError> {
        self.rows(query, |row| {
            Ok(StoredResource {
                owner: owner(row, 0)?,
                first_sample: row.get(4)?,
                last_sample: row.get(5)?,
                metadata: row.get(6)?,
                meters: Vec::new(),
            })
        })
        .await
    }

    pub async fn pairs(&self, query: Query) -> Result<Vec<(String, String)>, StoreError> {
        self.rows(query, |row| Ok((row.get(0)?, row.get(1)?))).await
    }

    pub async fn time_range(&self, query: Query) -> Result<Option<(i64, i64)>, StoreError> {
        let rows = self.rows(query, |row| Ok((row.get::<_, Option<i64>>(0)?, row.get::<_, Option<i64>>(1)?))).await?;
        Ok(rows.into_iter().next().and_then(|(first, last)| first.zip(last)))
    }

    pub async fn statistics(&self, query: Query, question: &StatisticsQuery) -> Result<Vec<StatisticsRow>, StoreError> {
        let groups = question.groupby.len();
        let aggregates = question.aggregates.clone();
        let periods = question.periods.is_some();
        self.rows(query, move |row| {
            let mut values = std::collections::BTreeMap::new();
            for (index, aggregate) in aggregates.iter().enumerate() {
                values.insert(*aggregate, row.get::<_, Option<f64>>(4 + groups + index)?);
            }
            Ok(StatisticsRow {
                period_start: if periods { row.get(0)? } else { None },
                unit: row.get(1)?,
                groups: (0..groups).map(|g| row.get(2 + g)).collect::<Result<_, _>>()?,
                first: row.get(2 + groups)?,
                last: row.get(3 + groups)?,
                values,
            })
        })
        .await
    }
}

fn owner(row: &Row, from: usize) -> rusqlite::Result<ResourceOwner> {
    Ok(ResourceOwner {
        resource_id: row.get(from)?,
        user_id: row.get(from + 1)?,
        project_id: row.get(from + 2)?,
        source: row.get(from + 3)?,
    })
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
