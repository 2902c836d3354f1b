//! Who is calling: an agent (its machine) or a person (a user with a role).
pub mod agent;
pub mod user;

use axum::http::request::Parts;

/// The token from `Authorization: Bearer <token>`, if the header has that form.
pub(crate) fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}
