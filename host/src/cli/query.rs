//! `pollen query`: the API's questions from a terminal, read from the store
//! directly, as a table or (`--json`) as the API would answer them.

use crate::api::answers::{self, StatisticsRequest};
use crate::api::auth::Caller;
use crate::api::simple::Condition;
use crate::store::read::Reader;
use crate::store::StoreUrl;
use clap::{Args, Subcommand};
use serde_json::Value;
use std::process::ExitCode;

/// What to ask.
#[derive(Subcommand)]
pub enum QueryCommand {
    /// The meters of each resource (`--unique`: each meter once).
    Meters {
        #[command(flatten)]
        filter: QueryFilter,
        /// Each meter once, whatever its resources.
        #[arg(long)]
        unique: bool,
    },
    /// Samples, newest first.
    Samples {
        #[command(flatten)]
        filter: QueryFilter,
    },
    /// Resources, with their first and last samples' times.
    Resources {
        #[command(flatten)]
        filter: QueryFilter,
    },
    /// Statistics of one meter (`--meter`), per period and group.
    Statistics {
        #[command(flatten)]
        filter: QueryFilter,
        /// Periods of this long (`300`, `5m`, `1h`, `1d`); none: one over everything.
        #[arg(long)]
        period: Option<String>,
        /// Group by `resource_id`, `project_id`, `user_id`, `source` or
        /// `resource_metadata.<key>` (repeat for several).
        #[arg(long = "group-by")]
        group_by: Vec<String>,
        /// Aggregates instead of the standard five: `avg`, `sum`, `min`, `max`,
        /// `count`, `stddev`, `cardinality/resource_id` (repeat for several).
        #[arg(long)]
        aggregate: Vec<String>,
    },
}

/// The filters every question takes.
#[derive(Args)]
pub struct QueryFilter {
    /// The store (default `database://`, the collector's default).
    #[arg(long, env = "POLLEN_STORE", default_value = "database://")]
    store: String,
    /// Only this meter.
    #[arg(long)]
    meter: Option<String>,
    /// Only this resource.
    #[arg(long)]
    resource: Option<String>,
    /// Only this project.
    #[arg(long)]
    project: Option<String>,
    /// Only this user.
    #[arg(long)]
    user: Option<String>,
    /// Only this source.
    #[arg(long)]
    source: Option<String>,
    /// Only resources whose metadata has `KEY=VALUE` (nested keys with dots).
    #[arg(long = "metadata", value_name = "KEY=VALUE")]
    metadata: Vec<String>,
    /// Since a time ago (`2h`, `30m`, `7d`) or an ISO 8601 time.
    #[arg(long)]
    since: Option<String>,
    /// Until a time ago or an ISO 8601 time.
    #[arg(long)]
    until: Option<String>,
    /// At most this many rows.
    #[arg(long, default_value_t = 100)]
    limit: u64,
    /// Print the API's JSON (one array) instead of a table.
    #[arg(long)]
    json: bool,
}

impl QueryFilter {
    /// The filter as the API's `q.*` conditions.
    fn conditions(&self, with_meter: bool, now_us: i64) -> anyhow::Result<Vec<Condition>> {
        let mut conditions = Vec::new();
        let mut push = |field: &str, op: &str, value: &str| {
            conditions.push(Condition { field: field.into(), op: op.into(), value: value.into(), kind: String::new() })
        };
        if with_meter {
            if let Some(meter) = &self.meter {
                push("meter", "eq", meter);
            }
        }
        for (field, value) in [
            ("resource_id", &self.resource),
            ("project_id", &self.project),
            ("user_id", &self.user),
            ("source", &self.source),
        ] {
            if let Some(value) = value {
                push(field, "eq", value);
            }
        }
        for pair in &self.metadata {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--metadata {pair}: write KEY=VALUE, e.g. flavor.name=m1.tiny"))?;
            push(&format!("metadata.{key}"), "eq", value);
        }
        if let Some(since) = &self.since {
            push("timestamp", "ge", &time_argument("--since", since, now_us)?);
        }
        if let Some(until) = &self.until {
            push("timestamp", "lt", &time_argument("--until", until, now_us)?);
        }
        Ok(conditions)
    }
}

/// `2h` ago as an ISO time, or an ISO time as given.
fn time_argument(flag: &str, text: &str, now_us: i64) -> anyhow::Result<String> {
    if crate::api::time::parse_isotime(text).is_some() {
        return Ok(text.to_string());
    }
    let seconds = duration_seconds(text).ok_or_else(|| {
        anyhow::anyhow!("{flag} {text}: write a time ago (`90s`, `30m`, `2h`, `7d`) or an ISO 8601 time")
    })?;
    Ok(crate::api::time::isoformat(now_us - seconds * 1_000_000))
}

/// `300`, `90s`, `5m`, `2h`, `7d` in seconds (read as the collector reads a time to
/// live).
fn duration_seconds(text: &str) -> Option<i64> {
    crate::store::retention::parse_duration(text).ok().map(|d| d.as_secs().min(i64::MAX as u64) as i64)
}

/// Runs a question and prints its answer.
pub fn query(command: &QueryCommand) -> anyhow::Result<ExitCode> {
    let filter = match command {
        QueryCommand::Meters { filter, .. }
        | QueryCommand::Samples { filter }
        | QueryCommand::Resources { filter }
        | QueryCommand::Statistics { filter, .. } => filter,
    };
    let url = StoreUrl::parse(&filter.store).map_err(|e| anyhow::anyhow!("--store: {e}"))?;
    let now_us = crate::sample::now_ns() / 1000;
    let admin = Caller::admin();
    let rows: Vec<Value> = super::runtime()?.block_on(async {
        let reader = Reader::open(&url).await.map_err(|e| anyhow::anyhow!("{}: {e}", url.shown()))?;
        let answer = match command {
            QueryCommand::Meters { unique, .. } => {
                answers::meters(&reader, &admin, &filter.conditions(false, now_us)?, *unique, filter.limit).await
            }
            QueryCommand::Samples { .. } => {
                answers::samples(&reader, &admin, &filter.conditions(true, now_us)?, None, filter.limit).await
            }
            QueryCommand::Resources { .. } => {
                let conditions = filter.conditions(false, now_us)?;
                answers::resources(&reader, &admin, &conditions, filter.limit, "", false).await
            }
            QueryCommand::Statistics { period, group_by, aggregate, .. } => {
                let meter =
                    filter.meter.clone().ok_or_else(|| anyhow::anyhow!("statistics: name the meter with --meter"))?;
                let period = match period {
                    None => None,
                    Some(text) => Some(
                        duration_seconds(text)
                            .ok_or_else(|| anyhow::anyhow!("--period {text}: write seconds or `5m`, `1h`, `1d`"))?,
                    ),
                };
                let request = StatisticsRequest {
                    meter,
                    conditions: filter.conditions(false, now_us)?,
                    period,
                    groupby: group_by.clone(),
                    aggregates: aggregate
                        .iter()
                        .map(|a| match a.split_once('/') {
                            Some((function, argument)) => (function.to_string(), Some(argument.to_string())),
                            None => (a.clone(), None),
                        })
                        .collect(),
                };
                answers::statistics(&reader, &admin, &request).await
            }
        };
        answer.map_err(|e| anyhow::anyhow!("{}", e.faultstring))
    })?;
    if filter.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    let columns: &[&str] = match command {
        QueryCommand::Meters { unique: true, .. } => &["name", "type", "unit"],
        QueryCommand::Meters { .. } => &["name", "type", "unit", "resource_id", "project_id"],
        QueryCommand::Samples { .. } => &["timestamp", "meter", "volume", "unit", "resource_id", "project_id"],
        QueryCommand::Resources { .. } => {
            &["resource_id", "project_id", "user_id", "first_sample_timestamp", "last_sample_timestamp"]
        }
        QueryCommand::Statistics { .. } => {
            &["period_start", "period_end", "groupby", "count", "min", "max", "avg", "sum", "aggregate"]
        }
    };
    print!("{}", table(columns, &rows));
    Ok(ExitCode::SUCCESS)
}

/// Rows as an aligned table, a column left out when no row has it.
fn table(columns: &[&str], rows: &[Value]) -> String {
    let shown: Vec<&str> = columns.iter().copied().filter(|c| rows.iter().any(|r| r.get(c).is_some())).collect();
    let cell = |row: &Value, column: &str| match row.get(column) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().map_or(v.to_string(), String::from)))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    };
    let cells: Vec<Vec<String>> = rows.iter().map(|row| shown.iter().map(|c| cell(row, c)).collect()).collect();
    let widths: Vec<usize> = shown
        .iter()
        .enumerate()
        .map(|(i, c)| cells.iter().map(|r| r[i].chars().count()).max().unwrap_or(0).max(c.len()))
        .collect();
    let line = |values: Vec<String>| {
        let padded: Vec<String> = values.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(shown.iter().map(|c| c.to_string()).collect());
    for row in cells {
        out.push_str(&line(row));
    }
    if rows.is_empty() {
        out.push_str("(nothing matches)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_tables_read_as_people_write_them() {
        assert_eq!(duration_seconds("5m"), Some(300));
        assert_eq!(duration_seconds("600"), Some(600));
        assert_eq!(duration_seconds("2x"), None);
        let rows = vec![
            serde_json::json!({"name": "cpu", "unit": "ns"}),
            serde_json::json!({"name": "memory.usage", "unit": "MB"}),
        ];
        assert_eq!(table(&["name", "type", "unit"], &rows), "name          unit\ncpu           ns\nmemory.usage  MB\n");
    }
}
