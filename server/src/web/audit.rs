//! The Audit page: the hash-chained log, filtered, newest first, with a CSV export.
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;

use super::session::Session;
use super::view::{AuditPage, AuditView, Nav};
use super::{WebError, WebResult, render};
use crate::state::AppState;
use crate::store::audit::AuditFilter;

const PAGE: i64 = 100;

pub async fn page(
    State(state): State<AppState>,
    session: Session,
    q: Result<Query<AuditFilter>, QueryRejection>,
) -> WebResult<Response> {
    let Query(f) = q.map_err(|e| WebError::BadRequest(e.body_text()))?;
    let rows = state.store.audit_search(&f, PAGE).await?;
    let next = (rows.len() as i64 == PAGE).then(|| rows.last().map(|r| r.id)).flatten();
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    let query = [("actor", s(&f.actor)), ("action", s(&f.action)), ("subject", s(&f.subject))]
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", super::view::url_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    render(&AuditPage {
        nav: Nav::of(&session, "audit"),
        rows: rows.iter().map(AuditView::of).collect(),
        actor: s(&f.actor),
        action: s(&f.action),
        subject: s(&f.subject),
        next,
        query,
    })
}

pub async fn csv(
    State(state): State<AppState>,
    _: Session,
    q: Result<Query<AuditFilter>, QueryRejection>,
) -> WebResult<Response> {
    let Query(f) = q.map_err(|e| WebError::BadRequest(e.body_text()))?;
    let rows = state.store.audit_search(&f, super::export::EXPORT_LIMIT).await?;
    Ok(super::export::csv_response(
        "audit.csv",
        &["id", "at_ms", "actor_kind", "actor", "action", "subject", "details", "prev_hash", "hash"],
        rows.into_iter().map(|r| {
            vec![
                r.id.to_string(),
                r.at.to_string(),
                r.actor_kind,
                r.actor,
                r.action,
                r.subject,
                r.details,
                r.prev_hash,
                r.hash,
            ]
        }),
    ))
}
