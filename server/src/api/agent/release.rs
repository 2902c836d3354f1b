//! `GET /api/agent/v1/machines/{machine_id}/releases/{release_id}`: an agent release's bytes, for
//! an agent carrying out an `agent.update` job (it checks the hash and the release key's
//! signature itself).
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use crate::auth::agent::AgentAuth;
use crate::error::{AppError, AppResult};
use crate::extract::ApiPath;
use crate::state::AppState;

#[utoipa::path(get, path = "/api/agent/v1/machines/{machine_id}/releases/{release_id}", tag = "agent",
    params(("machine_id" = Uuid, Path, description = "the caller's own machine id"), ("release_id" = Uuid, Path)),
    security(("agent_token" = [])), responses(
    (status = 200, description = "the release's binary", content_type = "application/octet-stream"),
    (status = 404, body = rdpfleet_proto::error::ErrorBody, description = "no such release")))]
pub async fn download(
    State(state): State<AppState>,
    auth: AgentAuth,
    ApiPath((machine_id, release_id)): ApiPath<(Uuid, Uuid)>,
) -> AppResult<Response> {
    auth.require_machine(machine_id)?;
    let bytes = state.store.release_binary(release_id).await?.ok_or(AppError::NotFound("release"))?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}
