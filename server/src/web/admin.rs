//! Administration pages: users and enrollment tokens (admins only; every change audited).
use axum::Form;
use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::auth_pages::{MIN_PASSWORD, valid_username};
use super::session::Session;
use super::view::{AccountView, ApiTokenView, Nav, TokenView, TokensPage, UsersPage, at};
use super::{WebError, WebResult, render};
use crate::domain::DomainError;
use crate::domain::users::Role;
use crate::secrets::{TokenKind, hash_password, new_token, token_hash};
use crate::services::accounts::{self, Actor, Delivery};
use crate::state::AppState;
use crate::store::audit::{ActorKind, NewAuditEntry};
use crate::store::enrollment::NewEnrollmentToken;
use crate::store::now_ms;
use crate::store::users::{AccountChange, ChangeOutcome};

fn form<T>(f: Result<Form<T>, FormRejection>) -> WebResult<T> {
    f.map(|Form(v)| v).map_err(|e| WebError::BadRequest(e.body_text()))
}

async fn users_page(state: &AppState, session: &Session, message: Option<String>) -> WebResult<UsersPage> {
    let accounts = state.store.accounts().await?;
    let tokens = state.store.api_tokens(None).await?;
    let name_of = |id: Option<uuid::Uuid>| {
        id.and_then(|id| accounts.iter().find(|a| a.id == id)).map(|a| a.username.clone()).unwrap_or_default()
    };
    let now = now_ms();
    let users = accounts
        .iter()
        .map(|a| AccountView {
            id: a.id.to_string(),
            username: a.username.clone(),
            role: a.role.as_str(),
            created: at(a.created_at),
            created_by: name_of(a.created_by),
            state: a.state(),
            is_self: a.id == session.user.id,
            tokens: tokens
                .iter()
                .filter(|t| t.user_id == a.id)
                .map(|t| ApiTokenView {
                    id: t.id.to_string(),
                    label: t.label.clone(),
                    scope: t.scope.as_str(),
                    created: at(t.created_at),
                    expires: t.expires_at.map(at).unwrap_or_else(|| "never".into()),
                    last_used: t.last_used_at.map(at).unwrap_or_else(|| "never".into()),
                    state: t.state(now),
                })
                .collect(),
        })
        .collect();
    Ok(UsersPage { nav: Nav::of(session, "users"), users, message })
}

pub async fn users(State(state): State<AppState>, session: Session) -> WebResult<Response> {
    session.require(Role::Admin)?;
    render(&users_page(&state, &session, None).await?)
}

#[derive(Deserialize)]
pub struct NewUserForm {
    #[serde(default)]
    csrf: String,
    username: String,
    password: String,
    role: String,
}

pub async fn create_user(
    State(state): State<AppState>,
    session: Session,
    f: Result<Form<NewUserForm>, FormRejection>,
) -> WebResult<Response> {
    session.require(Role::Admin)?;
    let f = form(f)?;
    session.check_csrf(&f.csrf)?;
    let name = f.username.trim();
    let role = Role::parse(&f.role);
    let problem = if !valid_username(name) {
        Some("User names are 1-64 letters, digits, '.', '_', '-' or '@'.".to_owned())
    } else if f.password.chars().count() < MIN_PASSWORD {
        Some("The password must have at least 12 characters.".to_owned())
    } else if role.is_none() {
        Some("Unknown role.".to_owned())
    } else {
        None
    };
    if let Some(p) = problem {
        return Ok(
            (StatusCode::UNPROCESSABLE_ENTITY, render(&users_page(&state, &session, Some(p)).await?)?).into_response()
        );
    }
    let role = role.unwrap_or(Role::Viewer);
    let password = f.password.clone();
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(WebError::internal)?
        .map_err(WebError::internal)?;
    let actor = Actor::user(&session.user);
    match accounts::create(&state.store, &state.notifier, Delivery::Background, &actor, name, &hash, role).await {
        Ok(_) => Ok(Redirect::to("/admin/users").into_response()),
        Err(DomainError::Conflict(_)) => {
            let page = users_page(&state, &session, Some(format!("A user named {name} already exists."))).await?;
            Ok((StatusCode::CONFLICT, render(&page)?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct AccountForm {
    #[serde(default)]
    csrf: String,
    /// For `role`.
    #[serde(default)]
    role: String,
}

/// `POST /admin/users/{user_id}/{disable|enable|delete|role}`.
pub async fn change_user(
    State(state): State<AppState>,
    session: Session,
    path: Result<Path<(String, String)>, PathRejection>,
    f: Result<Form<AccountForm>, FormRejection>,
) -> WebResult<Response> {
    session.require(Role::Admin)?;
    let f = form(f)?;
    session.check_csrf(&f.csrf)?;
    let Path((id, action)) = path.map_err(|_| WebError::NotFound)?;
    let id: uuid::Uuid = id.parse().map_err(|_| WebError::NotFound)?;
    let change = match action.as_str() {
        "disable" => AccountChange::Disable,
        "enable" => AccountChange::Enable,
        "delete" => AccountChange::Delete,
        "role" => AccountChange::SetRole(Role::parse(&f.role).ok_or(WebError::BadRequest("unknown role".into()))?),
        _ => return Err(WebError::NotFound),
    };
    let actor = Actor::user(&session.user);
    match accounts::change(&state.store, &state.notifier, Delivery::Background, &actor, id, change).await? {
        ChangeOutcome::Done => Ok(Redirect::to("/admin/users").into_response()),
        ChangeOutcome::NotFound => Err(WebError::NotFound),
        refused @ (ChangeOutcome::Unchanged | ChangeOutcome::LastAdmin) => {
            Err(WebError::Conflict(refused.conflict().unwrap_or_default().into()))
        }
    }
}

/// `POST /admin/api-tokens/{token_id}/revoke`.
pub async fn revoke_api_token(
    State(state): State<AppState>,
    session: Session,
    id: Result<Path<String>, PathRejection>,
    f: Result<Form<CsrfOnly>, FormRejection>,
) -> WebResult<Response> {
    session.require(Role::Admin)?;
    let f = form(f)?;
    session.check_csrf(&f.csrf)?;
    let id = super::pages::uuid_of(id)?;
    let audit = NewAuditEntry::new(ActorKind::User, &session.user.username, "api_token.revoked", id.to_string());
    if !state.store.revoke_api_token(id, None, audit).await? {
        return Err(WebError::NotFound);
    }
    Ok(Redirect::to("/admin/users").into_response())
}

async fn tokens_page(state: &AppState, session: &Session, created: Option<String>) -> WebResult<TokensPage> {
    let now = now_ms();
    let tokens = state
        .store
        .list_enrollment_tokens()
        .await?
        .into_iter()
        .map(|t| TokenView {
            state: t.state(now).as_str().to_owned(),
            uses: format!("{} / {}", t.uses, t.max_uses),
            expires: at(t.expires_at),
            id: t.id,
            label: t.label,
        })
        .collect();
    Ok(TokensPage {
        nav: Nav::of(session, "tokens"),
        tokens,
        token: created.clone().unwrap_or_else(|| "TOKEN".to_owned()),
        created,
        agent_url: state.settings.agent_url(),
        agent_url_known: state.settings.known_agent_url().is_some(),
    })
}

pub async fn tokens(State(state): State<AppState>, session: Session) -> WebResult<Response> {
    session.require(Role::Admin)?;
    render(&tokens_page(&state, &session, None).await?)
}

#[derive(Deserialize)]
pub struct NewTokenForm {
    #[serde(default)]
    csrf: String,
    label: String,
    max_uses: i64,
    hours: i64,
}

pub async fn create_token(
    State(state): State<AppState>,
    session: Session,
    f: Result<Form<NewTokenForm>, FormRejection>,
) -> WebResult<Response> {
    session.require(Role::Admin)?;
    let f = form(f)?;
    session.check_csrf(&f.csrf)?;
    let label = f.label.trim();
    if label.is_empty() || label.len() > 100 || !(1..=100_000).contains(&f.max_uses) || !(1..=8760).contains(&f.hours) {
        return Err(WebError::BadRequest("label 1-100 characters, 1-100000 machines, 1-8760 hours".into()));
    }
    let token = new_token(TokenKind::Enrollment);
    let audit = NewAuditEntry::new(ActorKind::User, &session.user.username, "enrollment_token.created", label)
        .details(serde_json::json!({"max_uses": f.max_uses, "hours": f.hours}));
    let t = NewEnrollmentToken {
        label,
        token_hash: &token_hash(&token),
        expires_at: now_ms() + f.hours * 3_600_000,
        max_uses: f.max_uses,
    };
    state.store.create_enrollment_token(t, audit).await?;
    render(&tokens_page(&state, &session, Some(token)).await?)
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

pub async fn revoke_token(
    State(state): State<AppState>,
    session: Session,
    id: Result<Path<String>, PathRejection>,
    f: Result<Form<CsrfOnly>, FormRejection>,
) -> WebResult<Response> {
    session.require(Role::Admin)?;
    let f = form(f)?;
    session.check_csrf(&f.csrf)?;
    let id = super::pages::uuid_of(id)?;
    let audit = NewAuditEntry::new(ActorKind::User, &session.user.username, "enrollment_token.revoked", id.to_string());
    if !state.store.revoke_enrollment_token(id, audit).await? {
        return Err(WebError::NotFound);
    }
    Ok(Redirect::to("/admin/tokens").into_response())
}
