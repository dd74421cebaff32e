//! The read queries' SQL, for PostgreSQL or SQLite: one builder, the dialects
//! differing only in placeholders, times, metadata paths and lists.

use super::{Aggregate, Column, CompareOp, Expr, Field, GroupBy, Literal, Order, StatisticsQuery};

/// Which database the SQL is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// Text.
    Text(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// Microseconds since the epoch.
    Time(i64),
    /// A list of texts (PostgreSQL `text[]`; SQLite a JSON array read with `json_each`).
    TextList(Vec<String>),
}

/// SQL text and the values of its placeholders.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The SQL.
    pub text: String,
    /// `$1`, `$2`, … (or `?1`, …) in order.
    pub params: Vec<Param>,
}

/// The joins every sample query reads through.
const SAMPLES_JOINED: &str =
    "samples s JOIN meters m ON m.id = s.meter_id JOIN resources r ON r.id = s.resource_version";

struct Builder {
    dialect: Dialect,
    params: Vec<Param>,
}

impl Builder {
    fn new(dialect: Dialect) -> Self {
        Self { dialect, params: Vec::new() }
    }

    /// A placeholder for `param` (typed on PostgreSQL, which infers no type from a
    /// bare one in a select list).
    fn bind(&mut self, param: Param) -> String {
        let cast = match (&param, self.dialect) {
            (_, Dialect::Sqlite) => "",
            (Param::Text(_), _) => "::text",
            (Param::Int(_), _) => "::int8",
            (Param::Float(_), _) => "::float8",
            (Param::Bool(_), _) => "::bool",
            (Param::Time(_), _) => "::timestamptz",
            (Param::TextList(_), _) => "::text[]",
        };
        self.params.push(param);
        match self.dialect {
            Dialect::Postgres => format!("${}{cast}", self.params.len()),
            Dialect::Sqlite => format!("?{}", self.params.len()),
        }
    }

    fn finish(self, text: String) -> Query {
        Query { text, params: self.params }
    }

    /// A metadata value at `path`, as JSON (PostgreSQL) or SQL value (SQLite).
    fn metadata_value(&mut self, path: &[String]) -> String {
        match self.dialect {
            Dialect::Postgres => {
                let path = self.bind(Param::TextList(path.to_vec()));
                format!("(r.metadata #> {path})")
            }
            Dialect::Sqlite => {
                let path = self.bind(Param::Text(json_path(path)));
                format!("json_extract(r.metadata, {path})")
            }
        }
    }

    /// A metadata value at `path`, as text.
    fn metadata_text(&mut self, path: &[String]) -> String {
        match self.dialect {
            Dialect::Postgres => {
                let path = self.bind(Param::TextList(path.to_vec()));
                format!("(r.metadata #>> {path})")
            }
            Dialect::Sqlite => {
                let path = self.bind(Param::Text(json_path(path)));
                format!("CAST(json_extract(r.metadata, {path}) AS TEXT)")
            }
        }
    }

    /// A literal compared with metadata: JSON on PostgreSQL, a SQL value on SQLite
    /// (whose `json_extract` gives booleans as 1 and 0).
    fn metadata_literal(&mut self, literal: &Literal) -> String {
        match self.dialect {
            Dialect::Postgres => {
                let json = literal.json().to_string();
                format!("{}::jsonb", self.bind(Param::Text(json)))
            }
            Dialect::Sqlite => match literal {
                Literal::Bool(b) => self.bind(Param::Int(i64::from(*b))),
                other => self.bind(literal_param(other)),
            },
        }
    }

    fn expr(&mut self, expr: &Expr) -> String {
        match expr {
            Expr::And(all) if all.is_empty() => "TRUE".into(),
            Expr::And(all) => self.joined(all, " AND "),
            Expr::Or(any) if any.is_empty() => "FALSE".into(),
            Expr::Or(any) => self.joined(any, " OR "),
            Expr::Not(one) => format!("(NOT {})", self.expr(one)),
            Expr::IsNull(column) => format!("({} IS NULL)", column_sql(*column)),
            Expr::In(field, values) => {
                let any: Vec<Expr> =
                    values.iter().map(|v| Expr::Compare(field.clone(), CompareOp::Eq, v.clone())).collect();
                self.expr(&Expr::Or(any))
            }
            Expr::Compare(Field::Column(column), op, value) => {
                let value = self.bind(column_param(*column, value));
                let column = column_sql(*column);
                match op {
                    CompareOp::Matches => match self.dialect {
                        Dialect::Postgres => format!("({column} ~ {value})"),
                        Dialect::Sqlite => format!("({column} REGEXP {value})"),
                    },
                    op => format!("({column} {} {value})", operator(*op)),
                }
            }
            Expr::Compare(Field::Metadata(path), op, value) => match (op, self.dialect) {
                // Containment: served by the GIN index on metadata.
                (CompareOp::Eq, Dialect::Postgres) => {
                    let mut nested = value.json();
                    for key in path.iter().rev() {
                        nested = serde_json::json!({ key: nested });
                    }
                    format!("(r.metadata @> {}::jsonb)", self.bind(Param::Text(nested.to_string())))
                }
                (CompareOp::Matches, dialect) => {
                    let text = self.metadata_text(path);
                    let pattern = self.bind(Param::Text(value.text()));
                    match dialect {
                        Dialect::Postgres => format!("({text} ~ {pattern})"),
                        Dialect::Sqlite => format!("({text} REGEXP {pattern})"),
                    }
                }
                (op, _) => {
                    let stored = self.metadata_value(path);
                    let value = self.metadata_literal(value);
                    format!("({stored} {} {value})", operator(*op))
                }
            },
        }
    }

    fn joined(&mut self, operands: &[Expr], with: &str) -> String {
        let parts: Vec<String> = operands.iter().map(|e| self.expr(e)).collect();
        format!("({})", parts.join(with))
    }

    /// The metadata as JSON text.
    fn metadata_json(&self) -> &'static str {
        match self.dialect {
            Dialect::Postgres => "r.metadata::text",
            Dialect::Sqlite => "r.metadata",
        }
    }

    fn float(&self, expression: &str) -> String {
        match self.dialect {
            Dialect::Postgres => format!("({expression})::float8"),
            Dialect::Sqlite => format!("CAST({expression} AS REAL)"),
        }
    }

    /// `expression` is one of `values`.
    fn in_list(&mut self, expression: &str, values: &[String]) -> String {
        match self.dialect {
            Dialect::Postgres => format!("{expression} = ANY({})", self.bind(Param::TextList(values.to_vec()))),
            Dialect::Sqlite => {
                let list = serde_json::Value::from(values.to_vec()).to_string();
                format!("{expression} IN (SELECT value FROM json_each({}))", self.bind(Param::Text(list)))
            }
        }
    }
}

/// SQLite's JSON path for nested keys: `$."a"."b"`.
fn json_path(path: &[String]) -> String {
    let mut text = String::from("$");
    for key in path {
        text.push_str(".\"");
        text.push_str(&key.replace('"', "\\\""));
        text.push('"');
    }
    text
}

fn literal_param(literal: &Literal) -> Param {
    match literal {
        Literal::Text(text) => Param::Text(text.clone()),
        Literal::Int(n) => Param::Int(*n),
        Literal::Float(n) => Param::Float(*n),
        Literal::Bool(b) => Param::Bool(*b),
        Literal::Time(us) => Param::Time(*us),
    }
}

/// A literal as the column's type: times for times, numbers for the volume, text
/// for the rest (the API refuses what does not convert before it gets here).
fn column_param(column: Column, literal: &Literal) -> Param {
    match (column, literal) {
        (Column::Timestamp | Column::RecordedAt, Literal::Time(us)) => Param::Time(*us),
        (Column::Timestamp | Column::RecordedAt, Literal::Int(n)) => Param::Time(*n),
        (Column::Volume, Literal::Int(n)) => Param::Float(*n as f64),
        (Column::Volume, Literal::Float(n)) => Param::Float(*n),
        (Column::Volume, Literal::Bool(b)) => Param::Float(f64::from(u8::from(*b))),
        (Column::Volume, Literal::Text(text)) => Param::Float(text.trim().parse().unwrap_or(f64::NAN)),
        (_, literal) => Param::Text(literal.text()),
    }
}

fn operator(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Eq => "=",
        CompareOp::Ne => "<>",
        CompareOp::Lt => "<",
        CompareOp::Le => "<=",
        CompareOp::Gt => ">",
        CompareOp::Ge => ">=",
        CompareOp::Matches => "~",
    }
}

/// A column's SQL, over [`SAMPLES_JOINED`].
pub fn column_sql(column: Column) -> &'static str {
    match column {
        Column::Timestamp => "s.timestamp",
        Column::RecordedAt => "s.recorded_at",
        Column::MessageId => "s.message_id",
        Column::Meter => "m.name",
        Column::MeterType => "m.type",
        Column::Unit => "m.unit",
        Column::Volume => "s.volume",
        Column::ResourceId => "r.resource_id",
        Column::Source => "r.source",
        Column::UserId => "r.user_id",
        Column::ProjectId => "r.project_id",
    }
}

/// Samples, newest first unless ordered otherwise. Columns: message id, meter,
/// type, unit, volume, resource, user, project, source, timestamp, recorded at,
/// metadata.
pub fn samples(dialect: Dialect, filter: &Expr, order: &[Order], limit: u64) -> Query {
    let mut b = Builder::new(dialect);
    let condition = b.expr(filter);
    let mut orders: Vec<String> = order
        .iter()
        .map(|o| format!("{} {}", column_sql(o.column), if o.descending { "DESC" } else { "ASC" }))
        .collect();
    if orders.is_empty() {
        orders.push("s.timestamp DESC".into());
    }
    let limit = b.bind(Param::Int(clamp(limit)));
    let text = format!(
        "SELECT s.message_id, m.name, m.type, m.unit, s.volume, r.resource_id, r.user_id, r.project_id, r.source,
                s.timestamp, s.recorded_at, {}
         FROM {SAMPLES_JOINED} WHERE {condition} ORDER BY {} LIMIT {limit}",
        b.metadata_json(),
        orders.join(", ")
    );
    b.finish(text)
}

/// Meters of resources. Columns: name, type, unit, then (unless `unique`) resource,
/// user, project, source, of the latest version of the resource having that meter.
pub fn meters(dialect: Dialect, filter: &Expr, unique: bool, limit: u64) -> Query {
    let mut b = Builder::new(dialect);
    let condition = b.expr(filter);
    let limit = b.bind(Param::Int(clamp(limit)));
    const JOINED: &str = "resource_meters rm JOIN resources r ON r.id = rm.resource_version
         JOIN meters m ON m.id = rm.meter_id JOIN resource_spans sp ON sp.resource_version = rm.resource_version";
    let text = if unique {
        format!(
            "SELECT DISTINCT m.name, m.type, m.unit FROM {JOINED} WHERE {condition}
             ORDER BY m.name, m.type, m.unit LIMIT {limit}"
        )
    } else {
        format!(
            "SELECT name, type, unit, resource_id, user_id, project_id, source FROM (
               SELECT m.name, m.type, m.unit, r.resource_id, r.user_id, r.project_id, r.source,
                      row_number() OVER (PARTITION BY rm.meter_id, r.resource_id
                                         ORDER BY sp.last_timestamp DESC, r.id DESC) AS latest
               FROM {JOINED} WHERE {condition}) AS v
             WHERE latest = 1 ORDER BY name, resource_id LIMIT {limit}"
        )
    };
    b.finish(text)
}

/// Resources: the latest matching version's owner and metadata, and the span of
/// every matching version. `from_samples`: the span of the samples the filter
/// keeps (it names samples' columns), else the spans kept as samples are written.
/// Columns: resource, user, project, source, first, last, metadata.
pub fn resources(dialect: Dialect, filter: &Expr, from_samples: bool, limit: u64) -> Query {
    let mut b = Builder::new(dialect);
    let condition = b.expr(filter);
    let spans = if from_samples {
        format!(
            "(SELECT s.resource_version, min(s.timestamp) AS first_timestamp, max(s.timestamp) AS last_timestamp
              FROM {SAMPLES_JOINED} WHERE {condition} GROUP BY s.resource_version)"
        )
    } else {
        "resource_spans".into()
    };
    let outer_condition = if from_samples { "TRUE".to_string() } else { condition };
    let limit = b.bind(Param::Int(clamp(limit)));
    let text = format!(
        "SELECT resource_id, user_id, project_id, source, first_sample, last_sample, metadata FROM (
           SELECT r.resource_id, r.user_id, r.project_id, r.source, {} AS metadata,
                  min(sp.first_timestamp) OVER w AS first_sample, max(sp.last_timestamp) OVER w AS last_sample,
                  row_number() OVER (PARTITION BY r.resource_id ORDER BY sp.last_timestamp DESC, r.id DESC) AS latest
           FROM resources r JOIN {spans} sp ON sp.resource_version = r.id
           WHERE {outer_condition}
           WINDOW w AS (PARTITION BY r.resource_id)) AS v
         WHERE latest = 1 ORDER BY resource_id LIMIT {limit}",
        b.metadata_json()
    );
    b.finish(text)
}

/// The meters of the resources `ids`. Columns: resource, meter.
pub fn meters_of(dialect: Dialect, ids: &[String]) -> Query {
    let mut b = Builder::new(dialect);
    let condition = b.in_list("r.resource_id", ids);
    let text = format!(
        "SELECT DISTINCT r.resource_id, m.name FROM resource_meters rm
         JOIN resources r ON r.id = rm.resource_version JOIN meters m ON m.id = rm.meter_id WHERE {condition}"
    );
    b.finish(text)
}

/// The first and last times of matching samples. Columns: first, last.
pub fn time_range(dialect: Dialect, filter: &Expr) -> Query {
    let mut b = Builder::new(dialect);
    let condition = b.expr(filter);
    let text = format!("SELECT min(s.timestamp), max(s.timestamp) FROM {SAMPLES_JOINED} WHERE {condition}");
    b.finish(text)
}

/// Statistics of every period and group, in one query. Columns: the period's start
/// (or NULL), unit, each group, first and last times, each aggregate (as a float).
pub fn statistics(dialect: Dialect, question: &StatisticsQuery) -> Query {
    let mut b = Builder::new(dialect);
    let mut condition = b.expr(&question.filter);
    let period = match question.periods {
        Some(periods) => {
            let from = b.bind(Param::Time(periods.start));
            let to = b.bind(Param::Time(periods.end));
            condition = format!("{condition} AND s.timestamp >= {from} AND s.timestamp < {to}");
            match dialect {
                Dialect::Postgres => {
                    let seconds = b.bind(Param::Float(periods.length_us as f64 / 1e6));
                    let origin = b.bind(Param::Time(periods.start));
                    format!("date_bin(make_interval(secs => {seconds}), s.timestamp, {origin})")
                }
                Dialect::Sqlite => {
                    let origin = b.bind(Param::Time(periods.start));
                    let length = b.bind(Param::Int(periods.length_us));
                    format!("({origin} + ((s.timestamp - {origin}) / {length}) * {length})")
                }
            }
        }
        None => "NULL".into(),
    };
    let mut groups = Vec::new();
    for group in &question.groupby {
        match group {
            GroupBy::Column(column) => groups.push(column_sql(*column).to_string()),
            GroupBy::Metadata(path) => {
                let value = b.metadata_text(path);
                condition = format!("{condition} AND {value} IS NOT NULL");
                // Its own placeholders again: a select expression must match its
                // GROUP BY's, which is by position here.
                groups.push(b.metadata_text(path));
            }
        }
    }
    let aggregates: Vec<String> = question
        .aggregates
        .iter()
        .map(|aggregate| {
            let expression = match aggregate {
                Aggregate::Avg => "avg(s.volume)".to_string(),
                Aggregate::Sum => "sum(s.volume)".to_string(),
                Aggregate::Min => "min(s.volume)".to_string(),
                Aggregate::Max => "max(s.volume)".to_string(),
                Aggregate::Count => "count(s.volume)".to_string(),
                Aggregate::Stddev => "stddev_pop(s.volume)".to_string(),
                Aggregate::Cardinality(column) => format!("count(DISTINCT {})", column_sql(*column)),
            };
            b.float(&expression)
        })
        .collect();
    let mut select = vec![period, "m.unit".to_string()];
    select.extend(groups.iter().cloned());
    select.push("min(s.timestamp)".into());
    select.push("max(s.timestamp)".into());
    select.extend(aggregates);
    let keys: Vec<String> = (1..=2 + groups.len()).map(|i| i.to_string()).collect();
    let text = format!(
        "SELECT {} FROM {SAMPLES_JOINED} WHERE {condition} GROUP BY {keys} ORDER BY {keys}",
        select.join(", "),
        keys = keys.join(", ")
    );
    b.finish(text)
}

fn clamp(limit: u64) -> i64 {
    limit.min(i64::MAX as u64) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_bind_every_value_and_name_columns_by_the_joins() {
        let filter = Expr::all()
            .and(Expr::Compare(Field::Column(Column::Meter), CompareOp::Eq, Literal::Text("cpu".into())))
            .and(Expr::Compare(Field::Metadata(vec!["a".into(), "b".into()]), CompareOp::Eq, Literal::Int(5)))
            .and(Expr::IsNull(Column::UserId));
        let pg = samples(Dialect::Postgres, &filter, &[], 10);
        assert!(pg.text.contains("(m.name = $1::text) AND (r.metadata @> $2::text::jsonb) AND (r.user_id IS NULL)"));
        assert_eq!(pg.params[1], Param::Text(r#"{"a":{"b":5}}"#.into()));
        let lite = samples(Dialect::Sqlite, &filter, &[], 10);
        assert!(lite.text.contains("(json_extract(r.metadata, ?2) = ?3)"), "{}", lite.text);
        assert_eq!(lite.params[1], Param::Text(r#"$."a"."b""#.into()));
        assert_eq!(lite.params.last(), Some(&Param::Int(10)));
    }

    #[test]
    fn statistics_group_by_position_and_bucket_from_the_start() {
        let question = StatisticsQuery {
            filter: Expr::all(),
            periods: Some(super::super::Periods { start: 0, length_us: 60_000_000, end: 600_000_000 }),
            groupby: vec![GroupBy::Column(Column::ResourceId)],
            aggregates: vec![Aggregate::Avg, Aggregate::Cardinality(Column::ProjectId)],
        };
        let pg = statistics(Dialect::Postgres, &question);
        assert!(pg.text.contains("date_bin(make_interval(secs => $3::float8), s.timestamp, $4::timestamptz)"));
        assert!(pg.text.contains("GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"), "{}", pg.text);
        assert!(pg.text.contains("(count(DISTINCT r.project_id))::float8"));
    }
}
