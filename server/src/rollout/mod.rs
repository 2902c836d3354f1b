//! The rollout engine: every tick, the replica holding the `rollouts` lease brings each active
//! rollout's targets in line with their jobs' answers and moves it on — the current wave's pending
//! machines get signed jobs; a finished wave either halts the rollout (more failures than allowed:
//! the wave's succeeded machines are rolled back) or opens the next wave; the last wave completes
//! it. Every step is a conditional update, so a restarted server carries on where it stopped.
pub mod policy;

use std::time::Duration;

use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use rdpfleet_proto::job::{Job, JobAction};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::store::audit::{ActorKind, NewAuditEntry};
use crate::store::rollouts::{RolloutRow, TargetJob, TargetRow};
use crate::store::{Store, StoreResult, now_ms};

/// How long an agent has to pick a job up before it expires.
pub const JOB_TTL_MS: i64 = 6 * 3_600_000;

/// Signs a job over its canonical payload (`Job::signing_payload`).
pub fn sign(key: &SigningKey, job: &Job) -> String {
    base64::engine::general_purpose::STANDARD.encode(key.sign(&job.signing_payload()).to_bytes())
}

fn system(action: &'static str, subject: String) -> NewAuditEntry {
    NewAuditEntry::new(ActorKind::System, "rollout-engine", action, subject)
}

/// Creates the signed job for one target (apply, dry run or rollback) and moves the target.
pub async fn start_job(
    store: &Store,
    key: &SigningKey,
    r: &RolloutRow,
    t: &TargetRow,
    action: JobAction,
    params: &serde_json::Value,
) -> StoreResult<bool> {
    let rollout: Uuid = crate::store::parse_uuid(&r.id)?;
    let machine_id: Uuid = crate::store::parse_uuid(&t.machine_id)?;
    let expires_at = now_ms() + JOB_TTL_MS;
    let job = Job {
        id: Uuid::new_v4(),
        machine_id,
        fix: t.fix_id.clone(),
        action,
        params: params.clone(),
        nonce: Uuid::new_v4().to_string(),
        expires_at: crate::store::time_of(expires_at),
        signature: None,
    };
    let signature = sign(key, &job);
    let tj = TargetJob {
        job_id: job.id,
        machine_id,
        fix_id: &t.fix_id,
        action: action.as_str(),
        params,
        nonce: &job.nonce,
        signature: &signature,
        // The signed expiry is whole seconds; the row must say the same.
        expires_at: job.expires_at.unix_timestamp() * 1000,
        target_state: if action == JobAction::Rollback { "rolling_back" } else { "running" },
    };
    let audit = system("job.queued", job.id.to_string()).details(serde_json::json!({
        "rollout": r.id, "machine": t.hostname, "fix": t.fix_id, "action": action.as_str(), "wave": t.wave,
    }));
    store.start_target_job(rollout, tj, audit).await
}

/// Queues rollback jobs for the given succeeded targets.
pub async fn roll_back(store: &Store, key: &SigningKey, r: &RolloutRow, targets: &[&TargetRow]) -> StoreResult<usize> {
    let mut n = 0;
    for t in targets.iter().filter(|t| t.state == "succeeded") {
        let Some(job) = &t.job_id else { continue };
        if start_job(store, key, r, t, JobAction::Rollback, &serde_json::json!({"job": job})).await? {
            n += 1;
        }
    }
    Ok(n)
}

/// What one pass did: rollouts that halted or completed, machines given a new job.
#[derive(Debug, Default)]
pub struct Tick {
    pub ended: Vec<(&'static str, String)>,
    pub new_jobs_for: Vec<Uuid>,
}

/// One pass over the active rollouts.
pub async fn tick(store: &Store, key: &SigningKey) -> StoreResult<Tick> {
    let mut ended = Vec::new();
    let mut new_jobs_for = Vec::new();
    for r in store.active_rollouts().await? {
        let id = crate::store::parse_uuid(&r.id)?;
        store.sync_rollout_targets(id).await?;
        if r.state != "running" {
            continue;
        }
        let targets = store.rollout_targets(id).await?;
        let wave = r.current_wave.max(1);
        let params: serde_json::Value = serde_json::from_str(&r.params).unwrap_or_default();
        let action = if r.dry_run == 1 { JobAction::DryRun } else { JobAction::Apply };
        let in_wave: Vec<&TargetRow> = targets.iter().filter(|t| t.wave == wave).collect();
        for t in in_wave.iter().filter(|t| t.state == "pending") {
            if start_job(store, key, &r, t, action, &params).await? {
                new_jobs_for.extend(t.machine_id.parse::<Uuid>().ok());
            }
        }
        if in_wave.iter().any(|t| matches!(t.state.as_str(), "pending" | "running")) {
            continue;
        }
        let failed = in_wave.iter().filter(|t| t.state == "failed").count() as i64;
        if failed > r.max_failures {
            let reason = format!("wave {wave}: {failed} machine(s) failed, more than the {} allowed", r.max_failures);
            let audit = system("rollout.halted", r.id.clone()).details(serde_json::json!({"reason": reason}));
            if store.transition_rollout(id, &["running"], "halted", None, Some(&reason), None, Some(audit)).await? {
                ended.push(("rollout.halted", r.id.clone()));
                if r.dry_run == 0 {
                    roll_back(store, key, &r, &in_wave).await?;
                    new_jobs_for.extend(
                        in_wave
                            .iter()
                            .filter(|t| t.state == "succeeded")
                            .filter_map(|t| t.machine_id.parse::<Uuid>().ok()),
                    );
                }
            }
        } else if targets.iter().any(|t| t.wave > wave) {
            let audit = system("rollout.wave_started", r.id.clone()).details(serde_json::json!({"wave": wave + 1}));
            store.transition_rollout(id, &["running"], "running", Some(wave + 1), None, None, Some(audit)).await?;
        } else {
            let ok = in_wave.iter().filter(|t| t.state == "succeeded").count();
            let audit =
                system("rollout.completed", r.id.clone()).details(serde_json::json!({"last_wave_succeeded": ok}));
            if store.transition_rollout(id, &["running"], "completed", None, None, None, Some(audit)).await? {
                ended.push(("rollout.completed", r.id.clone()));
            }
        }
    }
    Ok(Tick { ended, new_jobs_for })
}

/// Wave numbers for `n` machines: `canary` in wave 1, each later wave `growth` times larger.
pub fn waves(n: usize, canary: usize, growth: usize) -> Vec<i64> {
    let mut out = Vec::with_capacity(n);
    let (mut size, mut wave) = (canary.max(1), 1i64);
    while out.len() < n {
        for _ in 0..size.min(n - out.len()) {
            out.push(wave);
        }
        wave += 1;
        size = size.saturating_mul(growth.max(1));
    }
    out
}

/// Runs the engine until `shutdown`, on the replica holding the `rollouts` lease.
pub fn spawn(
    store: Store,
    key: SigningKey,
    every: Duration,
    shutdown: CancellationToken,
    notifier: crate::webhook::Notifier,
    wakeups: crate::job_wakeup::JobWakeups,
) -> tokio::task::JoinHandle<()> {
    let holder = Uuid::new_v4().to_string();
    tokio::spawn(async move {
        loop {
            let lease = i64::try_from(every.as_millis()).unwrap_or(1000).saturating_mul(5);
            match store.try_lease("rollouts", &holder, now_ms() + lease).await {
                Ok(true) => match tick(&store, &key).await {
                    Ok(done) => {
                        for m in done.new_jobs_for {
                            wakeups.wake(m);
                        }
                        for (event, id) in done.ended {
                            let rollout = store.rollout(id.parse().unwrap_or_default()).await.ok().flatten();
                            let subject = serde_json::to_value(&rollout).unwrap_or_default();
                            notifier.send(crate::webhook::Event { event, at: now_ms(), subject });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "rollout engine"),
                },
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot take the rollouts lease"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn waves_grow_from_the_canary() {
        assert_eq!(super::waves(10, 1, 3), vec![1, 2, 2, 2, 3, 3, 3, 3, 3, 3]);
        assert_eq!(super::waves(3, 5, 2), vec![1, 1, 1]);
        assert_eq!(super::waves(0, 1, 2), Vec::<i64>::new());
    }
}
