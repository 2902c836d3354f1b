//! Administration pages: users and enrollment tokens (admins only; every change audited).
use axum::Form;
use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::auth_pages::{MIN_PASSWORD, valid_username};
use super::session::Session;
use super::view::{Nav, TokenView, TokensPage, UsersPage, at};
use super::{WebError, WebResult, render};
use crate::secrets::{TokenKind, hash_password, new_token, token_hash};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::audit::{ActorKind, NewAuditEntry};
use crate::store::enrollment::NewEnrollmentToken;
use crate::store::now_ms;
use crate::store::users::Role;

fn form<T>(f: Result<Form<T>, FormRejection>) -> WebResult<T> {
    f.map(|Form(v)| v).map_err(|e| WebError::BadRequest(e.body_text()))
}

async fn users_page(state: &AppState, session: &Session, message: Option<String>) -> WebResult<UsersPage> {
    let users = state
        .store
        .list_users()
        .await?
        .into_iter()
        .map(|u| (u.username, u.role, at(u.created_at), u.disabled_at.is_some()))
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
    let audit = NewAuditEntry::new(ActorKind::User, &session.user.username, "user.created", name)
        .details(serde_json::json!({"role": role.as_str()}));
    match state.store.create_user(name, &hash, role, audit).await {
        Ok(_) => Ok(Redirect::to("/admin/users").into_response()),
        Err(StoreError::Conflict) => {
            let page = users_page(&state, &session, Some(format!("A user named {name} already exists."))).await?;
            Ok((StatusCode::CONFLICT, render(&page)?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

async fn tokens_page(state: &AppState, session: &Session, created: Option<String>) -> WebResult<TokensPage> {
    let now = now_ms();
    let tokens = state
        .store
        .list_enrollment_tokens()
        .await?
        .into_iter()
        .map(|t| TokenView {
            state: t.state(now).to_owned(),
            uses: format!("{} / {}", t.uses, t.max_uses),
            expires: at(t.expires_at),
            id: t.id,
            label: t.label,
        })
        .collect();
    Ok(TokensPage { nav: Nav::of(session, "tokens"), tokens, created, agent_url: state.settings.agent_url() })
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
