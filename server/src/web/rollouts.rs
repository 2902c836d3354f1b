//! Rollout pages: the list, one rollout with its waves and machines (live), and the forms that
//! propose (from an incident or a machine), approve, start, pause, resume, abort and roll back.
use axum::Form;
use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use uuid::Uuid;

use super::session::Session;
use super::view::{Nav, ProblemPage, RolloutPage, RolloutView, RolloutsPage, TargetView, at};
use super::{WebError, WebResult, render};
use crate::domain::ids::RolloutId;
use crate::domain::rollout::{Action, RolloutState};
use crate::domain::users::Role;
use crate::services::rollouts::{self, Proposal, RollbackScope};
use crate::state::AppState;

pub async fn list(State(state): State<AppState>, session: Session) -> WebResult<Response> {
    let rows = state.store.rollouts(200).await?;
    let mut views = Vec::with_capacity(rows.len());
    for r in &rows {
        let targets = state.store.rollout_targets(r.id).await?;
        views.push(RolloutView::of(r, &targets));
    }
    render(&RolloutsPage { nav: Nav::of(&session, "rollouts"), rows: views })
}

pub async fn page(
    State(state): State<AppState>,
    session: Session,
    id: Result<Path<String>, PathRejection>,
) -> WebResult<Response> {
    let id = super::pages::uuid_of(id)?;
    let d = rollouts::detail(&state.store, RolloutId(id)).await?;
    let role = session.user.role;
    let r = &d.rollout;
    let page = RolloutPage {
        can_approve: role == Role::Admin
            && r.proposed_by != session.user.username
            && r.state == RolloutState::AwaitingApproval,
        can_operate: role >= Role::Operator,
        nav: Nav::of(&session, "rollouts"),
        r: RolloutView::of(r, &d.targets),
        targets: d.targets.iter().map(TargetView::of).collect(),
        params: r.params.to_string(),
        created: at(r.created_at),
    };
    render(&page)
}

#[derive(Deserialize)]
pub struct ProposeForm {
    #[serde(default)]
    csrf: String,
    fix: String,
    #[serde(default)]
    params: String,
    #[serde(default)]
    incident: Option<Uuid>,
    #[serde(default)]
    machine: Option<Uuid>,
    #[serde(default)]
    repeat_of: Option<Uuid>,
    #[serde(default)]
    canary: Option<i64>,
    #[serde(default)]
    growth: Option<i64>,
    #[serde(default)]
    max_failures: Option<i64>,
    #[serde(default)]
    dry_run: Option<String>,
}

pub async fn propose(
    State(state): State<AppState>,
    session: Session,
    f: Result<Form<ProposeForm>, FormRejection>,
) -> WebResult<Response> {
    let Form(f) = f.map_err(|e| WebError::BadRequest(e.body_text()))?;
    session.check_csrf(&f.csrf)?;
    session.require(Role::Operator)?;
    let params = if f.params.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&f.params).map_err(|e| WebError::BadRequest(format!("parameters are not JSON: {e}")))?
    };
    let req = Proposal {
        fix: f.fix,
        params,
        machines: f.machine.into_iter().collect(),
        incident: f.incident,
        repeat_of: f.repeat_of.map(RolloutId),
        dry_run: f.dry_run.is_some(),
        canary: f.canary,
        growth: f.growth,
        max_failures: f.max_failures,
    };
    match rollouts::create(&state.store, state.settings.approval_policy(), &session.user, &req).await {
        Ok(id) => Ok(Redirect::to(&format!("/rollouts/{id}")).into_response()),
        Err(e) => problem(&session, "The rollout was not proposed", e.into()),
    }
}

#[derive(Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
}

/// approve | start | pause | resume | abort | rollback
pub async fn act(
    State(state): State<AppState>,
    session: Session,
    p: Result<Path<(String, String)>, PathRejection>,
    f: Result<Form<ActionForm>, FormRejection>,
) -> WebResult<Response> {
    let Form(f) = f.map_err(|e| WebError::BadRequest(e.body_text()))?;
    session.check_csrf(&f.csrf)?;
    let Path((id, action)) = p.map_err(|_| WebError::NotFound)?;
    let id = Uuid::parse_str(&id).map_err(|_| WebError::NotFound)?;
    let id = RolloutId(id);
    if action == "rollback" {
        let queued =
            rollouts::roll_back(&state.store, &state.signing_key, &session.user, id, RollbackScope::default()).await?;
        state.wakeups.wake_all(queued.iter().map(|m| m.0));
    } else {
        let action = Action::parse(&action).ok_or(WebError::NotFound)?;
        if let Err(e) = rollouts::act(&state.store, &session.user, id, action).await {
            return problem(&session, "The rollout did not change", e.into());
        }
    }
    Ok(Redirect::to(&format!("/rollouts/{id}")).into_response())
}

/// A refused form, shown inside the dashboard's layout with what went wrong and a way back;
/// errors that are not the form's fault keep their own pages.
fn problem(session: &Session, title: &'static str, e: WebError) -> WebResult<Response> {
    problem_on(session, "rollouts", title, e)
}

/// A refused form shown as a page under `nav` (400 or 409, saying why); other errors pass on.
pub(super) fn problem_on(
    session: &Session,
    nav: &'static str,
    title: &'static str,
    e: WebError,
) -> WebResult<Response> {
    let status = match &e {
        WebError::BadRequest(_) => axum::http::StatusCode::BAD_REQUEST,
        WebError::Conflict(_) => axum::http::StatusCode::CONFLICT,
        _ => return Err(e),
    };
    let page = ProblemPage { nav: Nav::of(session, nav), title, message: e.to_string() };
    Ok((status, render(&page)?).into_response())
}
