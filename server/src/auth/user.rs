//! User authentication for the JSON API: a personal API token (`rfu_…`), which acts with its
//! user's role — or, for a `read` token, only reads.
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::domain::users::{Role, TokenScope, User};
use crate::error::AppError;
use crate::secrets::{TokenKind, token_hash};
use crate::state::AppState;

#[derive(Debug, Clone)]
pub struct UserAuth(pub User, pub TokenScope);

impl UserAuth {
    /// Whether the caller may do what needs `role`: everything above viewing also needs a token
    /// with the `operate` scope.
    pub fn require(&self, role: Role) -> Result<(), AppError> {
        if self.0.role < role {
            Err(AppError::Forbidden("your role does not allow this"))
        } else if role > Role::Viewer && self.1 == TokenScope::Read {
            Err(AppError::Forbidden("this API token is read-only"))
        } else {
            Ok(())
        }
    }
}

impl FromRequestParts<AppState> for UserAuth {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = super::bearer(parts)
            .filter(|t| t.starts_with(TokenKind::UserApi.prefix()))
            .ok_or(AppError::Unauthorized)?;
        let (user, scope) = state.store.user_by_api_token(&token_hash(token)).await?.ok_or(AppError::Unauthorized)?;
        Ok(UserAuth(user, scope))
    }
}
