//! `POST /api/agent/v1/machines/{machine_id}/jobs/{job_id}/result`: how a job ended.
use axum::Json;
use axum::extract::State;
use rdpfleet_proto::job::JobResultRequest;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::auth::agent::AgentAuth;
use crate::error::{AppError, AppResult};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;
use crate::store::jobs::FinishJob;

const MAX_EVIDENCE_BYTES: usize = 256 * 1024;
const MAX_MESSAGE_BYTES: usize = 4096;

#[utoipa::path(post, path = "/api/agent/v1/machines/{machine_id}/jobs/{job_id}/result", tag = "agent",
    params(("machine_id" = Uuid, Path, description = "the caller's own machine id"), ("job_id" = Uuid, Path)),
    request_body = JobResultRequest, security(("agent_token" = [])), responses(
    (status = 200, description = "recorded (or already recorded with the same outcome)"),
    (status = 404, body = rdpfleet_proto::error::ErrorBody, description = "no such job for this machine"),
    (status = 409, body = rdpfleet_proto::error::ErrorBody, description = "the job already ended differently")))]
pub async fn job_result(
    State(state): State<AppState>,
    auth: AgentAuth,
    ApiPath((machine_id, job_id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(req): ApiJson<JobResultRequest>,
) -> AppResult<Json<Value>> {
    auth.require_machine(machine_id)?;
    if req.message.len() > MAX_MESSAGE_BYTES {
        return Err(AppError::Validation(format!("message is longer than {MAX_MESSAGE_BYTES} bytes")));
    }
    if req.evidence.to_string().len() > MAX_EVIDENCE_BYTES {
        return Err(AppError::Validation(format!("evidence is larger than {MAX_EVIDENCE_BYTES} bytes")));
    }
    let req = crate::services::releases::judge_result(&state.store, machine_id, job_id, req).await?;
    match state.store.finish_job(machine_id, job_id, req.outcome, &req.message, &req.evidence).await? {
        FinishJob::Recorded => Ok(Json(json!({"recorded": true}))),
        FinishJob::AlreadyRecorded => Ok(Json(json!({"recorded": false, "duplicate": true}))),
        FinishJob::Conflict => Err(AppError::Conflict("the job already ended with another outcome".into())),
        FinishJob::NotFound => Err(AppError::NotFound("job")),
    }
}
