//! Check results: the latest state per (machine, check, target) and its history as transitions.
use rdpfleet_proto::check::{CheckResult, CheckStatus};
use uuid::Uuid;

use super::{Store, StoreError, StoreResult, ms_of, now_ms, with_db};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportOutcome {
    pub duplicate: bool,
    pub stored: u64,
    pub transitions: u64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LatestResultRow {
    pub check_id: String,
    pub target: String,
    pub status: String,
    pub summary: String,
    pub cause: Option<String>,
    pub evidence: String,
    pub observed_at: i64,
    pub duration_ms: i64,
    pub status_since: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TransitionRow {
    pub id: i64,
    pub check_id: String,
    pub target: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub cause: Option<String>,
    pub summary: String,
    pub at: i64,
}

impl Store {
    /// Stores one report atomically. The machine's sequence high-water mark is advanced by the
    /// same transaction, so a report is stored exactly once however often it is retried.
    pub async fn store_report(
        &self,
        machine_id: Uuid,
        seq: u64,
        agent_version: Option<&str>,
        results: &[CheckResult],
    ) -> StoreResult<ReportOutcome> {
        let seq = i64::try_from(seq).map_err(|_| StoreError::Corrupt("sequence out of range".into()))?;
        let now = now_ms();
        let machine = machine_id.to_string();
        let outcome = with_db!(self, p => {
            let mut tx = p.begin().await?;
            let advanced = sqlx::query(
                "UPDATE machines SET last_report_seq = $1, last_seen_at = $2, agent_version = COALESCE($3, agent_version) \
                 WHERE id = $4 AND last_report_seq < $1",
            )
            .bind(seq)
            .bind(now)
            .bind(agent_version)
            .bind(&machine)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if advanced == 0 {
                tx.rollback().await?;
                return Ok(ReportOutcome { duplicate: true, stored: 0, transitions: 0 });
            }
            let mut transitions = 0u64;
            for r in results {
                let target = r.target.as_deref().unwrap_or("");
                let status = r.status.as_str();
                let evidence = r.evidence.to_string();
                let observed = ms_of(r.observed_at);
                let duration = i64::try_from(r.duration_ms).unwrap_or(i64::MAX);
                let previous: Option<(String, i64, Option<String>)> = sqlx::query_as(
                    "SELECT status, status_since, cause FROM check_results WHERE machine_id = $1 AND check_id = $2 AND target = $3",
                )
                .bind(&machine)
                .bind(&r.check)
                .bind(target)
                .fetch_optional(&mut *tx)
                .await?;
                // History records changes of status, and of cause within a status (a path that
                // keeps failing, but now for another reason, is news).
                let status_changed = previous.as_ref().is_none_or(|(s, _, _)| s != status);
                let changed = status_changed || previous.as_ref().is_some_and(|(_, _, c)| c.as_deref() != r.cause.as_deref());
                let since = match &previous {
                    Some((_, since, _)) if !status_changed => *since,
                    _ => observed,
                };
                sqlx::query(
                    "INSERT INTO check_results (machine_id, check_id, target, status, summary, cause, evidence, observed_at, duration_ms, status_since) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (machine_id, check_id, target) DO UPDATE SET status = excluded.status, \
                     summary = excluded.summary, cause = excluded.cause, evidence = excluded.evidence, \
                     observed_at = excluded.observed_at, duration_ms = excluded.duration_ms, status_since = excluded.status_since",
                )
                .bind(&machine)
                .bind(&r.check)
                .bind(target)
                .bind(status)
                .bind(&r.summary)
                .bind(r.cause.as_deref())
                .bind(&evidence)
                .bind(observed)
                .bind(duration)
                .bind(since)
                .execute(&mut *tx)
                .await?;
                if changed {
                    transitions += 1;
                    sqlx::query(
                        "INSERT INTO check_transitions (machine_id, check_id, target, from_status, to_status, cause, summary, evidence, at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(&machine)
                    .bind(&r.check)
                    .bind(target)
                    .bind(previous.as_ref().map(|(s, _, _)| s.as_str()))
                    .bind(status)
                    .bind(r.cause.as_deref())
                    .bind(&r.summary)
                    .bind(&evidence)
                    .bind(observed)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
            ReportOutcome { duplicate: false, stored: results.len() as u64, transitions }
        });
        Ok(outcome)
    }

    pub async fn latest_results(&self, machine_id: Uuid) -> StoreResult<Vec<LatestResultRow>> {
        let rows = with_db!(self, p => {
            sqlx::query_as::<_, LatestResultRow>(
                "SELECT check_id, target, status, summary, cause, evidence, observed_at, duration_ms, status_since \
                 FROM check_results WHERE machine_id = $1 ORDER BY check_id, target",
            )
            .bind(machine_id.to_string())
            .fetch_all(p)
            .await?
        });
        Ok(rows)
    }

    /// Newest transitions first.
    pub async fn transitions(&self, machine_id: Uuid, limit: i64) -> StoreResult<Vec<TransitionRow>> {
        let rows = with_db!(self, p => {
            sqlx::query_as::<_, TransitionRow>(
                "SELECT id, check_id, target, from_status, to_status, cause, summary, at \
                 FROM check_transitions WHERE machine_id = $1 ORDER BY at DESC, id DESC LIMIT $2",
            )
            .bind(machine_id.to_string())
            .bind(limit)
            .fetch_all(p)
            .await?
        });
        Ok(rows)
    }

    /// Count of stored result rows, for tests and metrics.
    pub async fn count_transitions(&self) -> StoreResult<i64> {
        let n = with_db!(self, p => {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM check_transitions").fetch_one(p).await?
        });
        Ok(n)
    }
}

/// Parses a stored status; `Corrupt` for anything the schema's CHECK should have refused.
pub fn parse_status(s: &str) -> StoreResult<CheckStatus> {
    CheckStatus::parse(s).ok_or_else(|| StoreError::Corrupt(format!("status {s:?}")))
}
