//! `POST /api/agent/v1/enroll`: trade an enrollment token for a machine id and agent token.
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use rdpfleet_proto::enroll::{EnrollRequest, EnrollResponse, MAX_HOSTNAME_LEN, MAX_LABEL_LEN, MAX_LABELS};

use crate::api::check_text;
use crate::error::{AppError, AppResult};
use crate::extract::ApiJson;
use crate::extract::PeerIp;
use crate::secrets::{TokenKind, new_token, token_hash};
use crate::state::AppState;
use crate::store::enrollment::NewMachine;

#[utoipa::path(post, path = "/api/agent/v1/enroll", tag = "agent", request_body = EnrollRequest, responses(
    (status = 201, body = EnrollResponse, description = "enrolled; the agent token is shown once"),
    (status = 401, body = rdpfleet_proto::error::ErrorBody, description = "enrollment_token_invalid | enrollment_token_expired | enrollment_token_used_up"),
    (status = 422, body = rdpfleet_proto::error::ErrorBody, description = "invalid_body | validation_failed"),
    (status = 429, body = rdpfleet_proto::error::ErrorBody, description = "too_many_attempts: too many failed enrollments from this address")))]
pub async fn enroll(
    State(state): State<AppState>,
    PeerIp(peer): PeerIp,
    ApiJson(req): ApiJson<EnrollRequest>,
) -> AppResult<(StatusCode, Json<EnrollResponse>)> {
    let ip: Vec<std::net::IpAddr> = peer.into_iter().collect();
    // Counted before the token is checked, given back unless the token was wrong.
    if !state.enroll_throttle.try_begin(&ip) {
        return Err(AppError::TooManyAttempts);
    }
    let result = enroll_machine(&state, req).await;
    if !matches!(
        result,
        Err(AppError::EnrollmentTokenInvalid | AppError::EnrollmentTokenExpired | AppError::EnrollmentTokenUsedUp)
    ) {
        state.enroll_throttle.refund(&ip);
    }
    result
}

async fn enroll_machine(state: &AppState, req: EnrollRequest) -> AppResult<(StatusCode, Json<EnrollResponse>)> {
    validate(&req)?;
    if !req.token.starts_with(TokenKind::Enrollment.prefix()) {
        return Err(AppError::EnrollmentTokenInvalid);
    }
    let agent_token = new_token(TokenKind::Agent);
    let machine = NewMachine {
        hostname: &req.hostname,
        role: req.role,
        os: &req.os,
        agent_version: &req.agent_version,
        site: req.site.as_deref(),
        labels: &req.labels,
    };
    let machine_id = state.store.enroll(&token_hash(&req.token), machine, &token_hash(&agent_token)).await?;
    tracing::info!(%machine_id, hostname = %req.hostname, "machine enrolled");
    Ok((
        StatusCode::CREATED,
        Json(EnrollResponse {
            machine_id,
            agent_token,
            job_signing_public_key: state.job_signing_public_key.to_string(),
            release_signing_public_key: state.release_signing_public_key.as_deref().map(str::to_owned),
            server_time: time::OffsetDateTime::now_utc(),
        }),
    ))
}

fn validate(req: &EnrollRequest) -> Result<(), AppError> {
    check_text("hostname", &req.hostname, MAX_HOSTNAME_LEN)?;
    check_text("os", &req.os, 128)?;
    check_text("agent_version", &req.agent_version, 64)?;
    if let Some(site) = &req.site {
        check_text("site", site, MAX_LABEL_LEN)?;
    }
    if req.labels.len() > MAX_LABELS {
        return Err(AppError::Validation(format!("at most {MAX_LABELS} labels")));
    }
    for label in &req.labels {
        check_text("label", label, MAX_LABEL_LEN)?;
    }
    Ok(())
}
