//! Rollouts: a fix for a set of machines, in waves, with approvals; every change is audited. The
//! engine (`services::rollouts::advance`) moves them on; all state lives here, so a restarted
//! server continues. Rows are converted into `domain::rollout` types at this boundary, and every
//! state change is checked against the domain's transition table.
use uuid::Uuid;

use super::audit::{AuditAppend, NewAuditEntry};
use super::{Store, StoreError, StoreResult, convert, corrupt, now_ms, parse_uuid, with_db};
use crate::domain::ids::{JobId, MachineId, RolloutId, UserId};
use crate::domain::job::JobState;
use crate::domain::rollout::{Rollout, RolloutState, Target, TargetState};

#[derive(sqlx::FromRow)]
struct RolloutRow {
    id: String,
    fix_id: String,
    params: String,
    dry_run: i64,
    source: Option<String>,
    state: String,
    proposed_by: String,
    approved_by: Option<String>,
    canary: i64,
    growth: i64,
    max_failures: i64,
    current_wave: i64,
    halted_reason: Option<String>,
    created_at: i64,
    updated_at: i64,
    proposed_by_id: Option<String>,
    /// JSON array of why it needs approval.
    approval_reasons: String,
}

impl TryFrom<RolloutRow> for Rollout {
    type Error = StoreError;
    fn try_from(r: RolloutRow) -> StoreResult<Rollout> {
        Ok(Rollout {
            id: RolloutId(parse_uuid(&r.id)?),
            state: RolloutState::parse(&r.state).ok_or_else(|| corrupt("rollout state", &r.state))?,
            params: serde_json::from_str(&r.params).map_err(|_| corrupt("rollout params", &r.params))?,
            approval_reasons: serde_json::from_str(&r.approval_reasons)
                .map_err(|_| corrupt("approval reasons", &r.approval_reasons))?,
            proposed_by_id: r.proposed_by_id.as_deref().map(parse_uuid).transpose()?.map(UserId),
            fix_id: r.fix_id,
            dry_run: r.dry_run != 0,
            source: r.source,
            proposed_by: r.proposed_by,
            approved_by: r.approved_by,
            canary: r.canary,
            growth: r.growth,
            max_failures: r.max_failures,
            current_wave: r.current_wave,
            halted_reason: r.halted_reason,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct TargetRow {
    machine_id: String,
    hostname: String,
    fix_id: String,
    wave: i64,
    state: String,
    job_id: Option<String>,
    rollback_job_id: Option<String>,
    message: Option<String>,
    evidence: Option<String>,
}

impl TryFrom<TargetRow> for Target {
    type Error = StoreError;
    fn try_from(t: TargetRow) -> StoreResult<Target> {
        let job = |j: Option<String>| StoreResult::Ok(j.as_deref().map(parse_uuid).transpose()?.map(JobId));
        Ok(Target {
            machine_id: MachineId(parse_uuid(&t.machine_id)?),
            state: TargetState::parse(&t.state).ok_or_else(|| corrupt("target state", &t.state))?,
            job_id: job(t.job_id)?,
            rollback_job_id: job(t.rollback_job_id)?,
            // Evidence is the agent's report: kept even when it is not JSON, as text.
            evidence: t.evidence.map(|e| serde_json::from_str(&e).unwrap_or(serde_json::Value::String(e))),
            hostname: t.hostname,
            fix_id: t.fix_id,
            wave: t.wave,
            message: t.message,
        })
    }
}

/// A move of a rollout's state, with the wave, halt reason and approver it sets (when given).
#[derive(Debug, Clone, Copy)]
pub struct Transition<'a> {
    pub from: &'a [RolloutState],
    pub to: RolloutState,
    pub wave: Option<i64>,
    pub reason: Option<&'a str>,
    pub approved_by: Option<&'a str>,
}

/// A target's fix for its platform, and its wave.
#[derive(Debug, Clone)]
pub struct NewTarget {
    pub machine_id: MachineId,
    pub fix_id: &'static str,
    pub wave: i64,
}

#[derive(Debug, Clone)]
pub struct NewRollout<'a> {
    pub fix_id: &'a str,
    pub params: &'a serde_json::Value,
    pub dry_run: bool,
    pub source: Option<&'a str>,
    /// Why a second person must approve; empty: ready at once.
    pub approval_reasons: Vec<String>,
    pub proposed_by: &'a str,
    pub proposed_by_id: Option<Uuid>,
    pub canary: i64,
    pub growth: i64,
    pub max_failures: i64,
    pub targets: Vec<NewTarget>,
}

/// A signed job to create for a target, with the target's new state.
#[derive(Debug, Clone)]
pub struct TargetJob<'a> {
    pub job_id: JobId,
    pub machine_id: MachineId,
    pub fix_id: &'a str,
    pub action: &'static str,
    pub params: &'a serde_json::Value,
    pub nonce: &'a str,
    pub signature: &'a str,
    pub expires_at: i64,
    /// The target's move: pending → running for an apply or dry run, succeeded → rolling_back
    /// for a rollback.
    pub from: TargetState,
    pub to: TargetState,
}

const ROLLOUT_COLUMNS: &str = "id, fix_id, params, dry_run, source, state, proposed_by, approved_by, canary, growth, \
     max_failures, current_wave, halted_reason, created_at, updated_at, proposed_by_id, approval_reasons";

impl Store {
    pub async fn create_rollout(&self, r: NewRollout<'_>, audit: NewAuditEntry) -> StoreResult<RolloutId> {
        let id = RolloutId::new();
        let now = now_ms();
        let state =
            if r.approval_reasons.is_empty() { RolloutState::Ready } else { RolloutState::AwaitingApproval }.as_str();
        let reasons = serde_json::to_string(&r.approval_reasons).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        with_db!(self, p => {
            let mut tx = p.begin_with(self.begin_write()).await?;
            sqlx::query(&format!(
                "INSERT INTO rollouts ({ROLLOUT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $9, $10, 0, NULL, $11, $11, $12, $13)"
            ))
            .bind(id.to_string())
            .bind(r.fix_id)
            .bind(r.params.to_string())
            .bind(i64::from(r.dry_run))
            .bind(r.source)
            .bind(state)
            .bind(r.proposed_by)
            .bind(r.canary)
            .bind(r.growth)
            .bind(r.max_failures)
            .bind(now)
            .bind(r.proposed_by_id.map(|u| u.to_string()))
            .bind(&reasons)
            .execute(&mut *tx)
            .await?;
            for t in &r.targets {
                sqlx::query(
                    "INSERT INTO rollout_targets (rollout_id, machine_id, fix_id, wave, state) VALUES ($1, $2, $3, $4, 'pending')",
                )
                .bind(id.to_string())
                .bind(t.machine_id.to_string())
                .bind(t.fix_id)
                .bind(t.wave)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_write)?;
            }
            tx.append_audit(&self.audit_key, &audit.details(serde_json::json!({
                "rollout": id.to_string(), "fix": r.fix_id, "params": r.params, "dry_run": r.dry_run,
                "machines": r.targets.len(), "canary": r.canary, "growth": r.growth, "max_failures": r.max_failures,
                "approval_reasons": r.approval_reasons,
            })))
            .await?;
            tx.commit().await?;
        });
        Ok(id)
    }

    pub async fn rollout(&self, id: RolloutId) -> StoreResult<Option<Rollout>> {
        let row = with_db!(self, p => {
            sqlx::query_as::<_, RolloutRow>(&format!("SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE id = $1"))
                .bind(id.to_string())
                .fetch_optional(p)
                .await?
        });
        row.map(Rollout::try_from).transpose()
    }

    pub async fn rollouts(&self, limit: i64) -> StoreResult<Vec<Rollout>> {
        let rows = with_db!(self, p => {
            sqlx::query_as::<_, RolloutRow>(&format!("SELECT {ROLLOUT_COLUMNS} FROM rollouts ORDER BY created_at DESC LIMIT $1"))
                .bind(limit)
                .fetch_all(p)
                .await?
        });
        convert(rows)
    }

    pub async fn rollout_targets(&self, id: RolloutId) -> StoreResult<Vec<Target>> {
        let rows = with_db!(self, p => {
            sqlx::query_as::<_, TargetRow>(
                "SELECT t.machine_id, m.hostname, t.fix_id, t.wave, t.state, t.job_id, t.rollback_job_id, t.message, j.evidence \
                 FROM rollout_targets t JOIN machines m ON m.id = t.machine_id LEFT JOIN jobs j ON j.id = t.job_id \
                 WHERE t.rollout_id = $1 ORDER BY t.wave, m.hostname",
            )
            .bind(id.to_string())
            .fetch_all(p)
            .await?
        });
        convert(rows)
    }

    /// Moves a rollout from one of `t.from` to `t.to`, with its audit entry; false when it was
    /// not in one of `t.from` (someone else acted first). A move outside the domain's
    /// transition table is refused before the database is asked.
    pub async fn transition_rollout(
        &self,
        id: RolloutId,
        t: Transition<'_>,
        audit: Option<NewAuditEntry>,
    ) -> StoreResult<bool> {
        if t.from.is_empty() || t.from.iter().any(|f| !f.can_move_to(t.to)) {
            return Err(StoreError::Corrupt(format!("no rollout transition {:?} -> {}", t.from, t.to)));
        }
        let (to, wave, reason, approved_by) = (t.to.as_str(), t.wave, t.reason, t.approved_by);
        let allowed = t.from.iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "UPDATE rollouts SET state = $1, current_wave = COALESCE($2, current_wave), halted_reason = COALESCE($3, halted_reason), \
             approved_by = COALESCE($4, approved_by), updated_at = $5 WHERE id = $6 AND state IN ({allowed})"
        );
        let done = with_db!(self, p => {
            let mut tx = p.begin_with(self.begin_write()).await?;
            let n = sqlx::query(&sql)
                .bind(to)
                .bind(wave)
                .bind(reason)
                .bind(approved_by)
                .bind(now_ms())
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 1 {
                if let Some(a) = &audit {
                    tx.append_audit(&self.audit_key, a).await?;
                }
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
            n == 1
        });
        Ok(done)
    }

    /// Creates a signed job for a target and moves the target, in one transaction: a crash in
    /// between leaves neither, so no target gets two jobs and none is forgotten.
    pub async fn start_target_job(
        &self,
        rollout: RolloutId,
        j: TargetJob<'_>,
        audit: NewAuditEntry,
    ) -> StoreResult<bool> {
        if !j.from.can_move_to(j.to) || !j.to.is_in_flight() {
            return Err(StoreError::Corrupt(format!("no target transition {} -> {}", j.from, j.to)));
        }
        let now = now_ms();
        let column = if j.to == TargetState::RollingBack { "rollback_job_id" } else { "job_id" };
        let from = j.from.as_str();
        let done = with_db!(self, p => {
            let mut tx = p.begin_with(self.begin_write()).await?;
            let n = sqlx::query(&format!(
                "UPDATE rollout_targets SET state = $1, {column} = $2 WHERE rollout_id = $3 AND machine_id = $4 AND state = '{from}'"
            ))
            .bind(j.to.as_str())
            .bind(j.job_id.to_string())
            .bind(rollout.to_string())
            .bind(j.machine_id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 1 {
                sqlx::query(
                    "INSERT INTO jobs (id, machine_id, fix_id, action, params, nonce, signature, state, created_at, expires_at, rollout_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8, $9, $10)",
                )
                .bind(j.job_id.to_string())
                .bind(j.machine_id.to_string())
                .bind(j.fix_id)
                .bind(j.action)
                .bind(j.params.to_string())
                .bind(j.nonce)
                .bind(j.signature)
                .bind(now)
                .bind(j.expires_at)
                .bind(rollout.to_string())
                .execute(&mut *tx)
                .await?;
                tx.append_audit(&self.audit_key, &audit).await?;
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
            n == 1
        });
        if done {
            self.notify_job(j.machine_id.0).await?;
        }
        Ok(done)
    }

    /// Brings targets in line with their jobs' answers; returns how many changed.
    pub async fn sync_rollout_targets(&self, rollout: RolloutId) -> StoreResult<u64> {
        let id = rollout.to_string();
        // (target state waiting for the job, the job's column, the state when it succeeded);
        // any other final state of the job fails the target.
        let steps = [
            (TargetState::Running, "job_id", TargetState::Succeeded),
            (TargetState::RollingBack, "rollback_job_id", TargetState::RolledBack),
        ];
        debug_assert!(steps.iter().all(|(w, _, done)| w.can_move_to(*done) && w.can_move_to(TargetState::Failed)));
        let sql: Vec<String> = steps
            .iter()
            .map(|(waiting, column, done)| {
                format!(
                    "UPDATE rollout_targets SET \
                     state = CASE (SELECT j.state FROM jobs j WHERE j.id = rollout_targets.{column}) WHEN '{ok}' THEN '{done}' ELSE '{failed}' END, \
                     message = (SELECT COALESCE(j.outcome_message, j.state) FROM jobs j WHERE j.id = rollout_targets.{column}) \
                     WHERE rollout_id = $1 AND state = '{waiting}' AND EXISTS (SELECT 1 FROM jobs j WHERE j.id = rollout_targets.{column} \
                     AND j.state IN ({final_states}))",
                    final_states = JobState::sql_final(),
                    ok = JobState::Succeeded,
                    failed = TargetState::Failed,
                )
            })
            .collect();
        // A job past its signed expiry is never answered (an agent refuses it; an updated agent
        // that never came back cannot): it ends as expired, which fails its target.
        let expire = format!(
            "UPDATE jobs SET state = '{}', finished_at = $2 WHERE rollout_id = $1 AND state IN ({}) AND expires_at <= $2",
            JobState::Expired,
            JobState::sql_from(JobState::Expired)
        );
        let n = with_db!(self, p => {
            let mut tx = p.begin_with(self.begin_write()).await?;
            sqlx::query(&expire).bind(&id).bind(now_ms()).execute(&mut *tx).await?;
            let mut n = 0;
            for q in &sql {
                n += sqlx::query(q).bind(&id).execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
            n
        });
        Ok(n)
    }

    /// Cancels the rollout's queued (not yet delivered) jobs and pending targets (abort).
    pub async fn cancel_rollout_work(&self, rollout: RolloutId) -> StoreResult<u64> {
        let id = rollout.to_string();
        let cancel_jobs = format!(
            "UPDATE jobs SET state = '{}', finished_at = $1 WHERE rollout_id = $2 AND state IN ({})",
            JobState::Cancelled,
            JobState::sql_from(JobState::Cancelled)
        );
        let n = with_db!(self, p => {
            let mut tx = p.begin_with(self.begin_write()).await?;
            let n = sqlx::query(&cancel_jobs)
                .bind(now_ms())
                .bind(&id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("UPDATE rollout_targets SET state = 'cancelled' WHERE rollout_id = $1 AND state = 'pending'")
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            n
        });
        Ok(n)
    }

    /// Rollouts the engine advances (running, and halted ones still rolling back).
    pub async fn active_rollouts(&self) -> StoreResult<Vec<Rollout>> {
        let rows = with_db!(self, p => {
            sqlx::query_as::<_, RolloutRow>(&format!(
                "SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE state = 'running' OR (state IN ('halted', 'aborted', 'completed') AND EXISTS \
                 (SELECT 1 FROM rollout_targets t WHERE t.rollout_id = rollouts.id AND t.state IN ('running', 'rolling_back')))"
            ))
            .fetch_all(p)
            .await?
        });
        convert(rows)
    }

    /// Another running or paused rollout of the same fix on a machine of `id`: (its id, the
    /// machine's name). A dry run and a real run on one machine at once would race.
    pub async fn overlapping_rollout(&self, id: RolloutId) -> StoreResult<Option<(String, String)>> {
        let row = with_db!(self, p => {
            sqlx::query_as::<_, (String, String)>(
                "SELECT o.rollout_id, m.hostname FROM rollout_targets t \
                 JOIN rollout_targets o ON o.machine_id = t.machine_id AND o.fix_id = t.fix_id AND o.rollout_id <> t.rollout_id \
                 JOIN rollouts r ON r.id = o.rollout_id JOIN machines m ON m.id = t.machine_id \
                 WHERE t.rollout_id = $1 AND r.state IN ('running', 'paused') LIMIT 1",
            )
            .bind(id.to_string())
            .fetch_optional(p)
            .await?
        });
        Ok(row)
    }
}
