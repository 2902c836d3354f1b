//! `GET /api/v1/machines/{id}/diagnoses`: the latest connection-path diagnosis of every RDP
//! target the machine's agent probes (the evidence of its `rdp.path` results).
use axum::Json;
use axum::extract::State;
use rdpfleet_proto::diagnosis::Diagnosis;
use uuid::Uuid;

use crate::auth::user::UserAuth;
use crate::error::{AppError, AppResult};
use crate::extract::ApiPath;
use crate::state::AppState;

/// The check whose evidence is a `Diagnosis`.
pub const PATH_CHECK: &str = "rdp.path";

#[utoipa::path(get, path = "/api/v1/machines/{machine_id}/diagnoses", tag = "machines",
    params(("machine_id" = Uuid, Path)), security(("user_token" = [])),
    responses((status = 200, body = [Diagnosis]), (status = 404, body = rdpfleet_proto::error::ErrorBody)))]
pub async fn diagnoses(
    State(state): State<AppState>,
    _user: UserAuth,
    ApiPath(id): ApiPath<Uuid>,
) -> AppResult<Json<Vec<Diagnosis>>> {
    state.store.machine(id).await?.ok_or(AppError::NotFound("machine"))?;
    let rows = state.store.latest_results(id).await?;
    // Evidence that does not parse as a Diagnosis (an older or newer agent) is left out, not fatal.
    let out = rows
        .into_iter()
        .filter(|r| r.check_id == PATH_CHECK)
        .filter_map(|r| serde_json::from_value::<Diagnosis>(r.evidence).ok())
        .collect();
    Ok(Json(out))
}
