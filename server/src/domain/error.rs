//! The one error of the domain rules and services; `api/` turns it into an `AppError` (JSON)
//! and `web/` into a page, so both transports answer the same fault the same way.

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The named thing does not exist (or is not visible to the caller).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request breaks a rule of the input (a range, an unknown fix, a missing machine).
    #[error("{0}")]
    Invalid(String),
    /// The caller may not do this (role, the approval rule).
    #[error("{0}")]
    Forbidden(&'static str),
    /// The caller's account no longer exists or is disabled.
    #[error("missing or invalid credentials")]
    Unauthorized,
    /// The action does not fit the current state (someone else acted first, a finished rollout).
    #[error("{0}")]
    Conflict(String),
    /// The database is saturated; the caller may retry.
    #[error("service unavailable")]
    Unavailable,
    /// A fault of the server; its details are logged at the boundary, never shown.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

pub type DomainResult<T> = Result<T, DomainError>;
