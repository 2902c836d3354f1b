//! User authentication for the JSON API: a personal API token (`rfu_…`).
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::AppError;
use crate::secrets::{TokenKind, token_hash};
use crate::state::AppState;
use crate::store::users::{Role, User};

#[derive(Debug, Clone)]
pub struct UserAuth(pub User);

impl UserAuth {
    pub fn require(&self, role: Role) -> Result<(), AppError> {
        if self.0.role >= role { Ok(()) } else { Err(AppError::Forbidden("your role does not allow this")) }
    }
}

impl FromRequestParts<AppState> for UserAuth {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = super::bearer(parts)
            .filter(|t| t.starts_with(TokenKind::UserApi.prefix()))
            .ok_or(AppError::Unauthorized)?;
        let user = state.store.user_by_api_token(&token_hash(token)).await?.ok_or(AppError::Unauthorized)?;
        Ok(UserAuth(user))
    }
}
