//! People over the JSON API (administrators with an `operate` token): list accounts, disable,
//! enable, change the role, delete; list and revoke API tokens (a user may also list and revoke
//! their own). Every change is audited and ends the account's sessions and tokens at once.
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::user::UserAuth;
use crate::domain::users::{Account, Role};
use crate::error::{AppError, AppResult};
use crate::extract::{ApiJson, ApiPath};
use crate::services::accounts::{self, Actor, Delivery};
use crate::state::AppState;
use crate::store::audit::{ActorKind, NewAuditEntry};
use crate::store::users::{AccountChange, ApiTokenInfo, ChangeOutcome};

/// An account as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccountView {
    pub id: Uuid,
    pub username: String,
    /// `viewer`, `operator` or `admin`.
    pub role: String,
    /// `active`, `disabled` or `deleted`.
    pub state: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub created_by: Option<Uuid>,
    pub promoted_by: Option<Uuid>,
}

impl From<Account> for AccountView {
    fn from(a: Account) -> Self {
        AccountView {
            id: a.id,
            state: a.state().to_owned(),
            role: a.role.as_str().to_owned(),
            username: a.username,
            created_at: a.created_at,
            created_by: a.created_by,
            promoted_by: a.promoted_by,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/users", tag = "people", security(("user_token" = [])),
    responses((status = 200, body = [AccountView]), (status = 403, body = rdpfleet_proto::error::ErrorBody)))]
pub async fn list(State(state): State<AppState>, user: UserAuth) -> AppResult<Json<Vec<AccountView>>> {
    if user.0.role < Role::Admin {
        return Err(AppError::Forbidden("your role does not allow this"));
    }
    Ok(Json(state.store.accounts().await?.into_iter().map(AccountView::from).collect()))
}

async fn apply(state: &AppState, user: &UserAuth, id: Uuid, change: AccountChange) -> AppResult<Json<AccountView>> {
    user.require(Role::Admin)?;
    let actor = Actor::user(&user.0);
    match accounts::change(&state.store, &state.notifier, Delivery::Background, &actor, id, change).await? {
        ChangeOutcome::Done => {}
        ChangeOutcome::NotFound => return Err(AppError::NotFound("user")),
        refused @ (ChangeOutcome::Unchanged | ChangeOutcome::LastAdmin) => {
            return Err(AppError::Conflict(refused.conflict().unwrap_or_default().into()));
        }
    }
    let account = state.store.account(id).await?.ok_or(AppError::NotFound("user"))?;
    Ok(Json(account.into()))
}

macro_rules! change_handler {
    ($name:ident, $path:literal, $change:expr) => {
        #[utoipa::path(post, path = $path, tag = "people", params(("user_id" = Uuid, Path)), security(("user_token" = [])),
            responses((status = 200, body = AccountView), (status = 403, body = rdpfleet_proto::error::ErrorBody),
                (status = 404, body = rdpfleet_proto::error::ErrorBody), (status = 409, body = rdpfleet_proto::error::ErrorBody)))]
        pub async fn $name(State(state): State<AppState>, user: UserAuth, ApiPath(id): ApiPath<Uuid>) -> AppResult<Json<AccountView>> {
            apply(&state, &user, id, $change).await
        }
    };
}

change_handler!(disable, "/api/v1/users/{user_id}/disable", AccountChange::Disable);
change_handler!(enable, "/api/v1/users/{user_id}/enable", AccountChange::Enable);
change_handler!(delete, "/api/v1/users/{user_id}/delete", AccountChange::Delete);

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRole {
    /// `viewer`, `operator` or `admin`.
    pub role: String,
}

#[utoipa::path(post, path = "/api/v1/users/{user_id}/role", tag = "people", params(("user_id" = Uuid, Path)),
    request_body = SetRole, security(("user_token" = [])),
    responses((status = 200, body = AccountView), (status = 403, body = rdpfleet_proto::error::ErrorBody),
        (status = 404, body = rdpfleet_proto::error::ErrorBody), (status = 409, body = rdpfleet_proto::error::ErrorBody),
        (status = 422, body = rdpfleet_proto::error::ErrorBody)))]
pub async fn set_role(
    State(state): State<AppState>,
    user: UserAuth,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<SetRole>,
) -> AppResult<Json<AccountView>> {
    let role =
        Role::parse(&req.role).ok_or_else(|| AppError::Validation("role must be viewer, operator or admin".into()))?;
    apply(&state, &user, id, AccountChange::SetRole(role)).await
}

#[utoipa::path(get, path = "/api/v1/users/{user_id}/tokens", tag = "people", params(("user_id" = Uuid, Path)),
    security(("user_token" = [])), responses((status = 200, body = [ApiTokenInfo]), (status = 403, body = rdpfleet_proto::error::ErrorBody)))]
pub async fn tokens(
    State(state): State<AppState>,
    user: UserAuth,
    ApiPath(id): ApiPath<Uuid>,
) -> AppResult<Json<Vec<ApiTokenInfo>>> {
    if id != user.0.id && user.0.role < Role::Admin {
        return Err(AppError::Forbidden("only administrators see other people's tokens"));
    }
    Ok(Json(state.store.api_tokens(Some(id)).await?))
}

#[utoipa::path(post, path = "/api/v1/tokens/{token_id}/revoke", tag = "people", params(("token_id" = Uuid, Path)),
    security(("user_token" = [])), responses((status = 204), (status = 404, body = rdpfleet_proto::error::ErrorBody)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    user: UserAuth,
    ApiPath(id): ApiPath<Uuid>,
) -> AppResult<axum::http::StatusCode> {
    // Revoking only takes access away, so a read-only token may revoke its own user's tokens
    // (itself included); administrators (with an operate token) revoke anyone's.
    let owner = if user.require(Role::Admin).is_ok() { None } else { Some(user.0.id) };
    let audit = NewAuditEntry::new(ActorKind::User, &user.0.username, "api_token.revoked", id.to_string());
    if !state.store.revoke_api_token(id, owner, audit).await? {
        return Err(AppError::NotFound("token"));
    }
    Ok(axum::http::StatusCode::NO_CONTENT)
}
