//! `GET /api/v1/machines/{id}/history`: status transitions, newest first.
use axum::Json;
use axum::extract::State;
use rdpfleet_proto::check::CheckStatus;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::user::UserAuth;
use crate::error::{AppError, AppResult};
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;
use crate::store::time_of;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TransitionView {
    pub check: String,
    pub target: Option<String>,
    /// Absent for the first result of a check.
    pub from: Option<CheckStatus>,
    pub to: CheckStatus,
    pub cause: Option<String>,
    pub summary: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: time::OffsetDateTime,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// 1 to 1000, default 100.
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/machines/{machine_id}/history", tag = "machines",
    params(("machine_id" = Uuid, Path), HistoryParams), security(("user_token" = [])),
    responses((status = 200, body = [TransitionView]), (status = 404, body = rdpfleet_proto::error::ErrorBody)))]
pub async fn history(
    State(state): State<AppState>,
    _user: UserAuth,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<HistoryParams>,
) -> AppResult<Json<Vec<TransitionView>>> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(AppError::Validation("limit must be 1..=1000".into()));
    }
    state.store.machine(id).await?.ok_or(AppError::NotFound("machine"))?;
    let rows = state.store.transitions(id, limit).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(TransitionView {
            from: r.from,
            to: r.to,
            target: Some(r.target).filter(|t| !t.is_empty()),
            check: r.check_id,
            cause: r.cause,
            summary: r.summary,
            at: time_of(r.at),
        });
    }
    Ok(Json(out))
}
