//! Sign-in, sign-out and the first-run page (which works only while no user exists).
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::session::{Session, random_secret, set_cookie};
use super::view::{LoginPage, SetupPage};
use super::{WebError, WebResult, render};
use crate::domain::users::User;
use crate::extract::PeerIp;
use crate::secrets::{hash_password, token_hash, verify_password};
use crate::state::AppState;
use crate::store::audit::{ActorKind, NewAuditEntry};

/// Where to go after signing in: a path on this site only. Browsers drop tabs and newlines from
/// URLs and read `\\` as `/`, so `/\t/evil.example` would become `//evil.example`, another
/// site: any whitespace, control character or backslash is refused, as is `//` (a host).
fn safe_next(next: &str) -> &str {
    let path_only = next.starts_with('/')
        && !next.starts_with("//")
        && !next.chars().any(|c| c == '\\' || c.is_whitespace() || c.is_control());
    if path_only { next } else { "/" }
}

#[derive(Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    next: String,
}

pub async fn login_page(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Query(q): Query<NextQuery>,
) -> WebResult<Response> {
    if state.store.count_users().await? == 0 {
        return Ok(Redirect::to("/setup").into_response());
    }
    let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok());
    render(&LoginPage {
        error: None,
        next: safe_next(&q.next).to_owned(),
        cookie_warning: state.settings.sign_in_will_not_stick(host),
    })
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    next: String,
}

async fn start_session(state: &AppState, user: &User, to: &str) -> WebResult<Response> {
    let id = random_secret();
    let idle = i64::try_from(state.settings.session_idle_hours).unwrap_or(12) * 3_600_000;
    state.store.create_session(&token_hash(&id), user.id, &random_secret(), idle).await?;
    state
        .store
        .append_audit(&NewAuditEntry::new(ActorKind::User, &user.username, "session.created", &user.username))
        .await?;
    Ok(([set_cookie(state, Some(&id))], Redirect::to(to)).into_response())
}

pub async fn login(
    State(state): State<AppState>,
    PeerIp(ip): PeerIp,
    form: Result<Form<LoginForm>, FormRejection>,
) -> WebResult<Response> {
    let Form(f) = form.map_err(|e| WebError::BadRequest(e.body_text()))?;
    // The attempt is counted before the password is checked (parallel guesses cannot all slip
    // through) and given back when it succeeds.
    if !state.throttle.begin(&f.username, ip) {
        return Err(WebError::TooManyAttempts);
    }
    let found = state.store.user_by_name(f.username.trim()).await?;
    // Verify even for an unknown user, so the timing does not tell which names exist.
    let (user, hash) = match found {
        Some((u, h)) => (Some(u), h),
        None => (
            None,
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        ),
    };
    let password = f.password.clone();
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash)).await.unwrap_or(false);
    match user {
        Some(u) if ok => {
            state.throttle.succeeded(&f.username, ip);
            start_session(&state, &u, safe_next(&f.next)).await
        }
        _ => {
            let name: String = f.username.chars().take(64).collect();
            state.store.append_audit(&NewAuditEntry::new(ActorKind::User, &name, "session.failed", &name)).await?;
            let page = LoginPage {
                error: Some("Wrong user name or password.".into()),
                next: safe_next(&f.next).to_owned(),
                cookie_warning: false,
            };
            Ok((StatusCode::UNAUTHORIZED, render(&page)?).into_response())
        }
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    State(state): State<AppState>,
    session: Session,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> WebResult<Response> {
    let Form(f) = form.map_err(|e| WebError::BadRequest(e.body_text()))?;
    session.check_csrf(&f.csrf)?;
    state.store.delete_session(&session.id_hash).await?;
    state
        .store
        .append_audit(&NewAuditEntry::new(
            ActorKind::User,
            &session.user.username,
            "session.ended",
            &session.user.username,
        ))
        .await?;
    Ok(([set_cookie(&state, None)], Redirect::to("/login")).into_response())
}

pub async fn setup_page(State(state): State<AppState>) -> WebResult<Response> {
    if state.store.count_users().await? > 0 {
        return Err(WebError::NotFound);
    }
    render(&SetupPage { error: None })
}

#[derive(Deserialize)]
pub struct SetupForm {
    username: String,
    password: String,
}

/// A user name people can type: 1-64 of letters, digits, `.`, `_`, `-`, `@`.
pub fn valid_username(u: &str) -> bool {
    !u.is_empty() && u.len() <= 64 && u.chars().all(|c| c.is_ascii_alphanumeric() || ".-_@".contains(c))
}

pub const MIN_PASSWORD: usize = 12;

pub async fn setup(State(state): State<AppState>, form: Result<Form<SetupForm>, FormRejection>) -> WebResult<Response> {
    let Form(f) = form.map_err(|e| WebError::BadRequest(e.body_text()))?;
    if state.store.count_users().await? > 0 {
        return Err(WebError::NotFound);
    }
    let name = f.username.trim();
    let error = if !valid_username(name) {
        Some("User names are 1-64 letters, digits, '.', '_', '-' or '@'.")
    } else if f.password.chars().count() < MIN_PASSWORD {
        Some("The password must have at least 12 characters.")
    } else {
        None
    };
    if let Some(e) = error {
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&SetupPage { error: Some(e.into()) })?).into_response());
    }
    let password = f.password.clone();
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(WebError::internal)?
        .map_err(WebError::internal)?;
    let audit = NewAuditEntry::new(ActorKind::User, name, "user.created", name)
        .details(serde_json::json!({"role": "admin", "via": "first-run page"}));
    match state.store.create_first_user(name, &hash, audit).await? {
        Some(user) => start_session(&state, &user, "/").await,
        None => Err(WebError::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_is_a_path_on_this_site_only() {
        assert_eq!(safe_next("/machines?q=a%20b"), "/machines?q=a%20b");
        for evil in [
            "//evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\\evil.example",
            "/\u{0b}/evil.example",
            "/ /evil.example",
            "/\u{a0}/evil.example",
            "https://evil.example",
            "evil.example",
            "",
        ] {
            assert_eq!(safe_next(evil), "/", "{evil:?}");
        }
    }
}
