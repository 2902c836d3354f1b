//! CSV and JSON exports of machines, latest results and incidents (any signed-in user).
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::pages::{StateQuery, incident_state};
use super::session::Session;
use super::{WebError, WebResult};
use crate::state::AppState;
use crate::store::dashboard::MachineFilter;

/// Rows in one export at most.
pub const EXPORT_LIMIT: i64 = 200_000;

fn q<T>(q: Result<Query<T>, QueryRejection>) -> WebResult<T> {
    q.map(|Query(v)| v).map_err(|e| WebError::BadRequest(e.body_text()))
}

/// One CSV field: quoted when needed, and defused against spreadsheet formula injection.
pub fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}") } else { s.to_owned() };
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
}

pub fn csv_response(name: &str, header_row: &[&str], rows: impl Iterator<Item = Vec<String>>) -> Response {
    let mut out = header_row.join(",");
    out.push_str("\r\n");
    for r in rows {
        out.push_str(&r.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        out,
    )
        .into_response()
}

fn json(v: impl serde::Serialize) -> Response {
    axum::Json(v).into_response()
}

pub async fn machines_csv(
    State(s): State<AppState>,
    _: Session,
    f: Result<Query<MachineFilter>, QueryRejection>,
) -> WebResult<Response> {
    let f = q(f)?;
    f.validate()?;
    let rows = s.store.machines_matching(&f, EXPORT_LIMIT).await?;
    Ok(csv_response(
        "machines.csv",
        &["id", "hostname", "role", "site", "os", "agent_version", "health", "failing_checks", "last_seen_at_ms"],
        rows.into_iter().map(|m| {
            vec![
                m.id.to_string(),
                m.hostname,
                m.role.as_str().to_owned(),
                m.site.unwrap_or_default(),
                m.os,
                m.agent_version,
                m.health.to_string(),
                m.failing.to_string(),
                m.last_seen_at.to_string(),
            ]
        }),
    ))
}

pub async fn machines_json(
    State(s): State<AppState>,
    _: Session,
    f: Result<Query<MachineFilter>, QueryRejection>,
) -> WebResult<Response> {
    let f = q(f)?;
    f.validate()?;
    Ok(json(s.store.machines_matching(&f, EXPORT_LIMIT).await?))
}

pub async fn incidents_csv(
    State(s): State<AppState>,
    _: Session,
    sq: Result<Query<StateQuery>, QueryRejection>,
) -> WebResult<Response> {
    let (_, filter) = incident_state(&q(sq)?)?;
    let rows = s.store.incidents(filter, EXPORT_LIMIT, 0).await?;
    Ok(csv_response(
        "incidents.csv",
        &["id", "kind", "scope", "root_cause", "title", "fix", "state", "opened_at_ms", "resolved_at_ms", "machines"],
        rows.into_iter().map(|i| {
            vec![
                i.id.to_string(),
                i.kind.to_string(),
                i.scope,
                i.root_cause,
                i.title,
                i.fix_id.unwrap_or_default(),
                i.state.to_string(),
                i.opened_at.to_string(),
                i.resolved_at.map(|r| r.to_string()).unwrap_or_default(),
                i.affected_count.to_string(),
            ]
        }),
    ))
}

pub async fn incidents_json(
    State(s): State<AppState>,
    _: Session,
    sq: Result<Query<StateQuery>, QueryRejection>,
) -> WebResult<Response> {
    let (_, filter) = incident_state(&q(sq)?)?;
    Ok(json(s.store.incidents(filter, EXPORT_LIMIT, 0).await?))
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ResultQuery {
    pub check: Option<String>,
    /// pass, warn, fail, error, skipped; default: every status.
    pub status: Option<String>,
}

fn result_filter(r: &ResultQuery) -> WebResult<(Option<&str>, Option<&str>)> {
    let status = r.status.as_deref().filter(|s| !s.is_empty());
    if status.is_some_and(|s| !["pass", "warn", "fail", "error", "skipped"].contains(&s)) {
        return Err(WebError::BadRequest("unknown status".into()));
    }
    Ok((r.check.as_deref().filter(|c| !c.is_empty()), status))
}

pub async fn results_csv(
    State(s): State<AppState>,
    _: Session,
    rq: Result<Query<ResultQuery>, QueryRejection>,
) -> WebResult<Response> {
    let rq = q(rq)?;
    let (check, status) = result_filter(&rq)?;
    let rows = s.store.results_matching(check, status, EXPORT_LIMIT).await?;
    Ok(csv_response(
        "results.csv",
        &[
            "machine_id",
            "hostname",
            "site",
            "check",
            "target",
            "status",
            "cause",
            "summary",
            "observed_at_ms",
            "status_since_ms",
        ],
        rows.into_iter().map(|r| {
            vec![
                r.machine_id,
                r.hostname,
                r.site.unwrap_or_default(),
                r.check_id,
                r.target,
                r.status,
                r.cause.unwrap_or_default(),
                r.summary,
                r.observed_at.to_string(),
                r.status_since.to_string(),
            ]
        }),
    ))
}

pub async fn results_json(
    State(s): State<AppState>,
    _: Session,
    rq: Result<Query<ResultQuery>, QueryRejection>,
) -> WebResult<Response> {
    let rq = q(rq)?;
    let (check, status) = result_filter(&rq)?;
    Ok(json(s.store.results_matching(check, status, EXPORT_LIMIT).await?))
}
