//! `/auth/*` answers: Medplum's FHIR OperationOutcome shape.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::{Fault, LoginError};

/// A FHIR OperationOutcome with one issue, as Medplum answers `/auth/*`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OperationOutcome {
    /// HTTP status.
    pub status: StatusCode,
    /// The issue text (Medplum's wording).
    pub text: String,
    /// The request field it is about.
    pub expression: Option<&'static str>,
    /// `error` or `information` ("All OK").
    pub severity: &'static str,
    /// FHIR issue code.
    pub code: &'static str,
    /// Seconds until a throttled caller may try again (sent as `Retry-After`).
    pub retry_after: Option<u64>,
}

impl OperationOutcome {
    /// A 400 about `field`.
    pub fn bad_request(text: impl Into<String>, expression: Option<&'static str>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            text: text.into(),
            expression,
            severity: "error",
            code: "invalid",
            retry_after: None,
        }
    }

    /// Medplum's success outcome, "All OK".
    pub fn all_ok() -> Self {
        Self {
            status: StatusCode::OK,
            text: "All OK".to_owned(),
            expression: None,
            severity: "information",
            code: "informational",
            retry_after: None,
        }
    }

    /// Any other status.
    pub fn with_status(status: StatusCode, text: impl Into<String>) -> Self {
        let code = match status {
            StatusCode::UNAUTHORIZED => "login",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not-found",
            StatusCode::TOO_MANY_REQUESTS => "throttled",
            s if s.is_server_error() => "exception",
            _ => "invalid",
        };
        Self {
            status,
            text: text.into(),
            expression: None,
            severity: "error",
            code,
            retry_after: None,
        }
    }

    /// A 429 whose window ends at `retry_after` (the engine's clock says it is `now`).
    pub fn throttled(now: time::OffsetDateTime, retry_after: time::OffsetDateTime) -> Self {
        let mut outcome = Self::with_status(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests; try again later",
        );
        let seconds = (retry_after - now).whole_seconds().max(1);
        outcome.retry_after = Some(u64::try_from(seconds).unwrap_or(1));
        outcome
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut issue = json!({
            "severity": self.severity,
            "code": self.code,
            "details": { "text": self.text },
        });
        if let (Some(expression), Some(obj)) = (self.expression, issue.as_object_mut()) {
            obj.insert("expression".into(), json!([expression]));
        }
        json!({ "resourceType": "OperationOutcome", "issue": [issue] })
    }
}

impl IntoResponse for OperationOutcome {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

/// The text of a 503: the same request may succeed shortly.
pub(crate) const UNAVAILABLE_TEXT: &str = "Too many requests in progress; try again shortly";

/// The HTTP status of a refusal, by whose fault it is — and nothing else. Medplum answers
/// refused credentials and policies with 400 and the text; its clients show the text.
pub(crate) fn status_of(fault: Fault) -> StatusCode {
    match fault {
        Fault::Request | Fault::Credentials | Fault::Policy => StatusCode::BAD_REQUEST,
        Fault::Throttled => StatusCode::TOO_MANY_REQUESTS,
        Fault::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Fault::Upstream => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<LoginError> for OperationOutcome {
    fn from(error: LoginError) -> Self {
        // Medplum reads the client or the login as a resource: a missing one is its generic
        // 404 "Not found". Our more precise text goes to the log.
        if let LoginError::Request(
            crate::error::RequestError::UnknownClient | crate::error::RequestError::UnknownLogin,
        ) = &error
        {
            tracing::debug!(reason = %error, "answered 404 Not found");
            return Self::with_status(StatusCode::NOT_FOUND, "Not found");
        }
        let fault = error.fault();
        let status = status_of(fault);
        let text = match fault {
            // The provider failed: say so (the text names no secret), and log the detail.
            Fault::Upstream => {
                tracing::warn!(error = ?error, "identity provider failure");
                error.to_string()
            }
            // Server failures are logged, not shown in detail.
            Fault::Unavailable => {
                tracing::warn!(error = %error, "a dependency is unavailable in an /auth request");
                UNAVAILABLE_TEXT.to_owned()
            }
            Fault::Request | Fault::Credentials | Fault::Policy | Fault::Throttled => {
                error.to_string()
            }
            _ => {
                tracing::error!(error = %error, "server failure in an /auth request");
                "Internal server error".to_owned()
            }
        };
        Self {
            status,
            text,
            expression: error.field(),
            severity: "error",
            code: if status == StatusCode::TOO_MANY_REQUESTS {
                "throttled"
            } else if status.is_server_error() {
                "exception"
            } else {
                "invalid"
            },
            retry_after: None,
        }
    }
}

impl From<crate::account::AccountError> for OperationOutcome {
    fn from(error: crate::account::AccountError) -> Self {
        use crate::account::{AccountError, LinkRefusal, PasswordRefusal};
        let error = match error {
            AccountError::SignIn(e) => return e.into(),
            AccountError::Link(LinkRefusal::NotFound) => {
                return Self::with_status(StatusCode::NOT_FOUND, "Not found");
            }
            other => other,
        };
        let fault = error.fault();
        let status = status_of(fault);
        let text = match fault {
            Fault::Upstream => {
                tracing::warn!(error = %error, "an upstream service failed in an account request");
                error.to_string()
            }
            Fault::Unavailable => {
                tracing::warn!(error = %error, "a dependency is unavailable in an account request");
                UNAVAILABLE_TEXT.to_owned()
            }
            Fault::Request | Fault::Credentials | Fault::Policy | Fault::Throttled => {
                error.to_string()
            }
            _ => {
                tracing::error!(error = %error, "server failure in an account request");
                "Internal server error".to_owned()
            }
        };
        let expression = match &error {
            AccountError::InvalidEmail => Some("email"),
            AccountError::Password(PasswordRefusal::Incorrect | PasswordRefusal::NotSet) => {
                Some("oldPassword")
            }
            AccountError::Password(_) => Some("password"),
            _ => None,
        };
        let mut outcome = Self::with_status(status, text);
        if status == StatusCode::BAD_REQUEST {
            outcome.code = "invalid";
        }
        outcome.expression = expression;
        outcome
    }
}
