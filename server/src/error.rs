//! The one error type handlers return, and how it becomes an HTTP response.
//!
//! Policy: every client mistake gets a 4xx with a stable `code` (documented in the README);
//! server faults get a 500 `internal` whose details go to the log, never to the client.
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rdpfleet_proto::error::{ErrorBody, ErrorDetail};

use crate::domain::DomainError;
use crate::store::StoreError;
use crate::store::enrollment::EnrollError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    MalformedJson(String),
    #[error("{0}")]
    InvalidBody(String),
    #[error("request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or invalid credentials")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error("enrollment token is not valid")]
    EnrollmentTokenInvalid,
    #[error("enrollment token has expired")]
    EnrollmentTokenExpired,
    #[error("enrollment token has been used the maximum number of times")]
    EnrollmentTokenUsedUp,
    #[error("too many failed attempts from this address; try again later")]
    TooManyAttempts,
    #[error("service unavailable")]
    Unavailable,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::MalformedJson(_) | AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::InvalidBody(_) | AppError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Unauthorized
            | AppError::EnrollmentTokenInvalid
            | AppError::EnrollmentTokenExpired
            | AppError::EnrollmentTokenUsedUp => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::MalformedJson(_) => "malformed_json",
            AppError::InvalidBody(_) => "invalid_body",
            AppError::UnsupportedMediaType => "unsupported_media_type",
            AppError::PayloadTooLarge(_) => "payload_too_large",
            AppError::Validation(_) => "validation_failed",
            AppError::BadRequest(_) => "bad_request",
            AppError::Unauthorized => "unauthorized",
            AppError::Forbidden(_) => "forbidden",
            AppError::NotFound(_) => "not_found",
            AppError::MethodNotAllowed => "method_not_allowed",
            AppError::Conflict(_) => "conflict",
            AppError::EnrollmentTokenInvalid => "enrollment_token_invalid",
            AppError::EnrollmentTokenExpired => "enrollment_token_expired",
            AppError::EnrollmentTokenUsedUp => "enrollment_token_used_up",
            AppError::TooManyAttempts => "too_many_attempts",
            AppError::Unavailable => "unavailable",
            AppError::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let AppError::Internal(e) = &self {
            // Logged once, here at the boundary, with the full chain.
            tracing::error!(error = format!("{e:#}"), "request failed");
        }
        let body = ErrorBody { error: ErrorDetail { code: self.code().to_owned(), message: self.to_string() } };
        let mut resp = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// A store fault means what it means in the domain (a conflict, a saturated pool, a fault).
impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        DomainError::from(e).into()
    }
}

impl From<EnrollError> for AppError {
    fn from(e: EnrollError) -> Self {
        match e {
            EnrollError::InvalidToken => AppError::EnrollmentTokenInvalid,
            EnrollError::Expired => AppError::EnrollmentTokenExpired,
            EnrollError::UsedUp => AppError::EnrollmentTokenUsedUp,
            EnrollError::Store(s) => s.into(),
        }
    }
}

impl From<DomainError> for AppError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::NotFound(what) => AppError::NotFound(what),
            DomainError::Invalid(m) => AppError::Validation(m),
            DomainError::Forbidden(m) => AppError::Forbidden(m),
            DomainError::Unauthorized => AppError::Unauthorized,
            DomainError::Conflict(m) => AppError::Conflict(m),
            DomainError::Unavailable => AppError::Unavailable,
            DomainError::Internal(e) => AppError::Internal(e),
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;
