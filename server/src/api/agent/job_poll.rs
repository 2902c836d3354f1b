//! `GET /api/agent/v1/machines/{machine_id}/jobs?wait=SECS`: long poll for jobs.
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use rdpfleet_proto::job::{Job, JobPollResponse};
use serde::Deserialize;
use tokio::time::Instant;
use uuid::Uuid;

use crate::auth::agent::AgentAuth;
use crate::error::AppResult;
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;
use crate::tasks::job_wakeup::JobHint;

/// How often a waiting poll asks the database again while the index of machines with jobs is
/// not loaded. Once it is, every way a job appears wakes the poll (the index's refresher too),
/// and 100k waiting polls re-arming a timer every few seconds would be work for nothing.
const RECHECK: Duration = Duration::from_secs(5);
/// Most jobs handed out by one poll.
const MAX_JOBS_PER_POLL: i64 = 10;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PollParams {
    /// Seconds to wait for a job when none is queued (0 answers at once; capped by the server).
    #[serde(default)]
    pub wait: u64,
}

#[utoipa::path(get, path = "/api/agent/v1/machines/{machine_id}/jobs", tag = "agent",
    params(("machine_id" = Uuid, Path, description = "the caller's own machine id"), PollParams),
    security(("agent_token" = [])), responses(
    (status = 200, body = JobPollResponse, description = "leased jobs, possibly none"),
    (status = 401, body = rdpfleet_proto::error::ErrorBody, description = "unauthorized"),
    (status = 403, body = rdpfleet_proto::error::ErrorBody, description = "forbidden")))]
pub async fn poll(
    State(state): State<AppState>,
    auth: AgentAuth,
    ApiPath(machine_id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<PollParams>,
) -> AppResult<Json<JobPollResponse>> {
    auth.require_machine(machine_id)?;
    // Written in batches a few seconds later; to the half minute is enough.
    state.seen.mark(machine_id, Duration::from_secs(30));
    let wait = Duration::from_secs(params.wait.min(state.settings.long_poll_max_secs));
    let deadline = Instant::now() + wait;
    let lease_ms = i64::try_from(state.settings.job_lease_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let notify = state.wakeups.for_machine(machine_id);
    loop {
        // Registered before the query, so a wake-up between query and wait is not lost.
        let woken = notify.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let hint = state.wakeups.hint(machine_id);
        if hint != JobHint::Nothing {
            let rows = state.store.lease_jobs(machine_id, lease_ms, MAX_JOBS_PER_POLL).await?;
            if !rows.is_empty() {
                let jobs = rows.into_iter().map(|s| s.job).collect();
                return Ok(answer(&state, jobs));
            }
            state.wakeups.settle(machine_id, hint);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(answer(&state, vec![]));
        }
        tokio::select! {
            () = &mut woken => {}
            () = tokio::time::sleep(if state.wakeups.loaded() { deadline - now } else { (deadline - now).min(RECHECK) }) => {}
            () = state.shutdown.cancelled() => {
                return Ok(answer(&state, vec![]));
            }
        }
    }
}

/// The poll's answer: its jobs and every rotation of the signing key (agents follow those first).
fn answer(state: &AppState, jobs: Vec<Job>) -> Json<JobPollResponse> {
    Json(JobPollResponse {
        jobs,
        key_rotations: state.key_rotations.to_vec(),
        release_key_rotations: state.release_key_rotations.to_vec(),
    })
}
