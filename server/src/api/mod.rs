//! HTTP handlers, one file per action, grouped by API.
pub mod agent;
pub mod health;
pub mod openapi;
pub mod user;

use crate::error::AppError;

/// Rejects empty, over-long or control-character text in a field the client sends.
pub(crate) fn check_text(field: &str, value: &str, max: usize) -> Result<(), AppError> {
    if value.trim().is_empty() {
        return Err(AppError::Validation(format!("{field} must not be empty")));
    }
    if value.len() > max {
        return Err(AppError::Validation(format!("{field} is longer than {max} bytes")));
    }
    if value.chars().any(char::is_control) {
        return Err(AppError::Validation(format!("{field} contains control characters")));
    }
    Ok(())
}
