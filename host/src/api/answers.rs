//! What each endpoint answers, apart from HTTP: the API's handlers and `pollen
//! query` both ask these, so a terminal sees what a client sees.

use super::auth::Caller;
use super::complex::{self, ComplexQuery};
use super::error::ApiError;
use super::shapes::{self, StatisticsShape};
use super::simple::{translate, Condition, Target};
use crate::store::read::{
    Aggregate, Column, CompareOp, Expr, Field, GroupBy, Literal, Periods, Reader, StatisticsQuery,
};
use serde_json::Value;

fn equals(column: Column, value: &str) -> Expr {
    Expr::Compare(Field::Column(column), CompareOp::Eq, Literal::Text(value.to_string()))
}

/// `GET /v2/meters`.
pub async fn meters(
    reader: &Reader,
    caller: &Caller,
    conditions: &[Condition],
    unique: bool,
    limit: u64,
) -> Result<Vec<Value>, ApiError> {
    let filter = translate(conditions, Target::Meters, caller)?;
    Ok(reader.meters(&filter.expr, unique, limit).await?.iter().map(shapes::meter).collect())
}

/// `GET /v2/samples` (`meter`: `GET /v2/meters/<meter>`, in the old shape).
pub async fn samples(
    reader: &Reader,
    caller: &Caller,
    conditions: &[Condition],
    meter: Option<&str>,
    limit: u64,
) -> Result<Vec<Value>, ApiError> {
    let filter = translate(conditions, Target::Samples, caller)?;
    match meter {
        Some(meter) => {
            let found = reader.samples(&filter.expr.and(equals(Column::Meter, meter)), &[], limit).await?;
            Ok(found.iter().map(shapes::old_sample).collect())
        }
        None => Ok(reader.samples(&filter.expr, &[], limit).await?.iter().map(shapes::sample).collect()),
    }
}

/// `GET /v2/samples/<id>`: only in the caller's project unless an admin.
pub async fn sample(reader: &Reader, caller: &Caller, id: &str) -> Result<Value, ApiError> {
    let mut filter = equals(Column::MessageId, id);
    if let Some(own) = caller.limited_to() {
        filter = filter.and(equals(Column::ProjectId, own));
    }
    let found = reader.samples(&filter, &[], 1).await?;
    found.first().map(shapes::sample).ok_or_else(|| ApiError::not_found("Sample", id))
}

/// `GET /v2/resources`.
pub async fn resources(
    reader: &Reader,
    caller: &Caller,
    conditions: &[Condition],
    limit: u64,
    base_url: &str,
    meter_links: bool,
) -> Result<Vec<Value>, ApiError> {
    let filter = translate(conditions, Target::Resources, caller)?;
    let found = reader.resources(&filter.expr, limit).await?;
    Ok(found.iter().map(|r| shapes::resource(r, base_url, meter_links)).collect())
}

/// `GET /v2/resources/<id>`.
pub async fn resource(reader: &Reader, caller: &Caller, id: &str, base_url: &str) -> Result<Value, ApiError> {
    let mut filter = equals(Column::ResourceId, id);
    if let Some(own) = caller.limited_to() {
        filter = filter.and(equals(Column::ProjectId, own));
    }
    let found = reader.resources(&filter, 1).await?;
    found.first().map(|r| shapes::resource(r, base_url, true)).ok_or_else(|| ApiError::not_found("Resource", id))
}

/// `POST /v2/query/samples`.
pub async fn query_samples(reader: &Reader, caller: &Caller, query: &ComplexQuery) -> Result<Vec<Value>, ApiError> {
    let valid = complex::validate(query, caller).map_err(|e| complex::status_of(&e))?;
    Ok(reader.samples(&valid.filter, &valid.order, valid.limit).await?.iter().map(shapes::sample).collect())
}

/// A statistics question, as its parameters give it.
#[derive(Debug, Clone, Default)]
pub struct StatisticsRequest {
    /// The meter.
    pub meter: String,
    /// `q.*`.
    pub conditions: Vec<Condition>,
    /// `period`, in seconds.
    pub period: Option<i64>,
    /// `groupby`.
    pub groupby: Vec<String>,
    /// `aggregate.func` and `aggregate.param`.
    pub aggregates: Vec<(String, Option<String>)>,
}

/// `GET /v2/meters/<name>/statistics`, as `MeterController.statistics` and the SQL
/// driver's `get_meter_statistics` answer it, but every period in one query (and
/// one more for the time range when the filter does not bound it).
pub async fn statistics(reader: &Reader, caller: &Caller, request: &StatisticsRequest) -> Result<Vec<Value>, ApiError> {
    if request.period.is_some_and(|p| p < 0) {
        return Err(ApiError::bad("Period must be positive."));
    }
    let filter = translate(&request.conditions, Target::Samples, caller)?;
    let groupby = groupby(&request.groupby)?;
    let selected = aggregates(&request.aggregates)?;
    let expr = filter.expr.clone().and(equals(Column::Meter, &request.meter));
    let periods = match request.period.filter(|p| *p > 0) {
        None => None,
        Some(seconds) => {
            let length_us = seconds.saturating_mul(1_000_000);
            let range = match (filter.start, filter.end) {
                (Some((start, _)), Some((end, _))) => Some((start, end, false)),
                _ => reader.time_range(&expr).await?.map(|(first, last)| {
                    (filter.start.map_or(first, |s| s.0), filter.end.map_or(last, |e| e.0), filter.end.is_none())
                }),
            };
            let Some((start, end, through_last)) = range else { return Ok(Vec::new()) };
            // Ceilometer's periods stop before the last sample when it is a whole
            // number of periods after the start; Pollen's include it.
            let count = if through_last {
                (end - start).div_euclid(length_us) + 1
            } else {
                (end - start + length_us - 1).div_euclid(length_us)
            };
            if count <= 0 {
                return Ok(Vec::new());
            }
            Some(Periods { start, length_us, end: start.saturating_add(count.saturating_mul(length_us)) })
        }
    };
    let computed: Vec<Aggregate> = match &selected {
        Some(selected) => selected.iter().map(|(a, _)| *a).collect(),
        None => shapes::STANDARD.iter().map(|(a, _)| *a).collect(),
    };
    let question = StatisticsQuery {
        filter: expr,
        periods,
        groupby: groupby.iter().map(|(_, g)| g.clone()).collect(),
        aggregates: computed,
    };
    let rows = reader.statistics(&question).await?;
    let names: Vec<String> = groupby.into_iter().map(|(name, _)| name).collect();
    let shape = StatisticsShape {
        period_s: request.period.unwrap_or(0).max(0),
        groupby: &names,
        selected: selected.as_deref(),
        query_start: filter.query_start,
        query_end: filter.query_end,
    };
    Ok(rows.iter().map(|row| shapes::statistics(row, &shape)).collect())
}

/// `groupby`: `user_id`, `project_id`, `resource_id`, `source` or
/// `resource_metadata.<key>`, duplicates dropped.
fn groupby(names: &[String]) -> Result<Vec<(String, GroupBy)>, ApiError> {
    let mut groups: Vec<(String, GroupBy)> = Vec::new();
    let mut invalid = Vec::new();
    for name in names {
        let group = match name.as_str() {
            "user_id" => GroupBy::Column(Column::UserId),
            "project_id" => GroupBy::Column(Column::ProjectId),
            "resource_id" => GroupBy::Column(Column::ResourceId),
            "source" => GroupBy::Column(Column::Source),
            other => match other.strip_prefix("resource_metadata.").filter(|k| !k.is_empty()) {
                Some(key) => GroupBy::Metadata(key.split('.').map(String::from).collect()),
                None => {
                    invalid.push(pollen_pytext::python_string_repr(other));
                    continue;
                }
            },
        };
        if !groups.iter().any(|(n, _)| n == name) {
            groups.push((name.clone(), group));
        }
    }
    if !invalid.is_empty() {
        return Err(ApiError::unknown_argument(&format!("{{{}}}", invalid.join(", ")), "Invalid groupby fields"));
    }
    Ok(groups)
}

/// The aggregates asked for: `None` when none is (the standard five, no
/// `aggregate` map), else each once with its key (`stddev`,
/// `cardinality/resource_id`).
fn aggregates(asked: &[(String, Option<String>)]) -> Result<Option<Vec<(Aggregate, String)>>, ApiError> {
    if asked.is_empty() {
        return Ok(None);
    }
    let mut selected: Vec<(Aggregate, String)> = Vec::new();
    for (function, argument) in asked {
        let argument = argument.as_deref().filter(|a| !a.is_empty());
        let aggregate = match function.as_str() {
            "avg" => Aggregate::Avg,
            "sum" => Aggregate::Sum,
            "min" => Aggregate::Min,
            "max" => Aggregate::Max,
            "count" => Aggregate::Count,
            "stddev" => Aggregate::Stddev,
            "cardinality" => {
                Aggregate::Cardinality(argument.and_then(shapes::cardinality_column).ok_or_else(|| {
                    ApiError::bad(format!("Bad aggregate: cardinality.{}", argument.unwrap_or("None")))
                })?)
            }
            other => return Err(ApiError::bad(format!("Invalid aggregation function: {other}"))),
        };
        let key = match argument {
            Some(argument) => format!("{function}/{argument}"),
            None => function.clone(),
        };
        if !selected.iter().any(|(_, k)| *k == key) {
            selected.push((aggregate, key));
        }
    }
    Ok(Some(selected))
}
