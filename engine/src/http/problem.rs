//! Errors as RFC 9457 problem documents (`application/problem+json`): a stable `type` per
//! kind of problem, a short `title`, the HTTP `status`, and a `detail` that names the field or
//! the check that failed and what came instead.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use actix_web::{HttpResponse, ResponseError};

/// A refused request, answered as a problem document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) status: StatusCode,
    /// The last segment of the `type` URI (`urn:mirror:problem:<slug>`).
    pub(crate) slug: &'static str,
    pub(crate) title: &'static str,
    pub(crate) detail: String,
    /// Seconds, sent as `Retry-After` (rate limits).
    pub(crate) retry_after_s: Option<u64>,
    /// A challenge, sent as `WWW-Authenticate` (bearer tokens refused, RFC 6750 §3).
    pub(crate) www_authenticate: Option<String>,
}

impl Problem {
    pub(crate) fn new(status: StatusCode, slug: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self { status, slug, title, detail: detail.into(), retry_after_s: None, www_authenticate: None }
    }

    /// The body is not what the route reads (not JSON, not the text form).
    pub(crate) fn malformed(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed-body", "The body could not be read", detail)
    }

    /// A field is missing, of the wrong type, or out of range.
    pub(crate) fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-signal", "The signal is not valid", detail)
    }

    /// No or a wrong secret, signature or timestamp.
    pub(crate) fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "Not authenticated", detail)
    }

    /// A query parameter is not what the route reads.
    pub(crate) fn bad_parameter(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-parameter", "Bad query parameter", detail)
    }

    pub(crate) fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    pub(crate) fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error", detail)
    }

    /// The `type` member.
    pub(crate) fn type_uri(&self) -> String {
        format!("urn:mirror:problem:{}", self.slug)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.title, self.detail)
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let body = serde_json::json!({
            "type": self.type_uri(),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        let mut response = HttpResponse::build(self.status);
        response.insert_header((CONTENT_TYPE, "application/problem+json"));
        if let Some(seconds) = self.retry_after_s {
            response.insert_header((RETRY_AFTER, seconds.to_string()));
        }
        if let Some(challenge) = &self.www_authenticate {
            response.insert_header((WWW_AUTHENTICATE, challenge.as_str()));
        }
        response.body(body.to_string())
    }
}
