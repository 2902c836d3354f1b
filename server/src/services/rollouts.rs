//! Rollouts as people drive them: propose a catalogue fix for machines (or an incident's
//! machines at fault), approve (a second person), start, pause, resume, abort, roll back; and
//! the engine's step, which hands each wave its signed jobs and decides on finished waves. The
//! rules (states, transitions, approval, waves) are `domain::rollout` and `domain::approval`;
//! this module applies them to the store, audited.
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use rdpfleet_proto::fixes;
use rdpfleet_proto::job::{Job, JobAction};
use rdpfleet_proto::release::AGENT_UPDATE;
use uuid::Uuid;

use crate::domain::approval::{self, ApprovalPolicy};
use crate::domain::ids::{JobId, MachineId, RolloutId};
use crate::domain::incident::Relation;
use crate::domain::rollout::{Action, Rollout, RolloutState, Target, TargetState, WaveOutcome, waves};
use crate::domain::users::{Role, User};
use crate::domain::{DomainError, DomainResult};
use crate::store::audit::{ActorKind, NewAuditEntry};
use crate::store::rollouts::{NewRollout, NewTarget, TargetJob, Transition};
use crate::store::{Store, now_ms, time_of};

/// How long an agent has to pick a job up before it expires.
pub const JOB_TTL_MS: i64 = 6 * 3_600_000;

/// A proposal, from the JSON API or the dashboard's form.
#[derive(Debug, Clone, Default)]
pub struct Proposal {
    /// A fix from the catalogue (the Windows id; xrdp hosts get their equivalent).
    pub fix: String,
    pub params: serde_json::Value,
    /// The machines to fix...
    pub machines: Vec<Uuid>,
    /// ...or an incident, whose machines at fault (its sources) are fixed...
    pub incident: Option<Uuid>,
    /// ...or the machines, fix and parameters of an earlier rollout (a dry run applied for real).
    pub repeat_of: Option<RolloutId>,
    pub dry_run: bool,
    pub canary: Option<i64>,
    pub growth: Option<i64>,
    pub max_failures: Option<i64>,
}

/// A rollout with its machines and why it needs approval.
#[derive(Debug, Clone)]
pub struct RolloutDetail {
    pub rollout: Rollout,
    pub targets: Vec<Target>,
}

pub async fn detail(store: &Store, id: RolloutId) -> DomainResult<RolloutDetail> {
    let rollout = store.rollout(id).await?.ok_or(DomainError::NotFound("rollout"))?;
    Ok(RolloutDetail { rollout, targets: store.rollout_targets(id).await? })
}

/// The person's role is at least `role`.
fn require(user: &User, role: Role) -> DomainResult<()> {
    if user.role < role { Err(DomainError::Forbidden("your role does not allow this")) } else { Ok(()) }
}

fn audit(user: &User, action: &'static str, id: RolloutId) -> NewAuditEntry {
    NewAuditEntry::new(ActorKind::User, &user.username, action, id.to_string())
}

/// Validates a proposal and creates the rollout, audited.
pub async fn create(store: &Store, policy: ApprovalPolicy, proposer: &User, req: &Proposal) -> DomainResult<RolloutId> {
    let repeated;
    let mut inherited_source = None;
    let req = match req.repeat_of {
        Some(earlier) => {
            let d = detail(store, earlier).await?;
            // Applied for real, it keeps what the dry run came from (its incident).
            inherited_source = Some(d.rollout.source.clone().unwrap_or_else(|| format!("rollout:{earlier}")));
            if !req.machines.is_empty() || req.incident.is_some() {
                return Err(DomainError::Invalid(
                    "give machines, an incident or a rollout to repeat, one of them".into(),
                ));
            }
            repeated = Proposal {
                fix: d.rollout.fix_id.clone(),
                params: d.rollout.params.clone(),
                machines: d.targets.iter().map(|t| t.machine_id.0).collect(),
                repeat_of: None,
                ..req.clone()
            };
            &repeated
        }
        None => req,
    };
    let info = fixes::lookup(&req.fix).ok_or_else(|| DomainError::Invalid(format!("unknown fix {:?}", req.fix)))?;
    let (canary, growth, max_failures) =
        (req.canary.unwrap_or(1), req.growth.unwrap_or(2), req.max_failures.unwrap_or(0));
    if !(1..=100_000).contains(&canary) || !(1..=100).contains(&growth) || !(0..=100_000).contains(&max_failures) {
        return Err(DomainError::Invalid("canary 1..=100000, growth 1..=100, max_failures 0..=100000".into()));
    }
    let mut machines = req.machines.clone();
    let source = match req.incident {
        Some(i) => {
            if !machines.is_empty() {
                return Err(DomainError::Invalid("give machines or an incident, not both".into()));
            }
            let incident = store.incident(i).await?.ok_or(DomainError::NotFound("incident"))?;
            if !incident_calls_for(&incident, info.id) {
                return Err(DomainError::Invalid(format!(
                    "{} does not fix this incident: its root cause {} (and the causes it explains) call for {}",
                    info.id,
                    incident.root_cause,
                    incident.fix_id.as_deref().unwrap_or("no automatic fix; see the manual steps on its page")
                )));
            }
            machines = store
                .incident_machines(i, 100_000)
                .await?
                .into_iter()
                .filter(|m| m.relation == Relation::Source)
                .map(|m| m.machine_id.0)
                .collect();
            Some(format!("incident:{i}"))
        }
        None => inherited_source,
    };
    machines.sort();
    machines.dedup();
    if machines.is_empty() || machines.len() > 100_000 {
        return Err(DomainError::Invalid(
            "a rollout needs 1 to 100000 machines (an incident's machines at fault)".into(),
        ));
    }
    let mut found = Vec::with_capacity(machines.len());
    // (hostname, OS) of each: an agent update needs a release for every platform among them.
    let mut oses = Vec::with_capacity(machines.len());
    for id in &machines {
        let m = store.machine(*id).await?.ok_or_else(|| DomainError::Invalid(format!("no machine {id}")))?;
        // A host fix on a client would change the client's own listener, not the host at fault.
        if !info.target.fits(m.role) {
            return Err(DomainError::Invalid(format!(
                "{} changes {}; {} is a machine of role {} — propose it for the machine at fault (see its incident)",
                req.fix,
                info.target.as_str(),
                m.hostname,
                m.role.as_str()
            )));
        }
        let fix = fixes::for_os(&req.fix, &m.os)
            .ok_or_else(|| DomainError::Invalid(format!("{} does not apply to {} ({})", req.fix, m.hostname, m.os)))?;
        fixes::validate_params(fix, &req.params).map_err(DomainError::Invalid)?;
        oses.push((m.hostname.clone(), m.os));
        found.push((m.hostname, MachineId(*id), fix));
    }
    found.sort();
    if info.id == AGENT_UPDATE {
        crate::services::releases::check_available(store, &req.params, &oses).await?;
    }
    let cap = policy.canary_cap(found.len());
    if !req.dry_run && canary as usize > cap {
        return Err(DomainError::Invalid(format!(
            "canary {canary} is more than the first wave may hold for {} machine(s): at most {cap} \
             ({}% of the machines, at least 1; the server's max_canary_pct)",
            found.len(),
            policy.max_canary_pct
        )));
    }
    let wave_of = waves(found.len(), if req.dry_run { found.len() } else { canary as usize }, growth as usize);
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
    Ok(store.create_rollout(r, audit).await?)
}

/// Whether `fix` is one the incident's causes call for (its root cause's, or another cause's in
/// its evidence). The machines it goes to are the incident's machines at fault, and each must
/// be of a role the fix is for.
fn incident_calls_for(incident: &crate::domain::incident::Incident, fix: &str) -> bool {
    let mut named: Vec<&str> = vec![incident.root_cause.as_str()];
    if let Some(groups) = incident.evidence["groups"].as_array() {
        named.extend(groups.iter().filter_map(|g| g["cause"].as_str()));
    }
    named.iter().filter_map(|c| rdpfleet_proto::causes::lookup(c)).any(|c| c.fix == Some(fix))
}

/// Applies a person's action, audited: `Forbidden` for the wrong role or an approval by the
/// proposer (or someone the proposer made), `Conflict` when the rollout's state does not allow
/// it. Aborting cancels the jobs not yet delivered.
pub async fn act(store: &Store, user: &User, id: RolloutId, action: Action) -> DomainResult<()> {
    let rule = action.rule();
    require(user, rule.role)?;
    let r = store.rollout(id).await?.ok_or(DomainError::NotFound("rollout"))?;
    let approver = (action == Action::Approve).then_some(user.username.as_str());
    if action == Action::Approve {
        let account = store.account(user.id).await?.ok_or(DomainError::Unauthorized)?;
        let sponsors = store.sponsors(user.id).await?;
        let proposer = r.proposed_by_id.map(Uuid::from);
        if let Some(why) = approval::approver_refusal(&account, &sponsors, proposer, &r.proposed_by, r.created_at) {
            return Err(DomainError::Forbidden(why));
        }
    }
    if matches!(action, Action::Start | Action::Resume) {
        if let Some((other, machine)) = store.overlapping_rollout(id).await? {
            return Err(DomainError::Conflict(format!(
                "rollout {other} of the same fix is running on {machine}; finish or abort it first"
            )));
        }
    }
    let step = Transition { from: rule.from, to: rule.to, wave: None, reason: None, approved_by: approver };
    if !store.transition_rollout(id, step, Some(audit(user, rule.audit_action, id))).await? {
        return Err(DomainError::Conflict(format!(
            "the rollout is {}; cannot {}",
            r.state,
            rule.audit_action.trim_start_matches("rollout.")
        )));
    }
    if action == Action::Abort {
        store.cancel_rollout_work(id).await?;
    }
    Ok(())
}

/// Which succeeded machines to roll back: all, one machine's, or one wave's.
#[derive(Debug, Clone, Copy, Default)]
pub struct RollbackScope {
    pub machine: Option<MachineId>,
    pub wave: Option<i64>,
}

/// Queues rollback jobs for the machines in `scope` the fix succeeded on, audited; returns the
/// machines given a job, which the caller wakes.
pub async fn roll_back(
    store: &Store,
    key: &SigningKey,
    user: &User,
    id: RolloutId,
    scope: RollbackScope,
) -> DomainResult<Vec<MachineId>> {
    require(user, Role::Operator)?;
    let r = store.rollout(id).await?.ok_or(DomainError::NotFound("rollout"))?;
    if r.dry_run {
        return Err(DomainError::Conflict("a dry run changed nothing to roll back".into()));
    }
    let targets = store.rollout_targets(id).await?;
    let chosen: Vec<&Target> = targets
        .iter()
        .filter(|t| scope.machine.is_none_or(|m| t.machine_id == m))
        .filter(|t| scope.wave.is_none_or(|w| t.wave == w))
        .collect();
    let queued = queue_rollbacks(store, key, &r, &chosen).await?;
    let details = serde_json::json!({"machines": queued.len(), "wave": scope.wave, "machine": scope.machine});
    store.append_audit(&audit(user, "rollout.rollback_requested", id).details(details)).await?;
    Ok(queued)
}

/// Signs a job over its canonical payload (`Job::signing_payload`).
pub fn sign(key: &SigningKey, job: &Job) -> String {
    base64::engine::general_purpose::STANDARD.encode(key.sign(&job.signing_payload()).to_bytes())
}

fn system(action: &'static str, subject: String) -> NewAuditEntry {
    NewAuditEntry::new(ActorKind::System, "rollout-engine", action, subject)
}

/// Creates the signed job for one target (apply, dry run or rollback) and moves the target;
/// false when the target had already moved (another replica, an earlier pass).
pub async fn start_job(
    store: &Store,
    key: &SigningKey,
    r: &Rollout,
    t: &Target,
    action: JobAction,
    params: &serde_json::Value,
) -> DomainResult<bool> {
    // An agent update's job carries the release for the machine's platform and lives only as
    // long as its health gate: a machine that does not come back in time fails its wave.
    let update_params;
    let (params, ttl) = if t.fix_id == AGENT_UPDATE && action != JobAction::Rollback {
        let os = store.machine(t.machine_id.0).await?.map(|m| m.os).unwrap_or_default();
        update_params = crate::services::releases::job_params(store, params, &os).await?;
        (&update_params, crate::services::releases::gate_ms(params))
    } else {
        (params, JOB_TTL_MS)
    };
    let expires_at = now_ms() + ttl;
    let job = Job {
        id: Uuid::new_v4(),
        machine_id: t.machine_id.0,
        fix: t.fix_id.clone(),
        action,
        params: params.clone(),
        nonce: Uuid::new_v4().to_string(),
        expires_at: time_of(expires_at),
        signature: None,
    };
    let signature = sign(key, &job);
    let (from, to) = if action == JobAction::Rollback {
        (TargetState::Succeeded, TargetState::RollingBack)
    } else {
        (TargetState::Pending, TargetState::Running)
    };
    let tj = TargetJob {
        job_id: JobId(job.id),
        machine_id: t.machine_id,
        fix_id: &t.fix_id,
        action: action.as_str(),
        params,
        nonce: &job.nonce,
        signature: &signature,
        // The signed expiry is whole seconds; the row must say the same.
        expires_at: job.expires_at.unix_timestamp() * 1000,
        from,
        to,
    };
    let audit = system("job.queued", job.id.to_string()).details(serde_json::json!({
        "rollout": r.id, "machine": t.hostname, "fix": t.fix_id, "action": action.as_str(), "wave": t.wave,
    }));
    Ok(store.start_target_job(r.id, tj, audit).await?)
}

/// Queues rollback jobs for those of `targets` that succeeded; returns the machines queued.
async fn queue_rollbacks(
    store: &Store,
    key: &SigningKey,
    r: &Rollout,
    targets: &[&Target],
) -> DomainResult<Vec<MachineId>> {
    let mut queued = Vec::new();
    for t in targets.iter().filter(|t| t.state == TargetState::Succeeded) {
        let Some(job) = t.job_id else { continue };
        if start_job(store, key, r, t, JobAction::Rollback, &serde_json::json!({"job": job})).await? {
            queued.push(t.machine_id);
        }
    }
    Ok(queued)
}

/// What one engine pass did: rollouts that halted or completed, machines given a new job.
#[derive(Debug, Default)]
pub struct Advance {
    pub ended: Vec<(&'static str, RolloutId)>,
    pub new_jobs_for: Vec<MachineId>,
}

/// One pass over the active rollouts: targets take their jobs' answers; the current wave's
/// pending machines get signed jobs; a finished wave halts the rollout (its successes rolled
/// back), opens the next wave, or completes it. Every step is a conditional update, so a
/// restarted server (or another replica) carries on where this one stopped.
pub async fn advance(store: &Store, key: &SigningKey) -> DomainResult<Advance> {
    let mut out = Advance::default();
    for r in store.active_rollouts().await? {
        store.sync_rollout_targets(r.id).await?;
        if r.state != RolloutState::Running {
            continue;
        }
        let targets = store.rollout_targets(r.id).await?;
        let wave = r.current_wave.max(1);
        let action = if r.dry_run { JobAction::DryRun } else { JobAction::Apply };
        let in_wave: Vec<&Target> = targets.iter().filter(|t| t.wave == wave).collect();
        for t in in_wave.iter().filter(|t| t.state == TargetState::Pending) {
            if start_job(store, key, &r, t, action, &r.params).await? {
                out.new_jobs_for.push(t.machine_id);
            }
        }
        if in_wave.iter().any(|t| t.state == TargetState::Pending || t.state.is_in_flight()) {
            continue;
        }
        let failed = in_wave.iter().filter(|t| t.state == TargetState::Failed).count() as i64;
        let outcome = WaveOutcome::of(wave, failed, r.max_failures, targets.iter().any(|t| t.wave > wave));
        let running: &[RolloutState] = &[RolloutState::Running];
        let to = outcome.state();
        match &outcome {
            WaveOutcome::Halt { reason } => {
                let audit = system("rollout.halted", r.id.to_string()).details(serde_json::json!({"reason": reason}));
                let step = Transition { from: running, to, wave: None, reason: Some(reason), approved_by: None };
                if store.transition_rollout(r.id, step, Some(audit)).await? {
                    out.ended.push(("rollout.halted", r.id));
                    if !r.dry_run {
                        out.new_jobs_for.extend(queue_rollbacks(store, key, &r, &in_wave).await?);
                    }
                }
            }
            WaveOutcome::Next(next) => {
                let audit = system("rollout.wave_started", r.id.to_string()).details(serde_json::json!({"wave": next}));
                let step = Transition { from: running, to, wave: Some(*next), reason: None, approved_by: None };
                store.transition_rollout(r.id, step, Some(audit)).await?;
            }
            WaveOutcome::Complete => {
                let ok = in_wave.iter().filter(|t| t.state == TargetState::Succeeded).count();
                let audit = system("rollout.completed", r.id.to_string())
                    .details(serde_json::json!({"last_wave_succeeded": ok}));
                let step = Transition { from: running, to, wave: None, reason: None, approved_by: None };
                if store.transition_rollout(r.id, step, Some(audit)).await? {
                    out.ended.push(("rollout.completed", r.id));
                }
            }
        }
    }
    Ok(out)
}
