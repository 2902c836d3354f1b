//! Agent authentication: a bearer token issued at enrollment, bound to one machine.
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use uuid::Uuid;

use crate::error::AppError;
use crate::secrets::{TokenKind, token_hash};
use crate::state::AppState;

/// An authenticated agent. Handlers must call [`AgentAuth::require_machine`] before touching a
/// machine named in the path: a token only acts for its own machine.
#[derive(Debug, Clone, Copy)]
pub struct AgentAuth {
    pub machine_id: Uuid,
}

impl AgentAuth {
    pub fn require_machine(&self, machine_id: Uuid) -> Result<(), AppError> {
        if self.machine_id == machine_id {
            Ok(())
        } else {
            Err(AppError::Forbidden("this agent token belongs to another machine"))
        }
    }
}

impl FromRequestParts<AppState> for AgentAuth {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token =
            super::bearer(parts).filter(|t| t.starts_with(TokenKind::Agent.prefix())).ok_or(AppError::Unauthorized)?;
        let identity = state.store.agent_by_token(&token_hash(token)).await?.ok_or(AppError::Unauthorized)?;
        Ok(AgentAuth { machine_id: identity.machine_id })
    }
}
