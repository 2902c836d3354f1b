//! The one route table.
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::{HeaderValue, Request, header};
use axum::routing::{get, post};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::api::{agent, health, openapi, user};
use crate::error::AppError;
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let max_body = state.settings.max_body_bytes;
    // Long polls hold a request open; everything else finishes well within this.
    let timeout = Duration::from_secs(state.settings.long_poll_max_secs + 30);
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/api/openapi.json", get(openapi::document))
        .route("/api/agent/v1/enroll", post(agent::enroll::enroll))
        .route("/api/agent/v1/machines/{machine_id}/reports", post(agent::report::report))
        .route("/api/agent/v1/machines/{machine_id}/jobs", get(agent::job_poll::poll))
        .route("/api/agent/v1/machines/{machine_id}/jobs/{job_id}/result", post(agent::job_result::job_result))
        .route("/api/agent/v1/machines/{machine_id}/releases/{release_id}", get(agent::release::download))
        .route("/api/v1/machines", get(user::machines::list))
        .route("/api/v1/machines/{machine_id}", get(user::machines::get))
        .route("/api/v1/machines/{machine_id}/results", get(user::machine_results::results))
        .route("/api/v1/machines/{machine_id}/history", get(user::machine_history::history))
        .route("/api/v1/machines/{machine_id}/diagnoses", get(user::machine_diagnoses::diagnoses))
        .route("/api/v1/overview", get(user::fleet::overview))
        .route("/api/v1/fleet/machines", get(user::fleet::machines))
        .route("/api/v1/checks/{check_id}", get(user::fleet::check))
        .route("/api/v1/incidents", get(user::incidents::list))
        .route("/api/v1/incidents/{incident_id}", get(user::incidents::get))
        .route("/api/v1/map", get(user::fleet::map))
        .route("/api/v1/rollouts", get(user::rollouts::list).post(user::rollouts::propose))
        .route("/api/v1/rollouts/{rollout_id}", get(user::rollouts::get))
        .route("/api/v1/rollouts/{rollout_id}/approve", post(user::rollouts::approve))
        .route("/api/v1/rollouts/{rollout_id}/start", post(user::rollouts::start))
        .route("/api/v1/rollouts/{rollout_id}/pause", post(user::rollouts::pause))
        .route("/api/v1/rollouts/{rollout_id}/resume", post(user::rollouts::resume))
        .route("/api/v1/rollouts/{rollout_id}/abort", post(user::rollouts::abort))
        .route("/api/v1/rollouts/{rollout_id}/rollback", post(user::rollouts::rollback))
        .route("/api/v1/releases", get(user::releases::list))
        .route("/api/v1/users", get(user::users::list))
        .route("/api/v1/users/{user_id}/disable", post(user::users::disable))
        .route("/api/v1/users/{user_id}/enable", post(user::users::enable))
        .route("/api/v1/users/{user_id}/delete", post(user::users::delete))
        .route("/api/v1/users/{user_id}/role", post(user::users::set_role))
        .route("/api/v1/users/{user_id}/tokens", get(user::users::tokens))
        .route("/api/v1/tokens/{token_id}/revoke", post(user::users::revoke_token))
        .merge(crate::web::routes())
        .fallback(|| async { AppError::NotFound("route") })
        .method_not_allowed_fallback(|| async { AppError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(crate::web::same_origin))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(crate::web::CSP),
        ))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::overriding(header::REFERRER_POLICY, HeaderValue::from_static("same-origin")))
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            // Spans are keyed by the route pattern, never by ids or tokens in the URL.
            let route = req.extensions().get::<MatchedPath>().map(MatchedPath::as_str).unwrap_or("unmatched");
            tracing::info_span!("http", method = %req.method(), route)
        }))
        .with_state(state)
}
