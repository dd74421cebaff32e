//! `POST /v2/query/samples`: Ceilometer's complex query (`ceilometer/api/controllers/
//! v2/query.py`, 9.0.7). A JSON filter of `and`/`or` (two operands or more), `not`,
//! `in` (a non-empty list) and the comparisons `=`, `!=`, `<`, `<=`/`=<`, `>`,
//! `>=`/`=>`, `=~` (operators in any case), each on one field; an `orderby` list of
//! `{field: "asc"|"desc"}`; a `limit`. A non-admin caller is restricted to their
//! project, and naming another is refused.

use super::auth::Caller;
use super::error::ApiError;
use super::simple::enforce_limit;
use super::time::parse_isotime;
use crate::store::read::{Column, CompareOp, Expr, Field, Literal, Order};
use serde::Deserialize;
use serde_json::Value;

/// The request's body.
#[derive(Debug, Default, Deserialize)]
pub struct ComplexQuery {
    /// The filter, as JSON text.
    #[serde(default)]
    pub filter: Option<String>,
    /// The order, as JSON text.
    #[serde(default)]
    pub orderby: Option<String>,
    /// At most this many (a number, or text of one: `python-ceilometerclient`
    /// sends `"2"`, which WSME reads as 2).
    #[serde(default, deserialize_with = "number_or_text")]
    pub limit: Option<i64>,
}

fn number_or_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error;
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            n.as_i64().map(Some).ok_or_else(|| D::Error::custom(format!("limit {n} is not an integer")))
        }
        Some(Value::String(text)) => {
            text.trim().parse().map(Some).map_err(|_| D::Error::custom(format!("limit `{text}` is not an integer")))
        }
        Some(other) => Err(D::Error::custom(format!("limit {other} is not an integer"))),
    }
}

/// A validated complex query.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    pub filter: Expr,
    pub order: Vec<Order>,
    pub limit: u64,
}

/// Validates `query` as Ceilometer does, for `caller`.
pub fn validate(query: &ComplexQuery, caller: &Caller) -> Result<Validated, ApiError> {
    let invalid = |why: String| ApiError::bad(format!("Filter expression not valid: {why}"));
    let mut filter = match &query.filter {
        None => Expr::all(),
        Some(text) => {
            let json: Value = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
            node(&json, caller).map_err(invalid)?
        }
    };
    if let Some(own) = caller.limited_to() {
        filter = Expr::And(vec![
            Expr::Compare(Field::Column(Column::ProjectId), CompareOp::Eq, Literal::Text(own.to_string())),
            filter,
        ]);
    }
    let order = match &query.orderby {
        None => Vec::new(),
        Some(text) => {
            let json: Value =
                serde_json::from_str(text).map_err(|e| ApiError::bad(format!("Order-by expression not valid: {e}")))?;
            orderby(&json).map_err(|why| ApiError::bad(format!("Order-by expression not valid: {why}")))?
        }
    };
    Ok(Validated { filter, order, limit: enforce_limit(query.limit)? })
}

/// The one key and value of an object that must have exactly one.
fn single(value: &Value) -> Result<(&String, &Value), String> {
    let object = value.as_object().ok_or_else(|| format!("{value} is not of type 'object'"))?;
    match object.len() {
        1 => Ok(object.iter().next().expect("one entry")),
        0 => Err(format!("{value} does not have enough properties")),
        _ => Err(format!("{value} has too many properties")),
    }
}

fn node(value: &Value, caller: &Caller) -> Result<Expr, String> {
    let (operator, operand) = single(value)?;
    match operator.to_lowercase().as_str() {
        combinator @ ("and" | "or") => {
            let items = operand.as_array().ok_or_else(|| format!("{operand} is not of type 'array'"))?;
            if items.len() < 2 {
                return Err(format!("{operand} is too short"));
            }
            let all = items.iter().map(|item| node(item, caller)).collect::<Result<Vec<_>, _>>()?;
            Ok(if combinator == "and" { Expr::And(all) } else { Expr::Or(all) })
        }
        "not" => Ok(Expr::Not(Box::new(node(operand, caller)?))),
        "in" => {
            let (name, values) = single(operand)?;
            let field = field(name, true)?;
            let items = values.as_array().ok_or_else(|| format!("{values} is not of type 'array'"))?;
            if items.is_empty() {
                return Err(format!("{values} is too short"));
            }
            let literals = items
                .iter()
                .map(|item| match item {
                    Value::String(_) | Value::Number(_) => literal(&field, item),
                    other => Err(format!("{other} is not valid under any of the given schemas")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            check_project(&field, &literals, caller)?;
            Ok(Expr::In(field, literals))
        }
        op => {
            let op = match op {
                "=" => CompareOp::Eq,
                "!=" => CompareOp::Ne,
                "<" => CompareOp::Lt,
                "<=" | "=<" => CompareOp::Le,
                ">" => CompareOp::Gt,
                ">=" | "=>" => CompareOp::Ge,
                "=~" => CompareOp::Matches,
                _ => return Err(format!("{value} is not valid under any of the given schemas")),
            };
            let (name, raw) = single(operand)?;
            let field = field(name, true)?;
            if !matches!(raw, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                return Err(format!("{raw} is not valid under any of the given schemas"));
            }
            let literal = literal(&field, raw)?;
            check_project(&field, std::slice::from_ref(&literal), caller)?;
            Ok(Expr::Compare(field, op, literal))
        }
    }
}

/// A non-admin naming another project is refused (Ceilometer's
/// `_check_cross_project_references`; reported as its 401).
fn check_project(field: &Field, values: &[Literal], caller: &Caller) -> Result<(), String> {
    let (Some(own), Field::Column(Column::ProjectId)) = (caller.limited_to(), field) else { return Ok(()) };
    for value in values {
        if *value != Literal::Text(own.to_string()) {
            return Err(format!("Not Authorized to access project {}", value.text()));
        }
    }
    Ok(())
}

/// A field of `storage.models.Sample`, by its name or Ceilometer's alias for it
/// (`meter`, `resource`, `user`, `project`, `type`, `unit`, `volume`), or a
/// `metadata.<k>` (filters only).
fn field(name: &str, metadata_allowed: bool) -> Result<Field, String> {
    let column = match name {
        "timestamp" => Column::Timestamp,
        "recorded_at" => Column::RecordedAt,
        "message_id" => Column::MessageId,
        "counter_name" | "meter" => Column::Meter,
        "counter_type" | "type" => Column::MeterType,
        "counter_unit" | "unit" => Column::Unit,
        "counter_volume" | "volume" => Column::Volume,
        "resource_id" | "resource" => Column::ResourceId,
        "source" => Column::Source,
        "user_id" | "user" => Column::UserId,
        "project_id" | "project" => Column::ProjectId,
        "message_signature" | "resource_metadata" => {
            return Err(format!(
            "'{name}' cannot be queried here: Pollen keeps no signatures and compares metadata by key (metadata.<key>)"
        ))
        }
        other => {
            if let (true, Some(key)) = (metadata_allowed, other.strip_prefix("metadata.")) {
                if !key.is_empty() && !key.contains(char::is_whitespace) {
                    return Ok(Field::Metadata(key.split('.').map(String::from).collect()));
                }
            }
            return Err(format!("Additional properties are not allowed ('{other}' was unexpected)"));
        }
    };
    Ok(Field::Column(column))
}

/// A JSON value as a literal; times on the time fields (Ceilometer's
/// `_replace_isotime_with_datetime`).
fn literal(field: &Field, value: &Value) -> Result<Literal, String> {
    if let (Field::Column(Column::Timestamp | Column::RecordedAt), Value::String(text)) = (field, value) {
        return parse_isotime(text)
            .map(Literal::Time)
            .ok_or_else(|| format!("Failed to parse the timestamp value {text}"));
    }
    Ok(match value {
        Value::String(text) => Literal::Text(text.clone()),
        Value::Bool(b) => Literal::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Literal::Int(i),
            None => Literal::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        other => return Err(format!("{other} is not valid under any of the given schemas")),
    })
}

fn orderby(value: &Value) -> Result<Vec<Order>, String> {
    let items = value.as_array().ok_or_else(|| format!("{value} is not of type 'array'"))?;
    items
        .iter()
        .map(|item| {
            let (name, direction) = single(item)?;
            let Field::Column(column) = field(name, false)? else { unreachable!("metadata not allowed") };
            let descending = match direction.as_str().map(str::to_lowercase).as_deref() {
                Some("asc") => false,
                Some("desc") => true,
                _ => return Err(format!("{direction} does not match '(?i)^asc$|^desc$'")),
            };
            Ok(Order { column, descending })
        })
        .collect()
}

/// The status a complex query's error is answered with: 401 for another project.
pub fn status_of(error: &ApiError) -> ApiError {
    if let Some(project) =
        error.faultstring.strip_prefix("Filter expression not valid: Not Authorized to access project ")
    {
        return ApiError::project_not_authorized(project);
    }
    error.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(filter: &str) -> ComplexQuery {
        ComplexQuery { filter: Some(filter.into()), ..Default::default() }
    }

    #[test]
    fn ceilometers_example_query_validates() {
        // The sample of `ComplexQuery` in ceilometer/api/controllers/v2/query.py.
        let body = ComplexQuery {
            filter: Some(
                r#"{"and": [{"and": [{"=": {"counter_name": "cpu_util"}}, {">": {"counter_volume": 0.23}},
                   {"<": {"counter_volume": 0.26}}]}, {"or": [{"and": [{">": {"timestamp": "2013-12-01T18:00:00"}},
                   {"<": {"timestamp": "2013-12-01T18:15:00"}}]}, {"and": [{">": {"timestamp": "2013-12-01T18:30:00"}},
                   {"<": {"timestamp": "2013-12-01T18:45:00"}}]}]}]}"#
                    .into(),
            ),
            orderby: Some(r#"[{"counter_volume": "ASC"}, {"timestamp": "DESC"}]"#.into()),
            limit: Some(42),
        };
        let valid = validate(&body, &Caller::admin()).unwrap();
        assert_eq!(valid.limit, 42);
        assert_eq!(
            valid.order,
            vec![
                Order { column: Column::Volume, descending: false },
                Order { column: Column::Timestamp, descending: true }
            ]
        );
        let Expr::And(parts) = valid.filter else { panic!("an and") };
        assert_eq!(parts.len(), 2);
    }

    #[test]
    fn bad_filters_say_why() {
        let admin = Caller::admin();
        for (filter, why) in [
            (r#"{"and": [{"=": {"meter": "cpu"}}]}"#, "is too short"),
            (r#"{"=": {"bogus": 1}}"#, "'bogus' was unexpected"),
            (r#"{"like": {"meter": "cpu"}}"#, "not valid under any"),
            (r#"{">": {"timestamp": "soon"}}"#, "Failed to parse the timestamp value soon"),
            (r#"{"in": {"meter": []}}"#, "too short"),
            ("{", "EOF"),
        ] {
            let error = validate(&query(filter), &admin).unwrap_err();
            assert!(error.faultstring.starts_with("Filter expression not valid: "), "{}", error.faultstring);
            assert!(error.faultstring.contains(why), "{filter}: {}", error.faultstring);
        }
        assert_eq!(
            validate(&ComplexQuery { limit: Some(0), ..Default::default() }, &admin).unwrap_err().faultstring,
            "Limit must be positive"
        );
    }

    #[test]
    fn members_are_kept_to_their_project() {
        let member = Caller::member("p1");
        let valid = validate(&query(r#"{"=": {"meter": "cpu"}}"#), &member).unwrap();
        let Expr::And(parts) = valid.filter else { panic!("an and") };
        assert_eq!(
            parts[0],
            Expr::Compare(Field::Column(Column::ProjectId), CompareOp::Eq, Literal::Text("p1".into()))
        );
        let error = status_of(&validate(&query(r#"{"=": {"project": "p2"}}"#), &member).unwrap_err());
        assert_eq!(error.status, axum::http::StatusCode::UNAUTHORIZED);
        assert_eq!(error.faultstring, "Not Authorized to access project p2");
    }
}
