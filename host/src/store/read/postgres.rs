//! Reading from PostgreSQL: a small pool of connections, each question one query.

use super::sql::{Param, Query};
use super::{no_schema, MeterOfResource, ResourceOwner, StatisticsQuery, StatisticsRow, StoredResource, StoredSample};
use crate::store::postgres::system_time;
use crate::store::StoreError;
use std::time::{Duration, SystemTime};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

/// Connections kept at most: the API answers this many questions at once.
const CONNECTIONS: usize = 8;

/// A pool of connections to a PostgreSQL store.
pub struct PgReader {
    pool: deadpool_postgres::Pool,
}

impl PgReader {
    /// Connects once (to say now whether the store can be read) and checks the schema.
    pub async fn open(config: &str) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config =
            config.parse().map_err(|e| StoreError::Unavailable(format!("not a PostgreSQL URL: {e}")))?;
        let manager = deadpool_postgres::Manager::new(config, tokio_postgres::NoTls);
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(CONNECTIONS)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let reader = Self { pool };
        let client = reader.client().await?;
        let version: Option<i32> = client
            .query_opt(
                "SELECT max(version) FROM pollen_schema_migrations WHERE to_regclass('resource_spans') IS NOT NULL",
                &[],
            )
            .await
            .map_err(|e| no_schema(e.to_string()))?
            .and_then(|row| row.get(0));
        if version.is_none() {
            return Err(no_schema("it has no spans table".into()));
        }
        Ok(reader)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    async fn rows(&self, query: Query) -> Result<Vec<Row>, StoreError> {
        let client = self.client().await?;
        let values: Vec<Box<dyn ToSql + Sync + Send>> = query.params.into_iter().map(value).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| &**v as &(dyn ToSql + Sync)).collect();
        client.query(&query.text, &refs).await.map_err(classify)
    }

    pub async fn samples(&self, query: Query) -> Result<Vec<StoredSample>, StoreError> {
        self.rows(query)
            .await?
            .iter()
            .map(|row| {
                Ok(StoredSample {
                    message_id: row.try_get(0).map_err(decode)?,
                    meter: row.try_get(1).map_err(decode)?,
                    meter_type: row.try_get(2).map_err(decode)?,
                    unit: row.try_get(3).map_err(decode)?,
                    volume: row.try_get(4).map_err(decode)?,
                    resource_id: row.try_get(5).map_err(decode)?,
                    user_id: row.try_get(6).map_err(decode)?,
                    project_id: row.try_get(7).map_err(decode)?,
                    source: row.try_get(8).map_err(decode)?,
                    timestamp: micros(row, 9)?,
                    recorded_at: micros(row, 10)?,
                    metadata: row.try_get(11).map_err(decode)?,
                })
            })
            .collect()
    }

    pub async fn meters(&self, query: Query, unique: bool) -> Result<Vec<MeterOfResource>, StoreError> {
        self.rows(query)
            .await?
            .iter()
            .map(|row| {
                Ok(MeterOfResource {
                    name: row.try_get(0).map_err(decode)?,
                    meter_type: row.try_get(1).map_err(decode)?,
                    unit: row.try_get(2).map_err(decode)?,
                    resource: if unique { None } else { Some(owner(row, 3)?) },
                })
            })
            .collect()
    }

    pub async fn resources(&self, query: Query) -> Result<Vec<StoredResource>, StoreError> {
        self.rows(query)
            .await?
            .iter()
            .map(|row| {
                Ok(StoredResource {
                    owner: owner(row, 0)?,
                    first_sample: micros(row, 4)?,
                    last_sample: micros(row, 5)?,
                    metadata: row.try_get(6).map_err(decode)?,
                    meters: Vec::new(),
                })
            })
            .collect()
    }

    pub async fn pairs(&self, query: Query) -> Result<Vec<(String, String)>, StoreError> {
        self.rows(query)
            .await?
            .iter()
            .map(|row| Ok((row.try_get(0).map_err(decode)?, row.try_get(1).map_err(decode)?)))
            .collect()
    }

    pub async fn time_range(&self, query: Query) -> Result<Option<(i64, i64)>, StoreError> {
        let rows = self.rows(query).await?;
        let Some(row) = rows.first() else { return Ok(None) };
        let first: Option<SystemTime> = row.try_get(0).map_err(decode)?;
        let last: Option<SystemTime> = row.try_get(1).map_err(decode)?;
        Ok(first.zip(last).map(|(f, l)| (system_micros(f), system_micros(l))))
    }

    pub async fn statistics(&self, query: Query, question: &StatisticsQuery) -> Result<Vec<StatisticsRow>, StoreError> {
        let groups = question.groupby.len();
        self.rows(query)
            .await?
            .iter()
            .map(|row| {
                let period_start: Option<SystemTime> =
                    if question.periods.is_some() { row.try_get(0).map_err(decode)? } else { None };
                let mut values = std::collections::BTreeMap::new();
                for (index, aggregate) in question.aggregates.iter().enumerate() {
                    values.insert(*aggregate, row.try_get::<_, Option<f64>>(4 + groups + index).map_err(decode)?);
                }
                Ok(StatisticsRow {
                    period_start: period_start.map(system_micros),
                    unit: row.try_get(1).map_err(decode)?,
                    groups: (0..groups).map(|g| row.try_get(2 + g)).collect::<Result<_, _>>().map_err(decode)?,
                    first: micros(row, 2 + groups)?,
                    last: micros(row, 3 + groups)?,
                    values,
                })
            })
            .collect()
    }
}

fn owner(row: &Row, from: usize) -> Result<ResourceOwner, StoreError> {
    Ok(ResourceOwner {
        resource_id: row.try_get(from).map_err(decode)?,
        user_id: row.try_get(from + 1).map_err(decode)?,
        project_id: row.try_get(from + 2).map_err(decode)?,
        source: row.try_get(from + 3).map_err(decode)?,
    })
}

fn value(param: Param) -> Box<dyn ToSql + Sync + Send> {
    match param {
        Param::Text(text) => Box::new(text),
        Param::Int(n) => Box::new(n),
        Param::Float(n) => Box::new(n),
        Param::Bool(b) => Box::new(b),
        Param::Time(us) => Box::new(system_time(us)),
        Param::TextList(list) => Box::new(list),
    }
}

fn micros(row: &Row, index: usize) -> Result<i64, StoreError> {
    row.try_get::<_, SystemTime>(index).map(system_micros).map_err(decode)
}

fn system_micros(time: SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => after.as_micros() as i64,
        Err(before) => -(before.duration().as_micros() as i64),
    }
}

fn decode(error: tokio_postgres::Error) -> StoreError {
    StoreError::Refused(format!("reading a row: {error}"))
}

/// A lost connection is the database being unavailable; the rest is the query's
/// fault (an invalid regular expression, say).
fn classify(error: tokio_postgres::Error) -> StoreError {
    match error.as_db_error() {
        Some(db) if !db.code().code().starts_with("08") && !db.code().code().starts_with("57") => {
            StoreError::Refused(db.message().to_string())
        }
        _ => StoreError::Unavailable(error.to_string()),
    }
}
