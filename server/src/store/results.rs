//! Check results: the latest state per (machine, check, target) and its history as transitions.
use rdpfleet_proto::check::{CheckResult, CheckStatus};
use uuid::Uuid;

use std::collections::HashMap;

use super::report_plan::{
    CauseFingerprint, Current, CurrentResults, NewTransition, PathRow, ReportPlan, ResultRow, plan, result_key,
};
use super::sql::{Arg, Params, Statement, bind_args};
use super::{Backend, Store, StoreError, StoreResult, convert, now_ms, with_db};
use crate::domain::machines::{CurrentResult, StatusChange};

pub use super::report_plan::{PATH_CHECK, host_of};

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
    /// Set when the report was refused because its sequence jumped more than
    /// [`MAX_SEQ_JUMP`] past the machine's high-water mark (which it holds).
    pub refused_jump_from: Option<i64>,
}

/// How far one report's sequence may run ahead of its machine's last stored one. Agents number
/// reports consecutively and queue at most 100,000; a larger jump would move the high-water
/// mark so far that every later genuine report looked like a duplicate (with `2^63-1`, forever).
pub const MAX_SEQ_JUMP: i64 = 1_000_000;

#[derive(sqlx::FromRow)]
struct LatestResultRow {
    check_id: String,
    target: String,
    status: String,
    summary: String,
    cause: Option<String>,
    evidence: String,
    observed_at: i64,
    duration_ms: i64,
    status_since: i64,
}

impl TryFrom<LatestResultRow> for CurrentResult {
    type Error = StoreError;
    fn try_from(r: LatestResultRow) -> StoreResult<CurrentResult> {
        Ok(CurrentResult {
            status: parse_status(&r.status)?,
            // Evidence is what an agent sent: kept as text when it is not JSON.
            evidence: serde_json::from_str(&r.evidence).unwrap_or(serde_json::Value::String(r.evidence)),
            check_id: r.check_id,
            target: r.target,
            summary: r.summary,
            cause: r.cause,
            observed_at: r.observed_at,
            duration_ms: r.duration_ms,
            status_since: r.status_since,
        })
    }
}

#[derive(sqlx::FromRow)]
struct TransitionRow {
    id: i64,
    check_id: String,
    target: String,
    from_status: Option<String>,
    to_status: String,
    cause: Option<String>,
    summary: String,
    at: i64,
}

impl TryFrom<TransitionRow> for StatusChange {
    type Error = StoreError;
    fn try_from(t: TransitionRow) -> StoreResult<StatusChange> {
        Ok(StatusChange {
            id: t.id,
            from: t.from_status.as_deref().map(parse_status).transpose()?,
            to: parse_status(&t.to_status)?,
            check_id: t.check_id,
            target: t.target,
            cause: t.cause,
            summary: t.summary,
            at: t.at,
        })
    }
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
    ///
    /// The statements are per batch, not per report — advance the high-water marks, read the
    /// machines' current results, upsert the results, add the history, upsert the paths, set
    /// the machines' health — because each statement is a round trip (to PostgreSQL, or to
    /// sqlx's SQLite worker thread) that costs more than the rows it carries. A batch holding
    /// a machine twice is written in rounds, each machine at most once per round, in order.
    pub async fn store_reports(&self, batch: &[ReportIn<'_>]) -> StoreResult<Vec<ReportOutcome>> {
        let now = now_ms();
        let seqs = batch
            .iter()
            .map(|r| i64::try_from(r.seq).map_err(|_| StoreError::Corrupt("sequence out of range".into())))
            .collect::<StoreResult<Vec<i64>>>()?;
        let machines: Vec<String> = batch.iter().map(|r| r.machine_id.to_string()).collect();
        let backend = self.backend();
        let mut outcomes =
            vec![ReportOutcome { duplicate: true, stored: 0, transitions: 0, refused_jump_from: None }; batch.len()];
        // What the batch leaves as each stored machine's current results, for the cache once
        // the transaction has committed.
        let mut written: Vec<(uuid::Uuid, i64, CurrentResults)> = Vec::new();
        with_db!(self, p => {
            let mut tx = p.begin_with(self.begin_write()).await?;
            for round in rounds(batch) {
                // 1. The machines' high-water marks (locked on PostgreSQL until the commit, so
                //    concurrent writers serialise per machine): reports above theirs are stored.
                let ids: Vec<&str> = round.iter().map(|&i| machines[i].as_str()).collect();
                let q = high_water(backend, &ids);
                let json = bind_args!(sqlx::query_scalar::<_, String>(&q.sql), &q.args).fetch_one(&mut *tx).await?;
                let marks: HashMap<String, i64> = decode_rows::<(String, i64)>(&json)?.into_iter().collect();
                let stored = accepted(&round, &machines, &seqs, &marks, &mut outcomes);
                if stored.is_empty() {
                    continue;
                }
                // 2. Their current results: as this process stored them when the database
                //    still holds the mark it stored them at, else read back.
                let (mut current, unknown) = self.cached_current(batch, &machines, &stored, &marks);
                if !unknown.is_empty() {
                    let ids: Vec<&str> = unknown.iter().map(|&i| machines[i].as_str()).collect();
                    let q = current_results(backend, &ids);
                    let json =
                        bind_args!(sqlx::query_scalar::<_, String>(&q.sql), &q.args).fetch_one(&mut *tx).await?;
                    read_current(&json, &mut current)?;
                }
                let plans: Vec<(usize, ReportPlan)> = stored
                    .iter()
                    .map(|&i| (i, plan(batch[i].results, current.remove(&machines[i]).unwrap_or_default())))
                    .collect();
                // 3-6. Latest results, history, connection paths, and the machines' marks,
                //    counters and health.
                for q in report_writes(backend, now, batch, &machines, &seqs, &plans) {
                    bind_args!(sqlx::query(&q.sql), &q.args).execute(&mut *tx).await?;
                }
                for (i, p) in plans {
                    outcomes[i] = ReportOutcome {
                        duplicate: false,
                        stored: batch[i].results.len() as u64,
                        transitions: p.transitions.len() as u64,
                        refused_jump_from: None,
                    };
                    written.push((batch[i].machine_id, seqs[i], p.current));
                }
            }
            tx.commit().await?;
        });
        for (machine, seq, current) in &written {
            self.current.put(*machine, *seq, current);
        }
        Ok(outcomes)
    }

    /// The current results of the `stored` reports' machines that this process holds at the
    /// mark the database has, and the reports whose machines must be read back.
    fn cached_current(
        &self,
        batch: &[ReportIn<'_>],
        machines: &[String],
        stored: &[usize],
        marks: &HashMap<String, i64>,
    ) -> (HashMap<String, CurrentResults>, Vec<usize>) {
        let mut current = HashMap::new();
        let mut unknown = Vec::new();
        for &i in stored {
            match self.current.get(batch[i].machine_id, marks[&machines[i]]) {
                Some(c) => {
                    current.insert(machines[i].clone(), c);
                }
                None => unknown.push(i),
            }
        }
        (current, unknown)
    }

    pub async fn latest_results(&self, machine_id: Uuid) -> StoreResult<Vec<CurrentResult>> {
        let rows = with_db!(self, p => {
            sqlx::query_as::<_, LatestResultRow>(
                "SELECT check_id, target, status, summary, cause, evidence, observed_at, duration_ms, status_since \
                 FROM check_results WHERE machine_id = $1 ORDER BY check_id, target",
            )
            .bind(machine_id.to_string())
            .fetch_all(p)
            .await?
        });
        convert(rows)
    }

    /// Newest transitions first.
    pub async fn transitions(&self, machine_id: Uuid, limit: i64) -> StoreResult<Vec<StatusChange>> {
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
        convert(rows)
    }

    /// Count of stored result rows, for tests and metrics.
    pub async fn count_transitions(&self) -> StoreResult<i64> {
        let n = with_db!(self, p => {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM check_transitions").fetch_one(p).await?
        });
        Ok(n)
    }
}

/// One row of JSON for a query's rows: sqlx's SQLite driver hands each row from its worker
/// thread to the caller through a channel, and a thread switch per row cost more than the
/// rows themselves (measured at 100k agents). One aggregate is one hand-over.
fn json_rows(backend: Backend, row: &str, from: &str) -> String {
    match backend {
        Backend::Sqlite => format!("SELECT json_group_array(json_array({row})) FROM {from}"),
        Backend::Postgres => format!("SELECT COALESCE(json_agg(json_build_array({row})), '[]')::text FROM {from}"),
    }
}

/// `[id, last_report_seq]` of the machines; on PostgreSQL locked (in id order, as batches are
/// sorted) so that a machine's reports are judged against a mark no one else is moving.
fn high_water<'a>(backend: Backend, machines: &[&'a str]) -> Statement<'a> {
    let ids = Params::new(backend).list(machines.len());
    let sql = match backend {
        Backend::Sqlite => json_rows(backend, "id, last_report_seq", &format!("machines WHERE id IN ({ids})")),
        Backend::Postgres => json_rows(
            backend,
            "id, last_report_seq",
            &format!("(SELECT id, last_report_seq FROM machines WHERE id IN ({ids}) ORDER BY id FOR UPDATE) AS m"),
        ),
    };
    Statement { sql, args: machines.iter().map(|m| Arg::Text(m)).collect() }
}

/// The reports of `round` to store: above their machine's mark and not too far past it (those
/// are refused, in `outcomes`); the rest are duplicates.
fn accepted(
    round: &[usize],
    machines: &[String],
    seqs: &[i64],
    marks: &HashMap<String, i64>,
    outcomes: &mut [ReportOutcome],
) -> Vec<usize> {
    let mut stored = Vec::with_capacity(round.len());
    for &i in round {
        match marks.get(&machines[i]) {
            Some(&mark) if seqs[i] - mark > MAX_SEQ_JUMP => {
                outcomes[i] =
                    ReportOutcome { duplicate: false, stored: 0, transitions: 0, refused_jump_from: Some(mark) };
            }
            Some(&mark) if mark < seqs[i] => stored.push(i),
            _ => {}
        }
    }
    stored
}

/// `[machine, check, target, status, status_since, cause]` of the machines' current results.
fn current_results<'a>(backend: Backend, machines: &[&'a str]) -> Statement<'a> {
    let sql = json_rows(
        backend,
        "machine_id, check_id, target, status, status_since, cause",
        &format!("check_results WHERE machine_id IN ({})", Params::new(backend).list(machines.len())),
    );
    Statement { sql, args: machines.iter().map(|m| Arg::Text(m)).collect() }
}

/// Adds the rows of [`current_results`] to `current`, by machine.
fn read_current(json: &str, current: &mut HashMap<String, CurrentResults>) -> StoreResult<()> {
    for (m, check, target, status, since, cause) in
        decode_rows::<(String, String, String, String, i64, Option<String>)>(json)?
    {
        let status = parse_status(&status)?;
        current.entry(m).or_default().insert(
            result_key(&check, &target),
            Current { status, since, cause: CauseFingerprint::of(cause.as_deref()), path: None },
        );
    }
    Ok(())
}

/// Rows per multi-row statement: wide enough that the round trip is shared, well inside both
/// databases' parameter limits.
const ROWS_PER_STATEMENT: usize = 400;

/// The statements that write the planned reports: their latest results, history rows,
/// connection paths, and each machine's new mark, counters, worst status and failing count.
fn report_writes<'a>(
    backend: Backend,
    now: i64,
    batch: &[ReportIn<'a>],
    machines: &'a [String],
    seqs: &[i64],
    plans: &'a [(usize, ReportPlan)],
) -> Vec<Statement<'a>> {
    let rows: Vec<(&str, &ResultRow)> =
        plans.iter().flat_map(|(i, p)| p.rows.iter().map(move |r| (machines[*i].as_str(), r))).collect();
    let moves: Vec<(&str, &NewTransition)> =
        plans.iter().flat_map(|(i, p)| p.transitions.iter().map(move |t| (machines[*i].as_str(), t))).collect();
    let paths: Vec<(&str, &PathRow)> =
        plans.iter().flat_map(|(i, p)| p.paths.iter().map(move |x| (machines[*i].as_str(), x))).collect();
    let mut out = Vec::new();
    out.extend(rows.chunks(ROWS_PER_STATEMENT).map(|c| upsert_results(backend, c)));
    out.extend(moves.chunks(ROWS_PER_STATEMENT).map(|c| insert_transitions(backend, c)));
    out.extend(paths.chunks(ROWS_PER_STATEMENT).map(|c| upsert_paths(backend, c)));
    out.push(update_machines(backend, now, batch, machines, seqs, plans));
    out
}

/// The upsert of `rows` latest results; its parameters, per row in this order: machine, check,
/// target, status, summary, cause, evidence, observed_at, duration_ms, status_since. The one
/// statement that writes `check_results` (the demo seed and the scale benchmark use it too).
pub fn upsert_results_sql(backend: Backend, rows: usize) -> String {
    format!(
        "INSERT INTO check_results (machine_id, check_id, target, status, summary, cause, evidence, observed_at, duration_ms, status_since) \
         VALUES {} ON CONFLICT (machine_id, check_id, target) DO UPDATE SET status = excluded.status, \
         summary = excluded.summary, cause = excluded.cause, evidence = excluded.evidence, \
         observed_at = excluded.observed_at, duration_ms = excluded.duration_ms, status_since = excluded.status_since",
        Params::new(backend).rows(rows, 10)
    )
}

pub(super) fn upsert_results<'a>(backend: Backend, rows: &[(&'a str, &'a ResultRow)]) -> Statement<'a> {
    let mut args = Vec::with_capacity(rows.len() * 10);
    for (m, r) in rows {
        args.extend([
            Arg::Text(m),
            Arg::Text(&r.check),
            Arg::Text(&r.target),
            Arg::Text(r.status),
            Arg::Text(&r.summary),
            Arg::MaybeText(r.cause.as_deref()),
            Arg::Text(&r.evidence),
            Arg::Int(r.observed),
            Arg::Int(r.duration),
            Arg::Int(r.since),
        ]);
    }
    Statement { sql: upsert_results_sql(backend, rows.len()), args }
}

pub(super) fn insert_transitions<'a>(backend: Backend, moves: &[(&'a str, &'a NewTransition)]) -> Statement<'a> {
    let sql = format!(
        "INSERT INTO check_transitions (machine_id, check_id, target, from_status, to_status, cause, summary, evidence, at) VALUES {}",
        Params::new(backend).rows(moves.len(), 9)
    );
    let mut args = Vec::with_capacity(moves.len() * 9);
    for (m, t) in moves {
        args.extend([
            Arg::Text(m),
            Arg::Text(&t.check),
            Arg::Text(&t.target),
            Arg::MaybeText(t.from),
            Arg::Text(t.to),
            Arg::MaybeText(t.cause.as_deref()),
            Arg::Text(&t.summary),
            Arg::Text(&t.evidence),
            Arg::Int(t.at),
        ]);
    }
    Statement { sql, args }
}

/// A path keeps its `status_since` while its status does not change.
pub(super) fn upsert_paths<'a>(backend: Backend, paths: &[(&'a str, &'a PathRow)]) -> Statement<'a> {
    let sql = format!(
        "INSERT INTO connection_paths (machine_id, target, host, gateway, status, layer, cause, status_since, observed_at, \
         addresses) VALUES {} \
         ON CONFLICT (machine_id, target) DO UPDATE SET host = excluded.host, gateway = excluded.gateway, \
         addresses = excluded.addresses, \
         status_since = CASE WHEN connection_paths.status = excluded.status THEN connection_paths.status_since ELSE excluded.status_since END, \
         status = excluded.status, layer = excluded.layer, cause = excluded.cause, observed_at = excluded.observed_at",
        Params::new(backend).rows(paths.len(), 10)
    );
    let mut args = Vec::with_capacity(paths.len() * 10);
    for (m, x) in paths {
        args.extend([
            Arg::Text(m),
            Arg::Text(&x.target),
            Arg::Text(&x.host),
            Arg::MaybeText(x.gateway.as_deref()),
            Arg::Text(x.status),
            Arg::MaybeText(x.layer.as_deref()),
            Arg::MaybeText(x.cause.as_deref()),
            Arg::Int(x.since),
            Arg::Int(x.observed),
            Arg::Text(&x.addresses),
        ]);
    }
    Statement { sql, args }
}

fn update_machines<'a>(
    backend: Backend,
    now: i64,
    batch: &[ReportIn<'a>],
    machines: &'a [String],
    seqs: &[i64],
    plans: &'a [(usize, ReportPlan)],
) -> Statement<'a> {
    let mut params = Params::new(backend);
    let sql = format!(
        "UPDATE machines SET last_report_seq = v.column2, last_seen_at = {}, \
         agent_version = COALESCE(v.column3, agent_version), reports_received = reports_received + 1, \
         reports_dropped = CASE WHEN reports_dropped < v.column4 THEN v.column4 ELSE reports_dropped END, \
         failing = v.column5, health = v.column6 \
         FROM (VALUES {}) AS v WHERE machines.id = v.column1",
        params.one(),
        params.typed_rows(plans.len(), &["text", "bigint", "text", "bigint", "bigint", "text"])
    );
    let mut args = Vec::with_capacity(1 + plans.len() * 6);
    args.push(Arg::Int(now));
    for (i, p) in plans {
        args.extend([
            Arg::Text(&machines[*i]),
            Arg::Int(seqs[*i]),
            Arg::MaybeText(batch[*i].agent_version),
            Arg::Int(i64::try_from(batch[*i].dropped_reports).unwrap_or(i64::MAX)),
            Arg::Int(p.failing),
            Arg::Text(p.health.as_str()),
        ]);
    }
    Statement { sql, args }
}

fn decode_rows<T: serde::de::DeserializeOwned>(json: &str) -> StoreResult<Vec<T>> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("aggregated rows: {e}")))
}

/// Splits a batch into rounds in which each machine appears at most once, keeping each
/// machine's reports in batch order (one multi-row UPDATE cannot update a row twice).
fn rounds(batch: &[ReportIn<'_>]) -> Vec<Vec<usize>> {
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    let mut next_round: HashMap<Uuid, usize> = HashMap::new();
    for (i, r) in batch.iter().enumerate() {
        let k = next_round.entry(r.machine_id).or_insert(0);
        if rounds.len() <= *k {
            rounds.push(Vec::new());
        }
        rounds[*k].push(i);
        *k += 1;
    }
    rounds
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
