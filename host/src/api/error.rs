//! The API's errors, in Ceilometer's shape: `{"error_message": {"faultcode":
//! "Client", "faultstring": "...", "debuginfo": null}}` (WSME's fault, wrapped by
//! Ceilometer's `ParsableErrorMiddleware`), with its status codes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error answered to a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {faultstring}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, in Ceilometer's words where it has some.
    pub faultstring: String,
}

impl ApiError {
    /// 400: the request is wrong.
    pub fn bad(faultstring: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, faultstring: faultstring.into() }
    }

    /// WSME's `InvalidInput` (`wsme/exc.py`: its `faultstring`).
    pub fn invalid_input(field: &str, value: &str, why: &str) -> Self {
        Self::bad(format!("Invalid input for field/attribute {field}. Value: '{value}'. {why}"))
    }

    /// WSME's `UnknownArgument` (`wsme/exc.py`: its `faultstring`).
    pub fn unknown_argument(name: &str, why: &str) -> Self {
        Self::bad(format!("Unknown argument: \"{name}\": {why}"))
    }

    /// 404: Ceilometer's `EntityNotFound` (`ceilometer/api/controllers/v2/base.py`).
    pub fn not_found(entity: &str, id: &str) -> Self {
        Self { status: StatusCode::NOT_FOUND, faultstring: format!("{entity} {id} Not Found") }
    }

    /// 401: Ceilometer's `ProjectNotAuthorized` (`ceilometer/api/controllers/v2/base.py`).
    pub fn project_not_authorized(project: &str) -> Self {
        Self { status: StatusCode::UNAUTHORIZED, faultstring: format!("Not Authorized to access project {project}") }
    }

    /// 401: no token, or one not known.
    pub fn unauthenticated() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            faultstring: "The request you have made requires authentication: send a valid token in X-Auth-Token".into(),
        }
    }

    /// 503: the store cannot be read now.
    pub fn unavailable(why: impl std::fmt::Display) -> Self {
        Self { status: StatusCode::SERVICE_UNAVAILABLE, faultstring: format!("the sample store cannot be read: {why}") }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        match error {
            // What the database refuses of a query is the query's fault (an invalid
            // regular expression, say).
            crate::store::StoreError::Refused(why) => Self::bad(why),
            other => Self::unavailable(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let fault = if self.status.is_client_error() { "Client" } else { "Server" };
        let body = serde_json::json!({
            "error_message": { "faultcode": fault, "faultstring": self.faultstring, "debuginfo": null }
        });
        (self.status, axum::Json(body)).into_response()
    }
}
