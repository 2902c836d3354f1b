//! Rollouts over the JSON API: propose, approve, start, pause, resume, abort, roll back. The
//! rules and the store work are `services::rollouts`; this module only reads requests and writes
//! the API's own response types.
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::user::UserAuth;
use crate::domain::ids::{MachineId, RolloutId};
use crate::domain::rollout::{Action, Rollout, Target};
use crate::domain::users::Role;
use crate::error::AppResult;
use crate::extract::{ApiJson, ApiPath};
use crate::services::rollouts::{self, Proposal, RollbackScope};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposeRollout {
    /// A fix from the catalogue (the Windows id; xrdp hosts get their equivalent).
    pub fix: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// The machines to fix...
    #[serde(default)]
    pub machines: Vec<Uuid>,
    /// ...or an incident, whose machines at fault (its sources) are fixed.
    pub incident: Option<Uuid>,
    /// Only ask the agents what they would change.
    #[serde(default)]
    pub dry_run: bool,
    /// Machines in the first wave (default 1).
    pub canary: Option<i64>,
    /// Each later wave is this many times the previous one (default 2).
    pub growth: Option<i64>,
    /// Failed machines in one wave beyond which the rollout halts and rolls the wave back (default 0).
    pub max_failures: Option<i64>,
}

impl From<ProposeRollout> for Proposal {
    fn from(r: ProposeRollout) -> Proposal {
        Proposal {
            fix: r.fix,
            params: r.params,
            machines: r.machines,
            incident: r.incident,
            repeat_of: None,
            dry_run: r.dry_run,
            canary: r.canary,
            growth: r.growth,
            max_failures: r.max_failures,
        }
    }
}

/// A rollout as the API returns it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RolloutBody {
    pub id: Uuid,
    pub fix_id: String,
    /// The fix's parameters, as given at proposal.
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    pub dry_run: bool,
    /// `incident:<id>` when proposed from an incident.
    pub source: Option<String>,
    /// awaiting_approval, ready, running, paused, halted, aborted or completed.
    #[schema(value_type = String)]
    pub state: crate::domain::rollout::RolloutState,
    pub proposed_by: String,
    pub approved_by: Option<String>,
    pub canary: i64,
    pub growth: i64,
    pub max_failures: i64,
    pub current_wave: i64,
    pub halted_reason: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<&Rollout> for RolloutBody {
    fn from(r: &Rollout) -> RolloutBody {
        RolloutBody {
            id: r.id.0,
            fix_id: r.fix_id.clone(),
            params: r.params.clone(),
            dry_run: r.dry_run,
            source: r.source.clone(),
            state: r.state,
            proposed_by: r.proposed_by.clone(),
            approved_by: r.approved_by.clone(),
            canary: r.canary,
            growth: r.growth,
            max_failures: r.max_failures,
            current_wave: r.current_wave,
            halted_reason: r.halted_reason.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// One machine of a rollout as the API returns it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TargetBody {
    pub machine_id: Uuid,
    pub hostname: String,
    pub fix_id: String,
    pub wave: i64,
    /// pending, running, succeeded, failed, rolling_back, rolled_back or cancelled.
    #[schema(value_type = String)]
    pub state: crate::domain::rollout::TargetState,
    pub job_id: Option<Uuid>,
    pub rollback_job_id: Option<Uuid>,
    pub message: Option<String>,
    /// The agent's report of the (apply or dry-run) job: what was, or would be, changed.
    #[schema(value_type = Option<Object>)]
    pub evidence: Option<serde_json::Value>,
}

impl From<&Target> for TargetBody {
    fn from(t: &Target) -> TargetBody {
        TargetBody {
            machine_id: t.machine_id.0,
            hostname: t.hostname.clone(),
            fix_id: t.fix_id.clone(),
            wave: t.wave,
            state: t.state,
            job_id: t.job_id.map(Uuid::from),
            rollback_job_id: t.rollback_job_id.map(Uuid::from),
            message: t.message.clone(),
            evidence: t.evidence.clone(),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RolloutDetail {
    pub rollout: RolloutBody,
    /// Why a second person must approve it (empty: no approval needed).
    pub approval_reasons: Vec<String>,
    pub targets: Vec<TargetBody>,
}

async fn detail(state: &AppState, id: RolloutId) -> AppResult<RolloutDetail> {
    let d = rollouts::detail(&state.store, id).await?;
    Ok(RolloutDetail {
        approval_reasons: d.rollout.approval_reasons.clone(),
        rollout: RolloutBody::from(&d.rollout),
        targets: d.targets.iter().map(TargetBody::from).collect(),
    })
}

#[utoipa::path(post, path = "/api/v1/rollouts", tag = "rollouts", request_body = ProposeRollout, security(("user_token" = [])),
    responses((status = 201, body = RolloutDetail), (status = 403, body = rdpfleet_proto::error::ErrorBody), (status = 422, body = rdpfleet_proto::error::ErrorBody)))]
pub async fn propose(
    State(state): State<AppState>,
    user: UserAuth,
    ApiJson(req): ApiJson<ProposeRollout>,
) -> AppResult<(StatusCode, Json<RolloutDetail>)> {
    user.require(Role::Operator)?;
    let policy = state.settings.approval_policy();
    let id = rollouts::create(&state.store, policy, &user.0, &req.into()).await?;
    Ok((StatusCode::CREATED, Json(detail(&state, id).await?)))
}

#[utoipa::path(get, path = "/api/v1/rollouts", tag = "rollouts", security(("user_token" = [])), responses((status = 200, body = [RolloutBody])))]
pub async fn list(State(state): State<AppState>, _user: UserAuth) -> AppResult<Json<Vec<RolloutBody>>> {
    Ok(Json(state.store.rollouts(500).await?.iter().map(RolloutBody::from).collect()))
}

#[utoipa::path(get, path = "/api/v1/rollouts/{rollout_id}", tag = "rollouts", params(("rollout_id" = Uuid, Path)),
    security(("user_token" = [])), responses((status = 200, body = RolloutDetail), (status = 404, body = rdpfleet_proto::error::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    _user: UserAuth,
    ApiPath(id): ApiPath<Uuid>,
) -> AppResult<Json<RolloutDetail>> {
    Ok(Json(detail(&state, RolloutId(id)).await?))
}

macro_rules! action_handler {
    ($name:ident, $path:literal, $action:expr) => {
        #[utoipa::path(post, path = $path, tag = "rollouts", params(("rollout_id" = Uuid, Path)), security(("user_token" = [])),
            responses((status = 200, body = RolloutDetail), (status = 403, body = rdpfleet_proto::error::ErrorBody), (status = 409, body = rdpfleet_proto::error::ErrorBody)))]
        pub async fn $name(State(state): State<AppState>, user: UserAuth, ApiPath(id): ApiPath<Uuid>) -> AppResult<Json<RolloutDetail>> {
            // A read-only token may not act, whatever its user's role.
            user.require($action.rule().role)?;
            rollouts::act(&state.store, &user.0, RolloutId(id), $action).await?;
            Ok(Json(detail(&state, RolloutId(id)).await?))
        }
    };
}

action_handler!(approve, "/api/v1/rollouts/{rollout_id}/approve", Action::Approve);
action_handler!(start, "/api/v1/rollouts/{rollout_id}/start", Action::Start);
action_handler!(pause, "/api/v1/rollouts/{rollout_id}/pause", Action::Pause);
action_handler!(resume, "/api/v1/rollouts/{rollout_id}/resume", Action::Resume);
action_handler!(abort, "/api/v1/rollouts/{rollout_id}/abort", Action::Abort);

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// Only this machine (default: every machine the fix succeeded on).
    pub machine: Option<Uuid>,
    /// Only this wave.
    pub wave: Option<i64>,
}

#[utoipa::path(post, path = "/api/v1/rollouts/{rollout_id}/rollback", tag = "rollouts", params(("rollout_id" = Uuid, Path)),
    request_body = RollbackRequest, security(("user_token" = [])), responses((status = 200, body = RolloutDetail)))]
pub async fn rollback(
    State(state): State<AppState>,
    user: UserAuth,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<RollbackRequest>,
) -> AppResult<Json<RolloutDetail>> {
    user.require(Role::Operator)?;
    let scope = RollbackScope { machine: req.machine.map(MachineId), wave: req.wave };
    let queued = rollouts::roll_back(&state.store, &state.signing_key, &user.0, RolloutId(id), scope).await?;
    state.wakeups.wake_all(queued.iter().map(|m| m.0));
    Ok(Json(detail(&state, RolloutId(id)).await?))
}
