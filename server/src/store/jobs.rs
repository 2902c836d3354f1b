//! Jobs queued for agents: at-least-once delivery with leases.
use std::sync::LazyLock;

use rdpfleet_proto::job::{Job, JobAction, JobOutcome};
use uuid::Uuid;

use super::audit::{ActorKind, AuditAppend, NewAuditEntry};
use super::{Store, StoreError, StoreResult, convert, corrupt, now_ms, parse_uuid, with_db};
use crate::domain::job::{JobState, StoredJob};

#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    pub machine_id: Uuid,
    pub fix_id: &'a str,
    pub action: JobAction,
    pub params: &'a serde_json::Value,
    pub nonce: &'a str,
    pub signature: Option<&'a str>,
    pub expires_at: i64,
    pub rollout_id: Option<Uuid>,
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: String,
    machine_id: String,
    fix_id: String,
    action: String,
    params: String,
    nonce: String,
    signature: Option<String>,
    state: String,
    expires_at: i64,
    attempts: i64,
}

impl TryFrom<JobRow> for StoredJob {
    type Error = StoreError;
    fn try_from(r: JobRow) -> StoreResult<StoredJob> {
        Ok(StoredJob {
            job: Job {
                id: parse_uuid(&r.id)?,
                machine_id: parse_uuid(&r.machine_id)?,
                action: JobAction::parse(&r.action).ok_or_else(|| corrupt("job action", &r.action))?,
                params: serde_json::from_str(&r.params).map_err(|_| corrupt("job params", &r.params))?,
                expires_at: super::time_of(r.expires_at),
                fix: r.fix_id,
                nonce: r.nonce,
                signature: r.signature,
            },
            state: JobState::parse(&r.state).ok_or_else(|| corrupt("job state", &r.state))?,
            attempts: r.attempts,
        })
    }
}

/// What happened when an agent reported a job's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishJob {
    Recorded,
    /// The same outcome was already recorded (a retried answer).
    AlreadyRecorded,
    /// The job already ended differently; nothing changed.
    Conflict,
    NotFound,
}

const JOB_COLUMNS: &str = "id, machine_id, fix_id, action, params, nonce, signature, state, expires_at, attempts";

/// Marks a machine's open jobs past their signed expiry as expired.
static EXPIRE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE jobs SET state = '{}', finished_at = $1 WHERE machine_id = $2 AND state IN ({}) AND expires_at <= $1",
        JobState::Expired,
        JobState::sql_from(JobState::Expired)
    )
});

impl Store {
    pub async fn enqueue_job(&self, j: NewJob<'_>) -> StoreResult<Uuid> {
        let id = Uuid::new_v4();
        with_db!(self, p => {
            sqlx::query(
                "INSERT INTO jobs (id, machine_id, fix_id, action, params, nonce, signature, state, created_at, expires_at, rollout_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8, $9, $10)",
            )
            .bind(id.to_string())
            .bind(j.machine_id.to_string())
            .bind(j.fix_id)
            .bind(j.action.as_str())
            .bind(j.params.to_string())
            .bind(j.nonce)
            .bind(j.signature)
            .bind(now_ms())
            .bind(j.expires_at)
            .bind(j.rollout_id.map(|r| r.to_string()))
            .execute(p)
            .await
            .map_err(StoreError::from_write)?;
        });
        Ok(id)
    }

    /// Leases the machine's deliverable jobs: queued ones, and leased ones whose lease ran out
    /// (the agent died or never answered). Expired jobs are marked expired, not delivered.
    pub async fn lease_jobs(&self, machine_id: Uuid, lease_ms: i64, limit: i64) -> StoreResult<Vec<StoredJob>> {
        let now = now_ms();
        let machine = machine_id.to_string();
        // On PostgreSQL, replicas serving the same machine skip rows another one is leasing.
        let skip_locked = if self.backend() == super::Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
        let sql = format!(
            "UPDATE jobs SET state = '{leased}', lease_expires_at = $1, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM jobs WHERE machine_id = $2 AND expires_at > $3 \
                          AND (state = '{queued}' OR (state = '{leased}' AND lease_expires_at <= $3)) \
                          ORDER BY created_at LIMIT $4{skip_locked}) \
             RETURNING {JOB_COLUMNS}",
            leased = JobState::Leased,
            queued = JobState::Queued,
        );
        let rows = with_db!(self, p => {
            // Most polls find nothing: answer those with one indexed read, no write transaction.
            let work: Option<String> = sqlx::query_scalar(
                "SELECT id FROM jobs WHERE machine_id = $1 AND (state = 'queued' OR (state = 'leased' \
                 AND (lease_expires_at <= $2 OR expires_at <= $2))) LIMIT 1",
            )
            .bind(&machine)
            .bind(now)
            .fetch_optional(p)
            .await?;
            if work.is_none() {
                return Ok(vec![]);
            }
            let mut tx = p.begin_with(self.begin_write()).await?;
            sqlx::query(&EXPIRE_SQL)
            .bind(now)
            .bind(&machine)
            .execute(&mut *tx)
            .await?;
            let rows = sqlx::query_as::<_, JobRow>(&sql)
                .bind(now + lease_ms)
                .bind(&machine)
                .bind(now)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            rows
        });
        convert(rows)
    }

    /// Machines with a job a poll would act on now: queued, or leased with its lease or life
    /// run out (see [`Store::lease_jobs`]).
    pub async fn machines_with_deliverable_jobs(&self) -> StoreResult<Vec<Uuid>> {
        let now = now_ms();
        let ids: Vec<String> = with_db!(self, p => {
            sqlx::query_scalar(
                "SELECT DISTINCT machine_id FROM jobs WHERE state IN ('queued', 'leased') \
                 AND (state = 'queued' OR lease_expires_at <= $1 OR expires_at <= $1)",
            )
            .bind(now)
            .fetch_all(p)
            .await?
        });
        ids.iter().map(|id| parse_uuid(id)).collect()
    }

    /// Records an agent's answer for one of its own jobs, with the evidence, in the audit log.
    pub async fn finish_job(
        &self,
        machine_id: Uuid,
        job_id: Uuid,
        outcome: JobOutcome,
        message: &str,
        evidence: &serde_json::Value,
    ) -> StoreResult<FinishJob> {
        let now = now_ms();
        let answer = JobState::of_outcome(outcome);
        let result = with_db!(self, p => {
            let mut tx = p.begin_with(self.begin_write()).await?;
            let n = sqlx::query(&format!(
                "UPDATE jobs SET state = $1, outcome_message = $2, evidence = $3, finished_at = $4 \
                 WHERE id = $5 AND machine_id = $6 AND state IN ({})",
                JobState::sql_from(answer)
            ))
            .bind(answer.as_str())
            .bind(message)
            .bind(evidence.to_string())
            .bind(now)
            .bind(job_id.to_string())
            .bind(machine_id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 1 {
                let audit = NewAuditEntry::new(ActorKind::Agent, machine_id.to_string(), "job.finished", job_id.to_string())
                    .details(serde_json::json!({"outcome": outcome.as_str(), "message": message, "evidence": evidence}));
                tx.append_audit(&self.audit_key, &audit).await?;
                tx.commit().await?;
                FinishJob::Recorded
            } else {
                let state: Option<String> = sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1 AND machine_id = $2")
                    .bind(job_id.to_string())
                    .bind(machine_id.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
                tx.rollback().await?;
                match state {
                    None => FinishJob::NotFound,
                    Some(s) if JobState::parse(&s) == Some(answer) => FinishJob::AlreadyRecorded,
                    Some(_) => FinishJob::Conflict,
                }
            }
        });
        Ok(result)
    }

    pub async fn job(&self, job_id: Uuid) -> StoreResult<Option<StoredJob>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
        let row = with_db!(self, p => {
            sqlx::query_as::<_, JobRow>(&sql).bind(job_id.to_string()).fetch_optional(p).await?
        });
        row.map(StoredJob::try_from).transpose()
    }
}
