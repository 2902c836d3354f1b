//! Check results: the latest state per (machine, check, target) and its history as transitions.
use rdpfleet_proto::check::{CheckResult, CheckStatus};
use uuid::Uuid;

use super::{Store, StoreError, StoreResult, ms_of, now_ms, values_placeholders, with_db};

/// The check whose results are connection paths.
pub const PATH_CHECK: &str = "rdp.path";

/// What a path result says about the path, read from its `Diagnosis` evidence.
struct PathFacts {
    host: String,
    gateway: Option<String>,
    layer: Option<String>,
}

impl PathFacts {
    fn of(r: &CheckResult) -> PathFacts {
        let e = &r.evidence;
        let text = |k: &str| e.get(k).and_then(serde_json::Value::as_str).map(str::to_owned);
        let target = r.target.as_deref().unwrap_or("");
        let host = text("host").unwrap_or_else(|| host_of(target)).to_lowercase();
        let gateway = text("gateway").map(|g| host_of(&g).to_lowercase());
        PathFacts { host, gateway, layer: text("first_failing_layer") }
    }
}

/// The host part of `host`, `host:port` or `[v6]:port`.
pub fn host_of(target: &str) -> String {
    if let Some(rest) = target.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest).to_owned();
    }
    match target.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.parse::<u16>().is_ok() => h.to_owned(),
        _ => target.to_owned(),
    }
}

/// A latest-result row about to be written.
struct ResultRow {
    check: String,
    target: String,
    status: &'static str,
    summary: String,
    cause: Option<String>,
    evidence: String,
    observed: i64,
    duration: i64,
    since: i64,
}

/// A history row about to be written.
struct TransitionRowIn {
    check: String,
    target: String,
    from: Option<String>,
    to: &'static str,
    cause: Option<String>,
    summary: String,
    evidence: String,
    at: i64,
}

/// One report of a batch.
#[derive(Debug, Clone, Copy)]
pub struct ReportIn<'a> {
    pub machine_id: Uuid,
    pub seq: u64,
    pub agent_version: Option<&'a str>,
    /// The agent's life-time count of reports it dropped.
    pub dropped_reports: u64,
    pub results: &'a [CheckResult],
}

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
        let mut out =
            self.store_reports(&[ReportIn { machine_id, seq, agent_version, dropped_reports: 0, results }]).await?;
        out.pop().ok_or_else(|| StoreError::Corrupt("no outcome".into()))
    }

    /// Stores several reports in one transaction (group commit), each exactly once: a report at
    /// or below its machine's high-water mark is a duplicate and writes nothing.
    pub async fn store_reports(&self, batch: &[ReportIn<'_>]) -> StoreResult<Vec<ReportOutcome>> {
        let now = now_ms();
        let seqs = batch
            .iter()
            .map(|r| i64::try_from(r.seq).map_err(|_| StoreError::Corrupt("sequence out of range".into())))
            .collect::<StoreResult<Vec<i64>>>()?;
        let backend = self.backend();
        let outcomes = with_db!(self, p => {
            let mut tx = p.begin().await?;
            let mut outcomes = Vec::with_capacity(batch.len());
            for (rep, &seq) in batch.iter().zip(&seqs) {
            let (machine, agent_version, results) = (rep.machine_id.to_string(), rep.agent_version, rep.results);
            let advanced = sqlx::query(
                "UPDATE machines SET last_report_seq = $1, last_seen_at = $2, agent_version = COALESCE($3, agent_version), \
                 reports_received = reports_received + 1, \
                 reports_dropped = CASE WHEN reports_dropped < $5 THEN $5 ELSE reports_dropped END \
                 WHERE id = $4 AND last_report_seq < $1",
            )
            .bind(seq)
            .bind(now)
            .bind(agent_version)
            .bind(&machine)
            .bind(i64::try_from(rep.dropped_reports).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if advanced == 0 {
                outcomes.push(ReportOutcome { duplicate: true, stored: 0, transitions: 0 });
                continue;
            }
            // Set-based: one read of the machine's current results, then multi-row writes —
            // a round trip per statement matters on PostgreSQL.
            let current: Vec<(String, String, String, i64, Option<String>)> = sqlx::query_as(
                "SELECT check_id, target, status, status_since, cause FROM check_results WHERE machine_id = $1",
            )
            .bind(&machine)
            .fetch_all(&mut *tx)
            .await?;
            let mut known: std::collections::HashMap<(String, String), (String, i64, Option<String>)> =
                current.into_iter().map(|(c, t, s, since, cause)| ((c, t), (s, since, cause))).collect();
            // (row for check_results, transition if any), in report order; a later result for
            // the same check and target replaces an earlier one, as sequential writes would.
            let mut rows: Vec<ResultRow> = Vec::with_capacity(results.len());
            let mut moves: Vec<TransitionRowIn> = Vec::new();
            for r in results {
                let target = r.target.clone().unwrap_or_default();
                let status = r.status.as_str();
                let evidence = r.evidence.to_string();
                let observed = ms_of(r.observed_at);
                let key = (r.check.clone(), target.clone());
                let previous = known.get(&key).cloned();
                // History records changes of status, and of cause within a status (a path that
                // keeps failing, but now for another reason, is news).
                let status_changed = previous.as_ref().is_none_or(|(s, _, _)| s != status);
                let changed = status_changed || previous.as_ref().is_some_and(|(_, _, c)| c.as_deref() != r.cause.as_deref());
                let since = match &previous {
                    Some((_, since, _)) if !status_changed => *since,
                    _ => observed,
                };
                if changed {
                    moves.push(TransitionRowIn {
                        check: r.check.clone(),
                        target: target.clone(),
                        from: previous.as_ref().map(|(s, _, _)| s.clone()),
                        to: status,
                        cause: r.cause.clone(),
                        summary: r.summary.clone(),
                        evidence: evidence.clone(),
                        at: observed,
                    });
                }
                known.insert(key.clone(), (status.to_owned(), since, r.cause.clone()));
                rows.retain(|x| (x.check.as_str(), x.target.as_str()) != (key.0.as_str(), key.1.as_str()));
                rows.push(ResultRow {
                    check: r.check.clone(),
                    target,
                    status,
                    summary: r.summary.clone(),
                    cause: r.cause.clone(),
                    evidence,
                    observed,
                    duration: i64::try_from(r.duration_ms).unwrap_or(i64::MAX),
                    since,
                });
            }
            let transitions = moves.len() as u64;
            for chunk in rows.chunks(400) {
                let values = values_placeholders(backend, 1, chunk.len(), 10);
                let sql = format!(
                    "INSERT INTO check_results (machine_id, check_id, target, status, summary, cause, evidence, observed_at, duration_ms, status_since) \
                     VALUES {values} ON CONFLICT (machine_id, check_id, target) DO UPDATE SET status = excluded.status, \
                     summary = excluded.summary, cause = excluded.cause, evidence = excluded.evidence, \
                     observed_at = excluded.observed_at, duration_ms = excluded.duration_ms, status_since = excluded.status_since"
                );
                let mut q = sqlx::query(&sql);
                for r in chunk {
                    q = q
                        .bind(&machine)
                        .bind(&r.check)
                        .bind(&r.target)
                        .bind(r.status)
                        .bind(&r.summary)
                        .bind(r.cause.as_deref())
                        .bind(&r.evidence)
                        .bind(r.observed)
                        .bind(r.duration)
                        .bind(r.since);
                }
                q.execute(&mut *tx).await?;
            }
            for chunk in moves.chunks(400) {
                let values = values_placeholders(backend, 1, chunk.len(), 9);
                let sql = format!(
                    "INSERT INTO check_transitions (machine_id, check_id, target, from_status, to_status, cause, summary, evidence, at) VALUES {values}"
                );
                let mut q = sqlx::query(&sql);
                for t in chunk {
                    q = q
                        .bind(&machine)
                        .bind(&t.check)
                        .bind(&t.target)
                        .bind(t.from.as_deref())
                        .bind(t.to)
                        .bind(t.cause.as_deref())
                        .bind(&t.summary)
                        .bind(&t.evidence)
                        .bind(t.at);
                }
                q.execute(&mut *tx).await?;
            }
            // One statement for all of the report's paths; a later result for a target wins
            // (one statement cannot upsert a row twice).
            let mut paths: Vec<&CheckResult> = Vec::new();
            for r in results.iter().filter(|r| r.check == PATH_CHECK) {
                paths.retain(|p| p.target != r.target);
                paths.push(r);
            }
            for chunk in paths.chunks(400) {
                let values = values_placeholders(backend, 1, chunk.len(), 9);
                let sql = format!(
                    "INSERT INTO connection_paths (machine_id, target, host, gateway, status, layer, cause, status_since, observed_at) \
                     VALUES {values} \
                     ON CONFLICT (machine_id, target) DO UPDATE SET host = excluded.host, gateway = excluded.gateway, \
                     status_since = CASE WHEN connection_paths.status = excluded.status THEN connection_paths.status_since ELSE excluded.status_since END, \
                     status = excluded.status, layer = excluded.layer, cause = excluded.cause, observed_at = excluded.observed_at"
                );
                let mut q = sqlx::query(&sql);
                for r in chunk {
                    let path = PathFacts::of(r);
                    q = q
                        .bind(&machine)
                        .bind(r.target.as_deref().unwrap_or(""))
                        .bind(path.host)
                        .bind(path.gateway)
                        .bind(r.status.as_str())
                        .bind(path.layer)
                        .bind(r.cause.as_deref())
                        .bind(ms_of(r.observed_at))
                        .bind(ms_of(r.observed_at));
                }
                q.execute(&mut *tx).await?;
            }
            // The machine's worst status and failing count, for fleet-wide pages, from its
            // results as they now stand (read above and merged with this report).
            let (failing, health) = machine_health(known.values().map(|(status, _, _)| status.as_str()));
            sqlx::query("UPDATE machines SET failing = $1, health = $2 WHERE id = $3")
                .bind(failing)
                .bind(health)
                .bind(&machine)
                .execute(&mut *tx)
                .await?;
            outcomes.push(ReportOutcome { duplicate: false, stored: results.len() as u64, transitions });
            }
            tx.commit().await?;
            outcomes
        });
        Ok(outcomes)
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

impl Store {
    /// Deletes history older than `cutoff_ms`: status transitions and trend samples. The latest
    /// result of every check stays, whatever its age. Returns the rows deleted.
    pub async fn purge_history(&self, cutoff_ms: i64) -> StoreResult<u64> {
        let n = with_db!(self, p => {
            let a = sqlx::query("DELETE FROM check_transitions WHERE at < $1").bind(cutoff_ms).execute(p).await?.rows_affected();
            let b = sqlx::query("DELETE FROM health_samples WHERE bucket_at < $1").bind(cutoff_ms).execute(p).await?.rows_affected();
            a + b
        });
        Ok(n)
    }
}

/// A machine's failing-result count and worst status: fail, then error, warn, pass; `unknown`
/// when it has no result of those.
pub(super) fn machine_health<'a>(statuses: impl Iterator<Item = &'a str>) -> (i64, &'static str) {
    let (mut failing, mut worst) = (0i64, 0u8);
    for s in statuses {
        let rank = match s {
            "fail" => {
                failing += 1;
                4
            }
            "error" => 3,
            "warn" => 2,
            "pass" => 1,
            _ => 0,
        };
        worst = worst.max(rank);
    }
    let health = match worst {
        4 => "fail",
        3 => "error",
        2 => "warn",
        1 => "pass",
        _ => "unknown",
    };
    (failing, health)
}

#[cfg(test)]
mod health_tests {
    use super::machine_health;

    #[test]
    fn worst_status_wins_and_fails_are_counted() {
        assert_eq!(machine_health(["pass", "warn", "fail", "fail"].into_iter()), (2, "fail"));
        assert_eq!(machine_health(["pass", "error", "warn"].into_iter()), (0, "error"));
        assert_eq!(machine_health(["pass", "skipped"].into_iter()), (0, "pass"));
        assert_eq!(machine_health(["skipped"].into_iter()), (0, "unknown"));
        assert_eq!(machine_health([].into_iter()), (0, "unknown"));
    }
}
