//! Rollouts over the JSON API: propose a catalogue fix for machines (or an incident's machines at
//! fault), approve (a second person, an admin), start, pause, resume, abort, roll back. Operators
//! act, admins approve, viewers read; every step is audited.
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use rdpfleet_proto::fixes;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::user::UserAuth;
use crate::error::{AppError, AppResult};
use crate::extract::{ApiJson, ApiPath};
use crate::rollout::policy;
use crate::state::AppState;
use crate::store::audit::{ActorKind, NewAuditEntry};
use crate::store::rollouts::{NewRollout, NewTarget, RolloutRow, TargetRow};
use crate::store::users::{Role, User};

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

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RolloutDetail {
    pub rollout: RolloutRow,
    /// Why a second person must approve it (empty: no approval needed).
    pub approval_reasons: Vec<String>,
    pub targets: Vec<TargetRow>,
}

pub async fn detail(state: &AppState, id: Uuid) -> AppResult<RolloutDetail> {
    let rollout = state.store.rollout(id).await?.ok_or(AppError::NotFound("rollout"))?;
    Ok(RolloutDetail {
        approval_reasons: rollout.approval_reasons(),
        rollout,
        targets: state.store.rollout_targets(id).await?,
    })
}

fn audit(user: &UserAuth, action: &'static str, id: Uuid) -> NewAuditEntry {
    NewAuditEntry::new(ActorKind::User, &user.0.username, action, id.to_string())
}

#[utoipa::path(post, path = "/api/v1/rollouts", tag = "rollouts", request_body = ProposeRollout, security(("user_token" = [])),
    responses((status = 201, body = RolloutDetail), (status = 403, body = rdpfleet_proto::error::ErrorBody), (status = 422, body = rdpfleet_proto::error::ErrorBody)))]
pub async fn propose(
    State(state): State<AppState>,
    user: UserAuth,
    ApiJson(req): ApiJson<ProposeRollout>,
) -> AppResult<(StatusCode, Json<RolloutDetail>)> {
    user.require(Role::Operator)?;
    let id = create(&state, &user.0, &req).await?;
    Ok((StatusCode::CREATED, Json(detail(&state, id).await?)))
}

/// Validates a proposal and creates the rollout (the JSON API and the dashboard's forms).
pub async fn create(state: &AppState, proposer: &User, req: &ProposeRollout) -> AppResult<Uuid> {
    let info = fixes::lookup(&req.fix).ok_or_else(|| AppError::Validation(format!("unknown fix {:?}", req.fix)))?;
    let (canary, growth, max_failures) =
        (req.canary.unwrap_or(1), req.growth.unwrap_or(2), req.max_failures.unwrap_or(0));
    if !(1..=100_000).contains(&canary) || !(1..=100).contains(&growth) || !(0..=100_000).contains(&max_failures) {
        return Err(AppError::Validation("canary 1..=100000, growth 1..=100, max_failures 0..=100000".into()));
    }
    let mut machines = req.machines.clone();
    let source = match req.incident {
        Some(i) => {
            if !machines.is_empty() {
                return Err(AppError::Validation("give machines or an incident, not both".into()));
            }
            state.store.incident(i).await?.ok_or(AppError::NotFound("incident"))?;
            machines = state
                .store
                .incident_machines(i, 100_000)
                .await?
                .into_iter()
                .filter(|m| m.relation == "source")
                .filter_map(|m| m.machine_id.parse().ok())
                .collect();
            Some(format!("incident:{i}"))
        }
        None => None,
    };
    machines.sort();
    machines.dedup();
    if machines.is_empty() || machines.len() > 100_000 {
        return Err(AppError::Validation(
            "a rollout needs 1 to 100000 machines (an incident's machines at fault)".into(),
        ));
    }
    let mut found = Vec::with_capacity(machines.len());
    for id in &machines {
        let m = state.store.machine(*id).await?.ok_or_else(|| AppError::Validation(format!("no machine {id}")))?;
        let fix = fixes::for_os(&req.fix, &m.os)
            .ok_or_else(|| AppError::Validation(format!("{} does not apply to {} ({})", req.fix, m.hostname, m.os)))?;
        fixes::validate_params(fix, &req.params).map_err(AppError::Validation)?;
        found.push((m.hostname, *id, fix));
    }
    found.sort();
    let policy = state.settings.approval_policy();
    let cap = policy.canary_cap(found.len());
    if !req.dry_run && canary as usize > cap {
        return Err(AppError::Validation(format!(
            "canary {canary} is more than the first wave may hold for {} machine(s): at most {cap} \
             ({}% of the machines, at least 1; the server's max_canary_pct)",
            found.len(),
            policy.max_canary_pct
        )));
    }
    let wave_of =
        crate::rollout::waves(found.len(), if req.dry_run { found.len() } else { canary as usize }, growth as usize);
    let targets = found
        .iter()
        .zip(wave_of)
        .map(|((_, id, fix), wave)| NewTarget { machine_id: *id, fix_id: fix, wave })
        .collect();
    let mut infos: Vec<&fixes::FixInfo> = vec![info];
    infos.extend(found.iter().filter_map(|(_, _, f)| fixes::lookup(f)));
    let r = NewRollout {
        fix_id: info.id,
        params: &req.params,
        dry_run: req.dry_run,
        source: source.as_deref(),
        approval_reasons: policy.reasons(&infos, found.len(), req.dry_run),
        proposed_by: &proposer.username,
        proposed_by_id: Some(proposer.id),
        canary,
        growth,
        max_failures,
        targets,
    };
    let audit = NewAuditEntry::new(ActorKind::User, &proposer.username, "rollout.proposed", req.fix.clone());
    Ok(state.store.create_rollout(r, audit).await?)
}

#[utoipa::path(get, path = "/api/v1/rollouts", tag = "rollouts", security(("user_token" = [])), responses((status = 200, body = [RolloutRow])))]
pub async fn list(State(state): State<AppState>, _user: UserAuth) -> AppResult<Json<Vec<RolloutRow>>> {
    Ok(Json(state.store.rollouts(500).await?))
}

#[utoipa::path(get, path = "/api/v1/rollouts/{rollout_id}", tag = "rollouts", params(("rollout_id" = Uuid, Path)),
    security(("user_token" = [])), responses((status = 200, body = RolloutDetail), (status = 404, body = rdpfleet_proto::error::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    _user: UserAuth,
    ApiPath(id): ApiPath<Uuid>,
) -> AppResult<Json<RolloutDetail>> {
    Ok(Json(detail(&state, id).await?))
}

/// What a person can do to a rollout; the JSON API and the dashboard's forms both go through
/// [`act`], so roles, the approval rule and the allowed states live in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Approve,
    Start,
    Pause,
    Resume,
    Abort,
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "approve" => Some(Action::Approve),
            "start" => Some(Action::Start),
            "pause" => Some(Action::Pause),
            "resume" => Some(Action::Resume),
            "abort" => Some(Action::Abort),
            _ => None,
        }
    }

    /// Who may, from which states, to which state, and the audit action.
    fn rule(self) -> (Role, &'static [&'static str], &'static str, &'static str) {
        match self {
            Action::Approve => (Role::Admin, &["awaiting_approval"], "ready", "rollout.approved"),
            Action::Start => (Role::Operator, &["ready"], "running", "rollout.started"),
            Action::Pause => (Role::Operator, &["running"], "paused", "rollout.paused"),
            Action::Resume => (Role::Operator, &["paused"], "running", "rollout.resumed"),
            Action::Abort => (
                Role::Operator,
                &["awaiting_approval", "ready", "running", "paused", "halted"],
                "aborted",
                "rollout.aborted",
            ),
        }
    }
}

/// Applies an action, audited: 403 for the wrong role or a self-approval, 409 when the rollout
/// is in a state the action does not apply to. Aborting cancels the jobs not yet delivered.
pub async fn act(state: &AppState, user: &UserAuth, id: Uuid, action: Action) -> AppResult<()> {
    let (role, from, to, audit_action) = action.rule();
    user.require(role)?;
    let r = state.store.rollout(id).await?.ok_or(AppError::NotFound("rollout"))?;
    let approver = (action == Action::Approve).then_some(user.0.username.as_str());
    if action == Action::Approve {
        let account = state.store.account(user.0.id).await?.ok_or(AppError::Unauthorized)?;
        let sponsors = state.store.sponsors(user.0.id).await?;
        let proposer = r.proposed_by_id.as_deref().and_then(|p| p.parse().ok());
        if let Some(why) = policy::approver_refusal(&account, &sponsors, proposer, &r.proposed_by, r.created_at) {
            return Err(AppError::Forbidden(why));
        }
    }
    if !state.store.transition_rollout(id, from, to, None, None, approver, Some(audit(user, audit_action, id))).await? {
        return Err(AppError::Conflict(format!(
            "the rollout is {}; cannot {}",
            r.state,
            audit_action.trim_start_matches("rollout.")
        )));
    }
    if action == Action::Abort {
        state.store.cancel_rollout_work(id).await?;
    }
    Ok(())
}

macro_rules! action_handler {
    ($name:ident, $path:literal, $action:expr) => {
        #[utoipa::path(post, path = $path, tag = "rollouts", params(("rollout_id" = Uuid, Path)), security(("user_token" = [])),
            responses((status = 200, body = RolloutDetail), (status = 403, body = rdpfleet_proto::error::ErrorBody), (status = 409, body = rdpfleet_proto::error::ErrorBody)))]
        pub async fn $name(State(state): State<AppState>, user: UserAuth, ApiPath(id): ApiPath<Uuid>) -> AppResult<Json<RolloutDetail>> {
            act(&state, &user, id, $action).await?;
            Ok(Json(detail(&state, id).await?))
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
    roll_back(&state, &user, id, &req).await?;
    Ok(Json(detail(&state, id).await?))
}

/// Queues rollback jobs for the machines (all, one, or one wave's) the fix succeeded on, wakes
/// them, audits the request; returns how many jobs were queued.
pub async fn roll_back(state: &AppState, user: &UserAuth, id: Uuid, req: &RollbackRequest) -> AppResult<usize> {
    user.require(Role::Operator)?;
    let r = state.store.rollout(id).await?.ok_or(AppError::NotFound("rollout"))?;
    if r.dry_run == 1 {
        return Err(AppError::Conflict("a dry run changed nothing to roll back".into()));
    }
    let targets = state.store.rollout_targets(id).await?;
    let chosen: Vec<&TargetRow> = targets
        .iter()
        .filter(|t| req.machine.is_none_or(|m| t.machine_id == m.to_string()))
        .filter(|t| req.wave.is_none_or(|w| t.wave == w))
        .collect();
    let n = crate::rollout::roll_back(&state.store, &state.signing_key, &r, &chosen).await?;
    for t in &chosen {
        if let Ok(m) = t.machine_id.parse() {
            state.wakeups.wake(m);
        }
    }
    let details = serde_json::json!({"machines": n, "wave": req.wave, "machine": req.machine});
    state.store.append_audit(&audit(user, "rollout.rollback_requested", id).details(details)).await?;
    Ok(n)
}
