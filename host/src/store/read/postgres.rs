//! Reading from PostgreSQL: a small pool of connections, each question one query.

use super::no_schema;
use super::rows::Cells;
use super::sql::{Param, Query};
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

    /// The rows of `query`, each through `decode`.
    pub async fn read<T>(
        &self,
        query: Query,
        decode: impl Fn(&dyn Cells) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        self.rows(query).await?.iter().map(|row| decode(row)).collect()
    }
}

impl Cells for Row {
    fn text(&self, index: usize) -> Result<String, StoreError> {
        self.try_get(index).map_err(decode)
    }

    fn opt_text(&self, index: usize) -> Result<Option<String>, StoreError> {
        self.try_get(index).map_err(decode)
    }

    fn opt_float(&self, index: usize) -> Result<Option<f64>, StoreError> {
        self.try_get(index).map_err(decode)
    }

    fn opt_micros(&self, index: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get::<_, Option<SystemTime>>(index).map_err(decode)?.map(system_micros))
    }
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
