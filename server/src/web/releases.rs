//! The Releases page: the agent releases, the update rollouts to each, and a form that proposes
//! updating every older machine of a release's platform.
use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use uuid::Uuid;

use super::session::Session;
use super::view::{Nav, ReleaseView, ReleasesPage};
use super::{WebError, WebResult, render};
use crate::domain::users::Role;
use crate::state::AppState;

pub async fn page(State(state): State<AppState>, session: Session) -> WebResult<Response> {
    let all = crate::services::releases::with_rollouts(&state.store).await?;
    render(&ReleasesPage {
        can_propose: session.user.role >= Role::Operator,
        nav: Nav::of(&session, "releases"),
        releases: all.iter().map(ReleaseView::of).collect(),
    })
}

#[derive(Deserialize)]
pub struct UpdateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    canary: Option<i64>,
    #[serde(default)]
    dry_run: Option<String>,
}

pub async fn propose(
    State(state): State<AppState>,
    session: Session,
    p: Result<Path<Uuid>, PathRejection>,
    f: Result<Form<UpdateForm>, FormRejection>,
) -> WebResult<Response> {
    let Form(f) = f.map_err(|e| WebError::BadRequest(e.body_text()))?;
    session.check_csrf(&f.csrf)?;
    session.require(Role::Operator)?;
    let Path(release) = p.map_err(|_| WebError::NotFound)?;
    let policy = state.settings.approval_policy();
    let proposed = crate::services::releases::propose_update(
        &state.store,
        policy,
        &session.user,
        release,
        f.canary,
        f.dry_run.is_some(),
    )
    .await;
    match proposed {
        Ok(id) => Ok(Redirect::to(&format!("/rollouts/{id}")).into_response()),
        Err(e) => super::rollouts::problem_on(&session, "releases", "The update was not proposed", e.into()),
    }
}
