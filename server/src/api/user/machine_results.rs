//! `GET /api/v1/machines/{id}/results`: the latest result of every check.
use axum::Json;
use axum::extract::State;
use rdpfleet_proto::check::CheckStatus;
use serde::Serialize;
use uuid::Uuid;

use crate::auth::user::UserAuth;
use crate::error::{AppError, AppResult};
use crate::extract::ApiPath;
use crate::state::AppState;
use crate::store::time_of;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LatestResultView {
    pub check: String,
    pub target: Option<String>,
    pub status: CheckStatus,
    pub summary: String,
    pub cause: Option<String>,
    #[schema(value_type = Object)]
    pub evidence: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub observed_at: time::OffsetDateTime,
    pub duration_ms: i64,
    /// When the current status began.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub status_since: time::OffsetDateTime,
}

#[utoipa::path(get, path = "/api/v1/machines/{machine_id}/results", tag = "machines",
    params(("machine_id" = Uuid, Path)), security(("user_token" = [])),
    responses((status = 200, body = [LatestResultView]), (status = 404, body = rdpfleet_proto::error::ErrorBody)))]
pub async fn results(
    State(state): State<AppState>,
    _user: UserAuth,
    ApiPath(id): ApiPath<Uuid>,
) -> AppResult<Json<Vec<LatestResultView>>> {
    state.store.machine(id).await?.ok_or(AppError::NotFound("machine"))?;
    let rows = state.store.latest_results(id).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(LatestResultView {
            status: r.status,
            evidence: r.evidence,
            target: Some(r.target).filter(|t| !t.is_empty()),
            check: r.check_id,
            summary: r.summary,
            cause: r.cause,
            observed_at: time_of(r.observed_at),
            duration_ms: r.duration_ms,
            status_since: time_of(r.status_since),
        });
    }
    Ok(Json(out))
}
