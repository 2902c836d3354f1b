//! `GET /api/v1/machines` and `GET /api/v1/machines/{id}`.
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use uuid::Uuid;

use super::MachineView;
use crate::auth::user::UserAuth;
use crate::error::{AppError, AppResult};
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// 1 to 1000, default 100.
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/machines", tag = "machines", params(Page), security(("user_token" = [])),
    responses((status = 200, body = [MachineView]), (status = 401, body = rdpfleet_proto::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _user: UserAuth,
    ApiQuery(page): ApiQuery<Page>,
) -> AppResult<Json<Vec<MachineView>>> {
    let limit = page.limit.unwrap_or(100);
    let offset = page.offset.unwrap_or(0);
    if !(1..=1000).contains(&limit) || offset < 0 {
        return Err(AppError::Validation("limit must be 1..=1000 and offset non-negative".into()));
    }
    let machines = state.store.machines(limit, offset).await?;
    Ok(Json(machines.into_iter().map(MachineView::from).collect()))
}

#[utoipa::path(get, path = "/api/v1/machines/{machine_id}", tag = "machines",
    params(("machine_id" = Uuid, Path)), security(("user_token" = [])),
    responses((status = 200, body = MachineView), (status = 404, body = rdpfleet_proto::error::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    _user: UserAuth,
    ApiPath(id): ApiPath<Uuid>,
) -> AppResult<Json<MachineView>> {
    let m = state.store.machine(id).await?.ok_or(AppError::NotFound("machine"))?;
    Ok(Json(m.into()))
}
