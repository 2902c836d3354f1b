//! `POST /api/agent/v1/machines/{machine_id}/reports`: store a batch of check results.
use std::collections::HashSet;

use axum::Json;
use axum::extract::State;
use rdpfleet_proto::MAX_RESULTS_PER_REPORT;
use rdpfleet_proto::check::{CheckResult, MAX_CHECK_ID_LEN, MAX_SUMMARY_LEN, MAX_TARGET_LEN};
use rdpfleet_proto::diagnosis::{Diagnosis, PATH_CHECK};
use rdpfleet_proto::report::{ReportRequest, ReportResponse};
use serde::Deserialize;
use uuid::Uuid;

use crate::api::check_text;
use crate::auth::agent::AgentAuth;
use crate::error::{AppError, AppResult};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;
use crate::store::results::MAX_SEQ_JUMP;

/// Largest serialised evidence of one result.
const MAX_EVIDENCE_BYTES: usize = 64 * 1024;

#[utoipa::path(post, path = "/api/agent/v1/machines/{machine_id}/reports", tag = "agent",
    params(("machine_id" = Uuid, Path, description = "the caller's own machine id")),
    request_body = ReportRequest, security(("agent_token" = [])), responses(
    (status = 200, body = ReportResponse, description = "stored, or acknowledged as a duplicate"),
    (status = 401, body = rdpfleet_proto::error::ErrorBody, description = "unauthorized"),
    (status = 403, body = rdpfleet_proto::error::ErrorBody, description = "forbidden: another machine's id"),
    (status = 413, body = rdpfleet_proto::error::ErrorBody, description = "payload_too_large"),
    (status = 422, body = rdpfleet_proto::error::ErrorBody, description = "invalid_body | validation_failed")))]
pub async fn report(
    State(state): State<AppState>,
    auth: AgentAuth,
    ApiPath(machine_id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<ReportRequest>,
) -> AppResult<Json<ReportResponse>> {
    auth.require_machine(machine_id)?;
    validate(&req)?;
    let seq = req.seq;
    let outcome = state.reports.store(machine_id, seq, req.agent_version, req.dropped_reports, req.results).await?;
    if let Some(mark) = outcome.refused_jump_from {
        return Err(AppError::Validation(format!(
            "seq {seq} is more than {MAX_SEQ_JUMP} past this machine's last stored report ({mark}); agents number \
             their reports one after another, so this report is refused (nothing was stored). An agent whose \
             state was lost should enroll again"
        )));
    }
    tracing::debug!(%machine_id, seq, duplicate = outcome.duplicate, stored = outcome.stored, "report");
    Ok(Json(ReportResponse {
        seq,
        duplicate: outcome.duplicate,
        stored: outcome.stored,
        transitions: outcome.transitions,
    }))
}

/// Everything a report must satisfy beyond its JSON shape (public for the fuzz target).
pub fn validate(req: &ReportRequest) -> Result<(), AppError> {
    if req.seq == 0 || req.seq > i64::MAX as u64 {
        return Err(AppError::Validation("seq must be between 1 and 2^63-1".into()));
    }
    if req.dropped_reports > i64::MAX as u64 {
        return Err(AppError::Validation("dropped_reports must be at most 2^63-1".into()));
    }
    if let Some(v) = &req.agent_version {
        check_text("agent_version", v, 64)?;
    }
    if req.results.len() > MAX_RESULTS_PER_REPORT {
        return Err(AppError::Validation(format!("at most {MAX_RESULTS_PER_REPORT} results per report")));
    }
    let mut seen = HashSet::new();
    for r in &req.results {
        validate_result(r)?;
        if !seen.insert((r.check.as_str(), r.target.as_deref().unwrap_or(""))) {
            return Err(AppError::Validation(format!(
                "result for check {} and target {:?} appears twice",
                r.check,
                r.target.as_deref().unwrap_or("")
            )));
        }
    }
    Ok(())
}

fn validate_result(r: &CheckResult) -> Result<(), AppError> {
    let id_ok = !r.check.is_empty()
        && r.check.len() <= MAX_CHECK_ID_LEN
        && r.check.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if !id_ok {
        return Err(AppError::Validation(format!(
            "check id {:?} must be 1-{MAX_CHECK_ID_LEN} characters of a-z, 0-9, '.', '_', '-'",
            r.check
        )));
    }
    if let Some(t) = &r.target {
        check_text("target", t, MAX_TARGET_LEN)?;
    }
    if r.summary.len() > MAX_SUMMARY_LEN || r.summary.chars().any(|c| c.is_control() && c != '\n') {
        return Err(AppError::Validation(format!("summary must be at most {MAX_SUMMARY_LEN} bytes of text")));
    }
    if let Some(c) = &r.cause {
        check_text("cause", c, MAX_CHECK_ID_LEN)?;
    }
    if r.evidence.to_string().len() > MAX_EVIDENCE_BYTES {
        return Err(AppError::Validation(format!("evidence is larger than {MAX_EVIDENCE_BYTES} bytes")));
    }
    if r.duration_ms > i64::MAX as u64 {
        return Err(AppError::Validation("duration_ms out of range".into()));
    }
    if r.check == PATH_CHECK {
        validate_path(r)?;
    }
    Ok(())
}

/// A connection path's evidence is the probe's `Diagnosis`: its host, gateway, first failing
/// layer and DNS answers drive correlation, so it must be one, and agree with the result.
fn validate_path(r: &CheckResult) -> Result<(), AppError> {
    use rdpfleet_proto::check::CheckStatus;
    // A probe that could not run has no diagnosis to give.
    if matches!(r.status, CheckStatus::Error | CheckStatus::Skipped) {
        return Ok(());
    }
    let d = Diagnosis::deserialize(&r.evidence).map_err(|e| {
        AppError::Validation(format!(
            "rdp.path result for {:?}: evidence is not a Diagnosis ({e})",
            r.target.as_deref().unwrap_or("")
        ))
    })?;
    let mismatch = |what: &str| {
        AppError::Validation(format!(
            "rdp.path result for {:?}: the Diagnosis {what} differs from the result's",
            r.target.as_deref().unwrap_or("")
        ))
    };
    if r.target.as_deref() != Some(d.target.as_str()) {
        return Err(mismatch("target"));
    }
    if d.status != r.status {
        return Err(mismatch("status"));
    }
    if d.cause != r.cause {
        return Err(mismatch("cause"));
    }
    check_text("diagnosis host", &d.host, MAX_TARGET_LEN)?;
    if let Some(g) = &d.gateway {
        check_text("diagnosis gateway", g, MAX_TARGET_LEN)?;
    }
    if d.dns.as_ref().is_some_and(|dns| dns.addresses.iter().any(|a| a.parse::<std::net::IpAddr>().is_err())) {
        return Err(AppError::Validation("rdp.path: diagnosis DNS addresses must be IP addresses".into()));
    }
    Ok(())
}
