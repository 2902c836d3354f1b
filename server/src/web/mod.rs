//! The dashboard: server-rendered pages (askama templates in `templates/`), sessions with CSRF
//! protection, and exports. No front-end build step: one stylesheet and one small script
//! (live refresh) are compiled into the binary.
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::state::AppState;

pub mod admin;
pub mod assets;
pub mod audit;
pub mod auth_pages;
pub mod export;
pub mod pages;
pub mod releases;
pub mod rollouts;
pub mod session;
pub mod view;

/// What a page handler can fail with; rendered as a page, never as JSON.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// Not signed in: go to the sign-in page, then back to this path.
    #[error("sign in first")]
    SignIn(String),
    #[error("your role does not allow this")]
    Forbidden,
    #[error("the form has expired or did not come from this site; reload the page and try again")]
    Csrf,
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    /// The action does not fit the current state (e.g. pausing a rollout that is not running).
    #[error("{0}")]
    Conflict(String),
    #[error("too many failed sign-ins; try again in 15 minutes")]
    TooManyAttempts,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl WebError {
    pub fn internal(e: impl Into<anyhow::Error>) -> WebError {
        WebError::Internal(e.into())
    }
}

impl From<crate::domain::DomainError> for WebError {
    fn from(e: crate::domain::DomainError) -> Self {
        use crate::domain::DomainError as D;
        match e {
            D::NotFound(_) => WebError::NotFound,
            D::Forbidden(_) => WebError::Forbidden,
            D::Conflict(m) => WebError::Conflict(m),
            D::Internal(e) => WebError::Internal(e),
            D::Unavailable => WebError::internal(anyhow::anyhow!("the database is saturated")),
            other => WebError::BadRequest(other.to_string()),
        }
    }
}

impl From<crate::store::StoreError> for WebError {
    fn from(e: crate::store::StoreError) -> Self {
        WebError::internal(e)
    }
}

impl From<askama::Error> for WebError {
    fn from(e: askama::Error) -> Self {
        WebError::internal(e)
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = match &self {
            WebError::SignIn(next) => {
                let to = format!("/login?next={}", view::url_encode(next));
                return Redirect::to(&to).into_response();
            }
            WebError::Forbidden | WebError::Csrf => StatusCode::FORBIDDEN,
            WebError::NotFound => StatusCode::NOT_FOUND,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Conflict(_) => StatusCode::CONFLICT,
            WebError::TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
            WebError::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "page failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let page = view::ErrorPage { status: status.as_u16(), message: self.to_string() };
        let body = askama::Template::render(&page).unwrap_or_else(|_| self.to_string());
        (status, Html(body)).into_response()
    }
}

pub type WebResult<T> = Result<T, WebError>;

/// Renders a template as an HTML response.
pub fn render(t: &impl askama::Template) -> WebResult<Response> {
    Ok(Html(t.render()?).into_response())
}

/// The strict policy every response carries: scripts and styles only from this server, no
/// inline code, no framing, forms only to this server.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Refuses a state-changing request whose `Origin` is another site (defence in depth beside the
/// CSRF token and SameSite=Strict; the sign-in form has no session, so this is its protection).
pub async fn same_origin(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use axum::http::Method;
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let origin = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok());
    // "null" (privacy settings, sandboxed frames) says nothing; the CSRF token still decides.
    if let (Some(origin), Some(host)) = (origin.filter(|o| *o != "null"), host) {
        let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
        if !origin_host.eq_ignore_ascii_case(host) {
            return WebError::Csrf.into_response();
        }
    }
    next.run(req).await
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::overview))
        .route("/login", get(auth_pages::login_page).post(auth_pages::login))
        .route("/logout", post(auth_pages::logout))
        .route("/setup", get(auth_pages::setup_page).post(auth_pages::setup))
        .route("/machines", get(pages::machines))
        .route("/machines/{machine_id}", get(pages::machine))
        .route("/checks/{check_id}", get(pages::check))
        .route("/incidents", get(pages::incidents))
        .route("/incidents/{incident_id}", get(pages::incident))
        .route("/map", get(pages::map))
        .route("/rollouts", get(rollouts::list).post(rollouts::propose))
        .route("/rollouts/{rollout_id}", get(rollouts::page))
        .route("/rollouts/{rollout_id}/{action}", post(rollouts::act))
        .route("/releases", get(releases::page))
        .route("/releases/{release_id}/propose", post(releases::propose))
        .route("/audit", get(audit::page))
        .route("/export/audit.csv", get(audit::csv))
        .route("/admin/users", get(admin::users).post(admin::create_user))
        .route("/admin/users/{user_id}/{action}", post(admin::change_user))
        .route("/admin/api-tokens/{token_id}/revoke", post(admin::revoke_api_token))
        .route("/admin/tokens", get(admin::tokens).post(admin::create_token))
        .route("/admin/tokens/{token_id}/revoke", post(admin::revoke_token))
        .route("/export/machines.csv", get(export::machines_csv))
        .route("/export/machines.json", get(export::machines_json))
        .route("/export/incidents.csv", get(export::incidents_csv))
        .route("/export/incidents.json", get(export::incidents_json))
        .route("/export/results.csv", get(export::results_csv))
        .route("/export/results.json", get(export::results_json))
        .route("/static/app.css", get(assets::css))
        .route("/static/app.js", get(assets::js))
}
