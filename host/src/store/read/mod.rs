//! Reading stored samples back: the questions Ceilometer's v2 API asks of its
//! storage (samples, meters, resources, statistics), each answered by one query
//! (statistics over every period in one `GROUP BY`, resources with their meters in
//! two, never one per resource), over either backend.
//!
//! A filter is an [`Expr`]: the API's simple filter is a conjunction of
//! comparisons, its complex query a tree of them. [`sql`] writes it for PostgreSQL
//! or SQLite.

mod postgres;
mod rows;
pub mod sql;
mod sqlite;

use super::{StoreError, StoreUrl};
use std::collections::BTreeMap;

/// A column a filter, an order or a group can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Column {
    /// When the sample was taken.
    Timestamp,
    /// When the sample was stored.
    RecordedAt,
    /// The sample's id.
    MessageId,
    /// The meter's name.
    Meter,
    /// The meter's type.
    MeterType,
    /// The meter's unit.
    Unit,
    /// The sample's value.
    Volume,
    /// The resource's id.
    ResourceId,
    /// Where the sample comes from.
    Source,
    /// The user owning the resource.
    UserId,
    /// The project owning the resource.
    ProjectId,
}

/// What a comparison compares: a column, or a key of the resource's metadata (a path
/// into nested mappings).
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// A column.
    Column(Column),
    /// `resource_metadata.a.b`: the path `["a", "b"]`.
    Metadata(Vec<String>),
}

/// A value to compare with.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// Text.
    Text(String),
    /// A whole number.
    Int(i64),
    /// A number.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A time, in microseconds since the epoch.
    Time(i64),
}

impl Literal {
    /// As JSON (times as ISO 8601 text).
    pub fn json(&self) -> serde_json::Value {
        match self {
            Self::Text(text) => text.clone().into(),
            Self::Int(n) => (*n).into(),
            Self::Float(n) => (*n).into(),
            Self::Bool(b) => (*b).into(),
            Self::Time(us) => crate::sample::iso8601(us.saturating_mul(1000)).into(),
        }
    }

    /// As text: the text itself, else its JSON.
    pub fn text(&self) -> String {
        match self.json() {
            serde_json::Value::String(text) => text,
            other => other.to_string(),
        }
    }
}

/// A comparison's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `=~`: matches a regular expression.
    Matches,
}

/// A filter over samples (joined with their meter and resource).
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Every operand holds (none: always).
    And(Vec<Expr>),
    /// Some operand holds.
    Or(Vec<Expr>),
    /// The operand does not hold.
    Not(Box<Expr>),
    /// `field op value`.
    Compare(Field, CompareOp, Literal),
    /// The field is one of the values.
    In(Field, Vec<Literal>),
    /// The column has no value (Ceilometer's `user_id=None`).
    IsNull(Column),
}

impl Expr {
    /// Always true.
    pub fn all() -> Self {
        Self::And(Vec::new())
    }

    /// This and `other`.
    pub fn and(self, other: Expr) -> Self {
        match self {
            Self::And(mut operands) => {
                operands.push(other);
                Self::And(operands)
            }
            one => Self::And(vec![one, other]),
        }
    }

    /// Whether any comparison names a column of samples (not of resources).
    fn names_sample_columns(&self) -> bool {
        match self {
            Self::And(all) | Self::Or(all) => all.iter().any(Self::names_sample_columns),
            Self::Not(one) => one.names_sample_columns(),
            Self::Compare(Field::Column(c), ..) | Self::In(Field::Column(c), _) | Self::IsNull(c) => matches!(
                c,
                Column::Timestamp
                    | Column::RecordedAt
                    | Column::MessageId
                    | Column::Meter
                    | Column::MeterType
                    | Column::Unit
                    | Column::Volume
            ),
            _ => false,
        }
    }
}

/// An order of samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Order {
    /// By what.
    pub column: Column,
    /// Largest first.
    pub descending: bool,
}

/// A stored sample, as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSample {
    /// Its id.
    pub message_id: String,
    /// Its meter's name.
    pub meter: String,
    /// Its meter's type.
    pub meter_type: String,
    /// Its meter's unit.
    pub unit: String,
    /// Its value.
    pub volume: f64,
    /// Its resource.
    pub resource_id: String,
    /// The resource's user.
    pub user_id: Option<String>,
    /// The resource's project.
    pub project_id: Option<String>,
    /// Where it comes from.
    pub source: String,
    /// Microseconds since the epoch.
    pub timestamp: i64,
    /// Microseconds since the epoch.
    pub recorded_at: i64,
    /// The resource version's metadata, as JSON text.
    pub metadata: String,
}

/// A meter of a resource (or, when listed unique, of any).
#[derive(Debug, Clone, PartialEq)]
pub struct MeterOfResource {
    /// The meter's name.
    pub name: String,
    /// Its type.
    pub meter_type: String,
    /// Its unit.
    pub unit: String,
    /// `None` when meters are listed unique.
    pub resource: Option<ResourceOwner>,
}

/// Who owns a resource, and where its samples come from.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceOwner {
    /// The resource.
    pub resource_id: String,
    /// Its user.
    pub user_id: Option<String>,
    /// Its project.
    pub project_id: Option<String>,
    /// Where its samples come from.
    pub source: String,
}

/// A resource: its latest version's owner and metadata, its span of samples and its
/// meters.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResource {
    /// Who owns it (its latest version).
    pub owner: ResourceOwner,
    /// Microseconds since the epoch.
    pub first_sample: i64,
    /// Microseconds since the epoch.
    pub last_sample: i64,
    /// JSON text.
    pub metadata: String,
    /// Its meters' names, sorted.
    pub meters: Vec<String>,
}

/// A statistic computed over samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Aggregate {
    /// The mean.
    Avg,
    /// The total.
    Sum,
    /// The smallest.
    Min,
    /// The largest.
    Max,
    /// How many.
    Count,
    /// Population standard deviation.
    Stddev,
    /// How many distinct values of a column (resource, user or project).
    Cardinality(Column),
}

/// What statistics are grouped by.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupBy {
    /// A column (resource, user, project or source).
    Column(Column),
    /// A key of the resource's metadata.
    Metadata(Vec<String>),
}

/// Periods: from `start`, each `length_us` long, up to (not including) `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Periods {
    /// The first period's start (µs).
    pub start: i64,
    /// Each period's length (µs).
    pub length_us: i64,
    /// Where periods stop (µs, excluded).
    pub end: i64,
}

/// Statistics of one group in one period.
#[derive(Debug, Clone, PartialEq)]
pub struct StatisticsRow {
    /// The period's start (microseconds), when periods were asked for.
    pub period_start: Option<i64>,
    /// The meter's unit.
    pub unit: String,
    /// The groups' values, in the order asked.
    pub groups: Vec<Option<String>>,
    /// The first sample's time (microseconds).
    pub first: i64,
    /// The last sample's time (microseconds).
    pub last: i64,
    /// Each aggregate asked for (count as a float too).
    pub values: BTreeMap<Aggregate, Option<f64>>,
}

/// A statistics question.
#[derive(Debug, Clone, PartialEq)]
pub struct StatisticsQuery {
    /// Which samples.
    pub filter: Expr,
    /// Periods, if any.
    pub periods: Option<Periods>,
    /// Groups, in order.
    pub groupby: Vec<GroupBy>,
    /// What to compute.
    pub aggregates: Vec<Aggregate>,
}

/// The error for a database holding no store this Pollen reads.
fn no_schema(why: String) -> StoreError {
    StoreError::Schema(format!(
        "no samples stored by this Pollen here ({why}); start a collector or agent storing into it first"
    ))
}

/// A store opened for reading: a few PostgreSQL connections, or SQLite connections
/// opened per question (cheap, and WAL lets them read while the collector writes).
pub enum Reader {
    /// PostgreSQL.
    Postgres(postgres::PgReader),
    /// SQLite.
    Sqlite(sqlite::SqliteReader),
}

impl Reader {
    /// Opens the store at `url` for reading; its schema must be one this Pollen
    /// knows (a collector or agent writing to it creates it).
    pub async fn open(url: &StoreUrl) -> Result<Self, StoreError> {
        Ok(match url {
            StoreUrl::Postgres(config) => Self::Postgres(postgres::PgReader::open(config).await?),
            StoreUrl::Sqlite(path) => Self::Sqlite(sqlite::SqliteReader::open(path.clone()).await?),
        })
    }

    /// Samples matching `filter`, in `order` (newest first by default), at most `limit`.
    pub async fn samples(&self, filter: &Expr, order: &[Order], limit: u64) -> Result<Vec<StoredSample>, StoreError> {
        self.read(sql::samples(self.dialect(), filter, order, limit), rows::sample).await
    }

    /// Meters of resources matching `filter` (on resources only), at most `limit`;
    /// `unique`: one row per meter.
    pub async fn meters(&self, filter: &Expr, unique: bool, limit: u64) -> Result<Vec<MeterOfResource>, StoreError> {
        self.read(sql::meters(self.dialect(), filter, unique, limit), move |row| rows::meter(row, unique)).await
    }

    /// Resources with a version matching `filter`, at most `limit`, by id. A filter
    /// on samples' columns (a time range) reads the samples for their span; else the
    /// spans kept as samples are written serve.
    pub async fn resources(&self, filter: &Expr, limit: u64) -> Result<Vec<StoredResource>, StoreError> {
        let query = sql::resources(self.dialect(), filter, filter.names_sample_columns(), limit);
        let mut resources = self.read(query, rows::resource).await?;
        if resources.is_empty() {
            return Ok(resources);
        }
        let ids: Vec<String> = resources.iter().map(|r| r.owner.resource_id.clone()).collect();
        let query = sql::meters_of(self.dialect(), &ids);
        let pairs = self.read(query, rows::pair).await?;
        let mut meters: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
        for (resource, meter) in pairs {
            meters.entry(resource).or_default().push(meter);
        }
        for resource in &mut resources {
            // Distinct already (the query's); sorted bytewise, whatever the database's collation.
            let mut names = meters.remove(&resource.owner.resource_id).unwrap_or_default();
            names.sort();
            resource.meters = names;
        }
        Ok(resources)
    }

    /// The first and last times of the samples matching `filter`, if any.
    pub async fn time_range(&self, filter: &Expr) -> Result<Option<(i64, i64)>, StoreError> {
        let range = self.read(sql::time_range(self.dialect(), filter), rows::time_range).await?;
        Ok(range.into_iter().next().flatten())
    }

    /// Statistics, every period and group in one query.
    pub async fn statistics(&self, question: &StatisticsQuery) -> Result<Vec<StatisticsRow>, StoreError> {
        let owned = question.clone();
        self.read(sql::statistics(self.dialect(), question), move |row| rows::statistics(row, &owned)).await
    }

    /// The rows of `query`, each through `decode`, on whichever backend.
    async fn read<T: Send + 'static>(
        &self,
        query: sql::Query,
        decode: impl Fn(&dyn rows::Cells) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<Vec<T>, StoreError> {
        match self {
            Self::Postgres(reader) => reader.read(query, decode).await,
            Self::Sqlite(reader) => reader.read(query, decode).await,
        }
    }

    fn dialect(&self) -> sql::Dialect {
        match self {
            Self::Postgres(_) => sql::Dialect::Postgres,
            Self::Sqlite(_) => sql::Dialect::Sqlite,
        }
    }
}
