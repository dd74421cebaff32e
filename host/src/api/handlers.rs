//! The API's endpoints, each as Ceilometer's controller of the same path answers.

use super::answers::{self, StatisticsRequest};
use super::auth::Caller;
use super::complex::ComplexQuery;
use super::error::ApiError;
use super::simple::{strict_bool, Params};
use super::ApiState;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;

type Shared = State<Arc<ApiState>>;
type Answer = Result<Json<Value>, ApiError>;

/// Every endpoint.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/", get(versions))
        .route("/v2/capabilities", get(capabilities))
        .route("/v2/meters", get(meters))
        .route("/v2/meters/{name}", get(meter_samples))
        .route("/v2/meters/{name}/statistics", get(statistics))
        .route("/v2/samples", get(samples))
        .route("/v2/samples/{id}", get(sample))
        .route("/v2/resources", get(resources))
        .route("/v2/resources/{*id}", get(resource))
        .route("/v2/query/samples", post(query_samples))
        .fallback(not_found)
        .with_state(state)
}

/// The caller, from `X-Auth-Token`.
async fn caller(state: &ApiState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let token = headers.get("x-auth-token").and_then(|v| v.to_str().ok());
    state.authenticator.caller(token).await
}

/// `pecan.request.application_url`: where links point.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("localhost:8777");
    format!("http://{host}")
}

async fn versions(headers: HeaderMap) -> Json<Value> {
    let url = format!("{}/v2", base_url(&headers));
    Json(json!({"versions": {"values": [{
        "id": "v2",
        "links": [{"href": url, "rel": "self"},
                  {"href": "http://docs.openstack.org/", "rel": "describedby", "type": "text/html"}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.telemetry-v2+json"},
                        {"base": "application/xml", "type": "application/vnd.openstack.telemetry-v2+xml"}],
        "status": "stable",
        "updated": "2013-02-13T00:00:00Z",
    }]}}))
}

/// What Ceilometer's SQL driver declares (`AVAILABLE_CAPABILITIES` and
/// `AVAILABLE_STORAGE_CAPABILITIES` over `base.Connection.CAPABILITIES`, in
/// `ceilometer/storage/impl_sqlalchemy.py` and `base.py`, 9.0.7), flattened with `:` as
/// `capabilities.py`'s `_flatten_capabilities` does.
async fn capabilities(State(state): Shared, headers: HeaderMap) -> Answer {
    caller(&state, &headers).await?;
    let mut api = serde_json::Map::new();
    for key in ["meters:query:simple", "meters:query:metadata", "resources:query:simple", "resources:query:metadata"] {
        api.insert(key.into(), json!(true));
    }
    for key in ["samples:query:simple", "samples:query:metadata", "samples:query:complex"] {
        api.insert(key.into(), json!(true));
    }
    for key in ["statistics:groupby", "statistics:query:simple", "statistics:query:metadata"] {
        api.insert(key.into(), json!(true));
    }
    api.insert("statistics:aggregation:standard".into(), json!(true));
    for function in ["max", "min", "sum", "avg", "count", "stddev", "cardinality"] {
        api.insert(format!("statistics:aggregation:selectable:{function}"), json!(true));
    }
    api.insert("statistics:aggregation:selectable:quartile".into(), json!(false));
    for key in [
        "events:query:simple",
        "alarms:query:simple",
        "alarms:query:complex",
        "alarms:history:query:simple",
        "alarms:history:query:complex",
    ] {
        api.insert(key.into(), json!(false));
    }
    Ok(Json(json!({"api": api, "storage": {"storage:production_ready": true}})))
}

async fn meters(State(state): Shared, headers: HeaderMap, RawQuery(query): RawQuery) -> Answer {
    let caller = caller(&state, &headers).await?;
    let params = Params::parse(query.as_deref());
    let unique = params.one("unique").and_then(strict_bool).unwrap_or(false);
    let found = answers::meters(&state.reader, &caller, &params.conditions()?, unique, params.limit()?).await?;
    Ok(Json(Value::Array(found)))
}

async fn meter_samples(
    State(state): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Answer {
    let caller = caller(&state, &headers).await?;
    let params = Params::parse(query.as_deref());
    let found = answers::samples(&state.reader, &caller, &params.conditions()?, Some(&name), params.limit()?).await?;
    Ok(Json(Value::Array(found)))
}

async fn samples(State(state): Shared, headers: HeaderMap, RawQuery(query): RawQuery) -> Answer {
    let caller = caller(&state, &headers).await?;
    let params = Params::parse(query.as_deref());
    let found = answers::samples(&state.reader, &caller, &params.conditions()?, None, params.limit()?).await?;
    Ok(Json(Value::Array(found)))
}

async fn sample(State(state): Shared, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    let caller = caller(&state, &headers).await?;
    Ok(Json(answers::sample(&state.reader, &caller, &id).await?))
}

async fn resources(State(state): Shared, headers: HeaderMap, RawQuery(query): RawQuery) -> Answer {
    let caller = caller(&state, &headers).await?;
    let params = Params::parse(query.as_deref());
    let meter_links = params.integer("meter_links")?.unwrap_or(1) != 0;
    let found = answers::resources(
        &state.reader,
        &caller,
        &params.conditions()?,
        params.limit()?,
        &base_url(&headers),
        meter_links,
    )
    .await?;
    Ok(Json(Value::Array(found)))
}

async fn resource(State(state): Shared, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    let caller = caller(&state, &headers).await?;
    Ok(Json(answers::resource(&state.reader, &caller, &id, &base_url(&headers)).await?))
}

async fn query_samples(State(state): Shared, headers: HeaderMap, body: axum::body::Bytes) -> Answer {
    let caller = caller(&state, &headers).await?;
    let query: ComplexQuery = if body.is_empty() {
        ComplexQuery::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad(format!("the body is not a complex query: {e}")))?
    };
    Ok(Json(Value::Array(answers::query_samples(&state.reader, &caller, &query).await?)))
}

/// `GET /v2/meters/<name>/statistics`.
async fn statistics(
    State(state): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Answer {
    let caller = caller(&state, &headers).await?;
    let params = Params::parse(query.as_deref());
    let request = StatisticsRequest {
        meter: name,
        conditions: params.conditions()?,
        period: params.integer("period")?,
        groupby: params.all("groupby").into_iter().map(String::from).collect(),
        aggregates: zip_aggregates(&params),
    };
    Ok(Json(Value::Array(answers::statistics(&state.reader, &caller, &request).await?)))
}

/// `aggregate.func` and `aggregate.param`, zipped by position.
fn zip_aggregates(params: &Params) -> Vec<(String, Option<String>)> {
    let arguments = params.all("aggregate.param");
    params
        .all("aggregate.func")
        .iter()
        .enumerate()
        .map(|(index, function)| {
            let argument = arguments.get(index).filter(|a| !a.is_empty()).map(|a| a.to_string());
            (function.to_string(), argument)
        })
        .collect()
}

async fn not_found() -> Response {
    ApiError { status: StatusCode::NOT_FOUND, faultstring: "The resource could not be found.".into() }.into_response()
}
