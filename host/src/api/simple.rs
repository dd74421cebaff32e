//! Ceilometer's simple filter: repeated `q.field`, `q.op`, `q.value`, `q.type`,
//! validated as `ceilometer/api/controllers/v2/utils.py` (9.0.7) validates them —
//! `timestamp` with `lt`/`le`/`gt`/`ge`, `search_offset` with it, every other field
//! `eq` only, metadata as `metadata.<k>` or `resource_metadata.<k>` typed by
//! `q.type` or guessed as Python's `ast.literal_eval` would — and turned into an
//! [`Expr`].

use super::auth::Caller;
use super::error::ApiError;
use super::time::parse_isotime;
use crate::store::read::{Column, CompareOp, Expr, Field, Literal};

/// One `q.*` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// `q.field`.
    pub field: String,
    /// `q.op` (`eq` when not given).
    pub op: String,
    /// `q.value`.
    pub value: String,
    /// `q.type` (may be empty).
    pub kind: String,
}

impl Condition {
    /// Python's `repr` of Ceilometer's `Query`, as its error messages print it.
    fn repr(&self) -> String {
        format!(
            "<Query {} {} {} {}>",
            pollen_pytext::python_string_repr(&self.field),
            self.op,
            pollen_pytext::python_string_repr(&self.value),
            self.kind
        )
    }
}

/// A request's query string: its pairs, in order, repeated keys kept.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Decodes a query string.
    pub fn parse(query: Option<&str>) -> Self {
        Self(url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }

    /// The last value of `name`.
    pub fn one(&self, name: &str) -> Option<&str> {
        self.all(name).last().copied()
    }

    /// An integer parameter (`limit`, `period`).
    pub fn integer(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.one(name) {
            None | Some("") => Ok(None),
            Some(text) => {
                text.trim().parse().map(Some).map_err(|_| ApiError::invalid_input(name, text, "Invalid integer value"))
            }
        }
    }

    /// The `q.*` conditions, zipped by position (`q.op` defaults to `eq`).
    pub fn conditions(&self) -> Result<Vec<Condition>, ApiError> {
        let (fields, ops, values, kinds) =
            (self.all("q.field"), self.all("q.op"), self.all("q.value"), self.all("q.type"));
        fields
            .iter()
            .enumerate()
            .map(|(index, field)| {
                let value = values
                    .get(index)
                    .ok_or_else(|| ApiError::bad(format!("Mandatory field missing: q.value for q.field {field}")))?;
                let op = ops.get(index).copied().filter(|op| !op.is_empty()).unwrap_or("eq");
                Ok(Condition {
                    field: field.to_string(),
                    op: op.to_string(),
                    value: value.to_string(),
                    kind: kinds.get(index).copied().unwrap_or_default().to_string(),
                })
            })
            .collect()
    }

    /// `limit`, 100 when absent (Ceilometer's `default_api_return_limit`); refused
    /// when not positive.
    pub fn limit(&self) -> Result<u64, ApiError> {
        enforce_limit(self.integer("limit")?)
    }
}

/// Ceilometer's `enforce_limit`.
pub fn enforce_limit(limit: Option<i64>) -> Result<u64, ApiError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(limit) if limit > 0 => Ok(limit as u64),
        Some(_) => Err(ApiError::bad("Limit must be positive")),
    }
}

/// Results returned when no `limit` is given.
pub const DEFAULT_LIMIT: u64 = 100;

/// What is being asked for: each takes the fields its storage call takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Samples and statistics (`SampleFilter`).
    Samples,
    /// Meters (`get_meters`: no times).
    Meters,
    /// Resources (`get_resources`).
    Resources,
}

impl Target {
    /// The fields Ceilometer accepts, sorted, as its error prints them: `validate_query`
    /// (`ceilometer/api/controllers/v2/utils.py`, 9.0.7) takes the arguments of
    /// `SampleFilter.__init__` (`ceilometer/storage/__init__.py`), `get_meters` and
    /// `get_resources` (`ceilometer/storage/impl_sqlalchemy.py`), less its internal
    /// keys, plus `timestamp` and `search_offset` where times are allowed.
    fn valid_keys(self) -> &'static [&'static str] {
        match self {
            Self::Samples => {
                &["message_id", "meter", "project", "resource", "search_offset", "source", "timestamp", "user"]
            }
            Self::Meters => &["project", "resource", "source", "unique", "user"],
            Self::Resources => &["project", "resource", "search_offset", "source", "timestamp", "user"],
        }
    }

    fn allows_timestamps(self) -> bool {
        self != Self::Meters
    }
}

/// A simple filter, translated.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// The conditions, as a filter.
    pub expr: Expr,
    /// The `timestamp` start as given (before `search_offset`), for clamping
    /// statistics' durations.
    pub query_start: Option<i64>,
    /// The `timestamp` end as given, likewise.
    pub query_end: Option<i64>,
    /// The start applied: microseconds and whether inclusive.
    pub start: Option<(i64, bool)>,
    /// The end applied, likewise.
    pub end: Option<(i64, bool)>,
}

/// Validates `conditions` for `target` and translates them, restricted to the
/// caller's project unless the caller is an admin.
pub fn translate(conditions: &[Condition], target: Target, caller: &Caller) -> Result<Filter, ApiError> {
    if let Some(own) = caller.limited_to() {
        for condition in conditions {
            if matches!(condition.field.as_str(), "project" | "project_id") && condition.value != own {
                return Err(ApiError::project_not_authorized(&condition.value));
            }
        }
    }
    for condition in conditions {
        if !matches!(condition.op.as_str(), "lt" | "le" | "eq" | "ne" | "ge" | "gt") {
            return Err(ApiError::invalid_input("op", &condition.op, "Value should be one of: lt, le, eq, ne, ge, gt"));
        }
    }
    let has_timestamp = check_timestamp_fields(conditions, "timestamp", &["lt", "le", "gt", "ge"], target)?;
    let has_offset = check_timestamp_fields(conditions, "search_offset", &["eq"], target)?;
    if has_offset && !has_timestamp {
        return Err(ApiError::invalid_input(
            "field",
            "search_offset",
            "search_offset cannot be used without timestamp",
        ));
    }
    let mut filter = Filter { expr: Expr::all(), query_start: None, query_end: None, start: None, end: None };
    let mut has_project = false;
    let mut offset_minutes = 0i64;
    let (mut start, mut end) = (None, None);
    for condition in conditions {
        let field = condition.field.as_str();
        match field {
            "timestamp" => {
                if matches!(condition.op.as_str(), "lt" | "le") {
                    end = Some(condition);
                } else {
                    start = Some(condition);
                }
                continue;
            }
            "search_offset" => {
                offset_minutes = condition.value.trim().parse().map_err(|_| {
                    ApiError::invalid_input("search_offset", &condition.value, "a number of minutes is expected")
                })?;
                continue;
            }
            _ => {}
        }
        let key = match field {
            "user_id" => "user",
            "project_id" => "project",
            "resource_id" => "resource",
            other => other,
        };
        let metadata = metadata_path(field);
        if !target.valid_keys().contains(&key) && metadata.is_none() {
            let all: Vec<String> = conditions.iter().map(Condition::repr).collect();
            let valid: Vec<String> = target.valid_keys().iter().map(|k| pollen_pytext::python_string_repr(k)).collect();
            return Err(ApiError::unknown_argument(
                key,
                &format!("unrecognized field in query: [{}], valid keys: [{}]", all.join(", "), valid.join(", ")),
            ));
        }
        if condition.op != "eq" {
            return Err(ApiError::invalid_input("op", &condition.op, &format!("unimplemented operator for {field}")));
        }
        let text = || Literal::Text(condition.value.clone());
        let compare = |column, literal| Expr::Compare(Field::Column(column), CompareOp::Eq, literal);
        let expr = match (key, metadata) {
            (_, Some(path)) => Expr::Compare(Field::Metadata(path), CompareOp::Eq, typed_value(condition)?),
            ("user", _) if condition.value == "None" => Expr::IsNull(Column::UserId),
            ("project", _) if condition.value == "None" => Expr::IsNull(Column::ProjectId),
            ("user", _) => compare(Column::UserId, text()),
            ("project", _) => {
                has_project = true;
                compare(Column::ProjectId, text())
            }
            ("resource", _) => compare(Column::ResourceId, text()),
            ("source", _) => compare(Column::Source, text()),
            ("meter", _) => compare(Column::Meter, text()),
            ("message_id", _) => compare(Column::MessageId, text()),
            // `unique` as a condition changes nothing (as in Ceilometer's SQL driver).
            _ => continue,
        };
        filter.expr = filter.expr.and(expr);
    }
    if let (Some(own), false) = (caller.limited_to(), has_project) {
        filter.expr = filter.expr.and(Expr::Compare(
            Field::Column(Column::ProjectId),
            CompareOp::Eq,
            Literal::Text(own.to_string()),
        ));
    }
    let offset_us = offset_minutes.saturating_mul(60_000_000);
    if let Some(condition) = start {
        let at = parse_bound(condition)?;
        filter.query_start = Some(at);
        let inclusive = condition.op != "gt";
        filter.start = Some((at.saturating_sub(offset_us), inclusive));
        let op = if inclusive { CompareOp::Ge } else { CompareOp::Gt };
        filter.expr =
            filter.expr.and(Expr::Compare(Field::Column(Column::Timestamp), op, Literal::Time(at - offset_us)));
    }
    if let Some(condition) = end {
        let at = parse_bound(condition)?;
        filter.query_end = Some(at);
        let inclusive = condition.op == "le";
        filter.end = Some((at.saturating_add(offset_us), inclusive));
        let op = if inclusive { CompareOp::Le } else { CompareOp::Lt };
        filter.expr =
            filter.expr.and(Expr::Compare(Field::Column(Column::Timestamp), op, Literal::Time(at + offset_us)));
    }
    Ok(filter)
}

fn parse_bound(condition: &Condition) -> Result<i64, ApiError> {
    parse_isotime(&condition.value)
        .ok_or_else(|| ApiError::invalid_input("timestamp", &condition.value, "invalid timestamp format"))
}

/// Ceilometer's `_validate_timestamp_fields`.
fn check_timestamp_fields(
    conditions: &[Condition],
    name: &str,
    operators: &[&str],
    target: Target,
) -> Result<bool, ApiError> {
    let mut found = false;
    for condition in conditions.iter().filter(|c| c.field == name) {
        if !target.allows_timestamps() {
            return Err(ApiError::unknown_argument(name, "not valid for this resource"));
        }
        if !operators.contains(&condition.op.as_str()) {
            return Err(ApiError::invalid_input("op", &condition.op, &format!("unimplemented operator for {name}")));
        }
        found = true;
    }
    Ok(found)
}

/// `metadata.a.b` or `resource_metadata.a.b`: the path `["a", "b"]`.
pub fn metadata_path(field: &str) -> Option<Vec<String>> {
    let key = field.strip_prefix("metadata.").or_else(|| field.strip_prefix("resource_metadata."))?;
    (!key.is_empty()).then(|| key.split('.').map(String::from).collect())
}

/// A metadata value, typed as Ceilometer's `Query._get_value_as_type` types it.
fn typed_value(condition: &Condition) -> Result<Literal, ApiError> {
    let value = condition.value.as_str();
    let unable =
        || ApiError::bad(format!("Unable to convert the value {value} to the expected data type {}.", condition.kind));
    Ok(match condition.kind.as_str() {
        "" => literal_eval(value),
        "integer" => Literal::Int(value.trim().parse().map_err(|_| unable())?),
        "float" => Literal::Float(value.trim().parse().map_err(|_| unable())?),
        "boolean" => Literal::Bool(strict_bool(value).ok_or_else(unable)?),
        "string" => Literal::Text(value.to_string()),
        "datetime" => Literal::Time(parse_isotime(value).ok_or_else(unable)?),
        other => {
            return Err(ApiError::bad(format!(
                "The data type {other} is not supported. The supported data type list is: \
                 ['integer', 'float', 'string', 'boolean', 'datetime']"
            )))
        }
    })
}

/// What Python's `ast.literal_eval` makes of the simple literals a metadata value
/// can be (integers, floats, booleans, quoted strings); anything else stays text.
fn literal_eval(text: &str) -> Literal {
    let trimmed = text.trim();
    if let Ok(n) = trimmed.parse::<i64>() {
        return Literal::Int(n);
    }
    let numeric = trimmed.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    if numeric && trimmed.chars().any(|c| c.is_ascii_digit()) {
        if let Ok(n) = trimmed.parse::<f64>() {
            return Literal::Float(n);
        }
    }
    match trimmed {
        "True" => return Literal::Bool(true),
        "False" => return Literal::Bool(false),
        _ => {}
    }
    for quote in ['\'', '"'] {
        if trimmed.len() >= 2 && trimmed.starts_with(quote) && trimmed.ends_with(quote) {
            return Literal::Text(trimmed[1..trimmed.len() - 1].to_string());
        }
    }
    Literal::Text(text.to_string())
}

/// `oslo_utils.strutils.bool_from_string(strict=True)`.
pub fn strict_bool(text: &str) -> Option<bool> {
    match text.trim().to_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Some(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(field: &str, op: &str, value: &str) -> Condition {
        Condition { field: field.into(), op: op.into(), value: value.into(), kind: String::new() }
    }

    /// The texts are Ceilometer 9.0.7's: `validate_query` and `_validate_timestamp_fields`
    /// (`ceilometer/api/controllers/v2/utils.py`) raising WSME 0.12's `UnknownArgument`
    /// and `InvalidInput` (`wsme/exc.py`, whose `faultstring` formats them), and
    /// `Query.__repr__` (`ceilometer/api/controllers/v2/base.py`) for the list.
    #[test]
    fn fields_and_operators_are_checked_as_ceilometer_checks_them() {
        let admin = Caller::admin();
        let error = translate(&[condition("foo", "eq", "bar")], Target::Samples, &admin).unwrap_err();
        assert_eq!(
            error.faultstring,
            "Unknown argument: \"foo\": unrecognized field in query: [<Query 'foo' eq 'bar' >], valid keys: \
             ['message_id', 'meter', 'project', 'resource', 'search_offset', 'source', 'timestamp', 'user']"
        );
        let error = translate(&[condition("resource_id", "gt", "x")], Target::Samples, &admin).unwrap_err();
        assert_eq!(
            error.faultstring,
            "Invalid input for field/attribute op. Value: 'gt'. unimplemented operator for resource_id"
        );
        let error = translate(&[condition("timestamp", "eq", "2026-01-01")], Target::Samples, &admin).unwrap_err();
        assert!(error.faultstring.contains("unimplemented operator for timestamp"));
        let error = translate(&[condition("timestamp", "gt", "2026-01-01")], Target::Meters, &admin).unwrap_err();
        assert_eq!(error.faultstring, "Unknown argument: \"timestamp\": not valid for this resource");
        let error = translate(&[condition("timestamp", "gt", "yesterday")], Target::Samples, &admin).unwrap_err();
        assert_eq!(
            error.faultstring,
            "Invalid input for field/attribute timestamp. Value: 'yesterday'. invalid timestamp format"
        );
    }

    /// As `Query._get_value_as_type` types a value with no `q.type` (`ast.literal_eval`,
    /// `ceilometer/api/controllers/v2/base.py`), and the SQL driver's `user == 'None'`
    /// (`make_query_from_filter`, `ceilometer/storage/impl_sqlalchemy.py`), 9.0.7.
    #[test]
    fn metadata_values_are_typed_and_owners_can_be_none() {
        let admin = Caller::admin();
        let filter = translate(
            &[condition("metadata.flavor.vcpus", "eq", "2"), condition("user_id", "eq", "None")],
            Target::Samples,
            &admin,
        )
        .unwrap();
        assert_eq!(
            filter.expr,
            Expr::And(vec![
                Expr::Compare(Field::Metadata(vec!["flavor".into(), "vcpus".into()]), CompareOp::Eq, Literal::Int(2)),
                Expr::IsNull(Column::UserId),
            ])
        );
        assert_eq!(literal_eval("'2'"), Literal::Text("2".into()));
        assert_eq!(literal_eval("1.5"), Literal::Float(1.5));
        assert_eq!(literal_eval("True"), Literal::Bool(true));
        assert_eq!(literal_eval("m1.tiny"), Literal::Text("m1.tiny".into()));
    }

    #[test]
    fn a_project_caller_sees_its_project_only() {
        let member = Caller::member("p1");
        let error = translate(&[condition("project_id", "eq", "p2")], Target::Samples, &member).unwrap_err();
        assert_eq!(error.status, axum::http::StatusCode::UNAUTHORIZED);
        let filter = translate(&[], Target::Resources, &member).unwrap();
        assert_eq!(
            filter.expr,
            Expr::And(vec![Expr::Compare(Field::Column(Column::ProjectId), CompareOp::Eq, Literal::Text("p1".into()))])
        );
    }

    #[test]
    fn search_offset_widens_the_range() {
        let filter = translate(
            &[
                condition("timestamp", "ge", "2026-01-01T00:10:00"),
                condition("timestamp", "lt", "2026-01-01T01:00:00"),
                condition("search_offset", "eq", "10"),
            ],
            Target::Samples,
            &Caller::admin(),
        )
        .unwrap();
        let base = parse_isotime("2026-01-01T00:00:00").unwrap();
        assert_eq!(filter.start, Some((base, true)));
        assert_eq!(filter.end, Some((base + 70 * 60_000_000, false)));
        assert_eq!(filter.query_start, Some(base + 10 * 60_000_000));
    }
}
