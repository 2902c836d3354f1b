//! Rollouts: a fix for a set of machines, in waves, with approvals; every change is audited. The
//! engine (`crate::rollout`) advances them; all state lives here, so a restarted server continues.
use uuid::Uuid;

use super::audit::{AuditAppend, NewAuditEntry};
use super::{Store, StoreError, StoreResult, now_ms, with_db};

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct RolloutRow {
    pub id: String,
    pub fix_id: String,
    pub params: String,
    pub dry_run: i64,
    pub source: Option<String>,
    pub state: String,
    pub proposed_by: String,
    pub approved_by: Option<String>,
    pub canary: i64,
    pub growth: i64,
    pub max_failures: i64,
    pub current_wave: i64,
    pub halted_reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The proposer's user id (absent on rollouts from before it was kept).
    #[serde(skip)]
    pub proposed_by_id: Option<String>,
    /// JSON array of why it needs approval.
    #[serde(skip)]
    pub approval_reasons: String,
}

impl RolloutRow {
    /// Why this rollout needs a second person's approval (empty: it does not).
    pub fn approval_reasons(&self) -> Vec<String> {
        serde_json::from_str(&self.approval_reasons).unwrap_or_default()
    }
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct TargetRow {
    pub machine_id: String,
    pub hostname: String,
    pub fix_id: String,
    pub wave: i64,
    pub state: String,
    pub job_id: Option<String>,
    pub rollback_job_id: Option<String>,
    pub message: Option<String>,
    /// The agent's report of the (apply or dry-run) job: what was, or would be, changed.
    pub evidence: Option<String>,
}

/// A target's fix for its platform, and its wave.
#[derive(Debug, Clone)]
pub struct NewTarget {
    pub machine_id: Uuid,
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
    pub job_id: Uuid,
    pub machine_id: Uuid,
    pub fix_id: &'a str,
    pub action: &'static str,
    pub params: &'a serde_json::Value,
    pub nonce: &'a str,
    pub signature: &'a str,
    pub expires_at: i64,
    /// `running` for an apply or dry run, `rolling_back` for a rollback.
    pub target_state: &'static str,
}

const ROLLOUT_COLUMNS: &str = "id, fix_id, params, dry_run, source, state, proposed_by, approved_by, canary, growth, \
     max_failures, current_wave, halted_reason, created_at, updated_at, proposed_by_id, approval_reasons";

impl Store {
    pub async fn create_rollout(&self, r: NewRollout<'_>, audit: NewAuditEntry) -> StoreResult<Uuid> {
        let id = Uuid::new_v4();
        let now = now_ms();
        let state = if r.approval_reasons.is_empty() { "ready" } else { "awaiting_approval" };
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

    pub async fn rollout(&self, id: Uuid) -> StoreResult<Option<RolloutRow>> {
        let row = with_db!(self, p => {
            sqlx::query_as::<_, RolloutRow>(&format!("SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE id = $1"))
                .bind(id.to_string())
                .fetch_optional(p)
                .await?
        });
        Ok(row)
    }

    pub async fn rollouts(&self, limit: i64) -> StoreResult<Vec<RolloutRow>> {
        let rows = with_db!(self, p => {
            sqlx::query_as::<_, RolloutRow>(&format!("SELECT {ROLLOUT_COLUMNS} FROM rollouts ORDER BY created_at DESC LIMIT $1"))
                .bind(limit)
                .fetch_all(p)
                .await?
        });
        Ok(rows)
    }

    pub async fn rollout_targets(&self, id: Uuid) -> StoreResult<Vec<TargetRow>> {
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
        Ok(rows)
    }

    /// Moves a rollout from one of `from` to `to` (and the wave, reason, approver when given),
    /// with its audit entry; false when it was not in one of `from` (someone else acted first).
    #[allow(clippy::too_many_arguments)]
    pub async fn transition_rollout(
        &self,
        id: Uuid,
        from: &[&str],
        to: &str,
        wave: Option<i64>,
        reason: Option<&str>,
        approved_by: Option<&str>,
        audit: Option<NewAuditEntry>,
    ) -> StoreResult<bool> {
        let allowed = from.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ");
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
    pub async fn start_target_job(&self, rollout: Uuid, j: TargetJob<'_>, audit: NewAuditEntry) -> StoreResult<bool> {
        let now = now_ms();
        let (column, from) =
            if j.target_state == "rolling_back" { ("rollback_job_id", "succeeded") } else { ("job_id", "pending") };
        let done = with_db!(self, p => {
            let mut tx = p.begin_with(self.begin_write()).await?;
            let n = sqlx::query(&format!(
                "UPDATE rollout_targets SET state = $1, {column} = $2 WHERE rollout_id = $3 AND machine_id = $4 AND state = '{from}'"
            ))
            .bind(j.target_state)
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
            self.notify_job(j.machine_id).await?;
        }
        Ok(done)
    }

    /// Brings targets in line with their jobs' answers; returns how many changed.
    pub async fn sync_rollout_targets(&self, rollout: Uuid) -> StoreResult<u64> {
        let id = rollout.to_string();
        // (target state waiting for the job, the job's column, the state when it succeeded)
        let steps = [("running", "job_id", "succeeded"), ("rolling_back", "rollback_job_id", "rolled_back")];
        let sql: Vec<String> = steps
            .iter()
            .map(|(waiting, column, done)| {
                format!(
                    "UPDATE rollout_targets SET \
                     state = CASE (SELECT j.state FROM jobs j WHERE j.id = rollout_targets.{column}) WHEN 'succeeded' THEN '{done}' ELSE 'failed' END, \
                     message = (SELECT COALESCE(j.outcome_message, j.state) FROM jobs j WHERE j.id = rollout_targets.{column}) \
                     WHERE rollout_id = $1 AND state = '{waiting}' AND EXISTS (SELECT 1 FROM jobs j WHERE j.id = rollout_targets.{column} \
                     AND j.state IN ('succeeded', 'rolled_back', 'failed', 'refused', 'expired', 'cancelled'))"
                )
            })
            .collect();
        let n = with_db!(self, p => {
            let mut tx = p.begin_with(self.begin_write()).await?;
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
    pub async fn cancel_rollout_work(&self, rollout: Uuid) -> StoreResult<u64> {
        let id = rollout.to_string();
        let n = with_db!(self, p => {
            let mut tx = p.begin_with(self.begin_write()).await?;
            let n = sqlx::query("UPDATE jobs SET state = 'cancelled', finished_at = $1 WHERE rollout_id = $2 AND state = 'queued'")
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
    pub async fn active_rollouts(&self) -> StoreResult<Vec<RolloutRow>> {
        let rows = with_db!(self, p => {
            sqlx::query_as::<_, RolloutRow>(&format!(
                "SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE state = 'running' OR (state IN ('halted', 'aborted', 'completed') AND EXISTS \
                 (SELECT 1 FROM rollout_targets t WHERE t.rollout_id = rollouts.id AND t.state IN ('running', 'rolling_back')))"
            ))
            .fetch_all(p)
            .await?
        });
        Ok(rows)
    }
}
