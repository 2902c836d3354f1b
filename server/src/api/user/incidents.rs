//! Incidents over the JSON API: the list by state, and one incident with its machines and
//! history, in the API's own response types.
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::user::UserAuth;
use crate::domain::incident::{Incident, IncidentEvent, IncidentMachine, IncidentState};
use crate::error::{AppError, AppResult};
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;

/// An incident as the API returns it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IncidentBody {
    pub id: Uuid,
    pub incident_key: String,
    /// host, gateway, network or machine.
    #[schema(value_type = String)]
    pub kind: crate::domain::correlation::Kind,
    pub scope: String,
    /// A cause id of the cause catalogue.
    pub root_cause: String,
    pub title: String,
    pub fix_id: Option<String>,
    /// open or resolved.
    #[schema(value_type = String)]
    pub state: IncidentState,
    /// Milliseconds since the Unix epoch.
    pub opened_at: i64,
    pub resolved_at: Option<i64>,
    pub updated_at: i64,
    pub affected_count: i64,
    /// The failures behind the verdict: `{"failures": n, "chain": [...]}`.
    #[schema(value_type = Object)]
    pub evidence: serde_json::Value,
}

impl From<&Incident> for IncidentBody {
    fn from(i: &Incident) -> IncidentBody {
        IncidentBody {
            id: i.id.0,
            incident_key: i.key.clone(),
            kind: i.kind,
            scope: i.scope.clone(),
            root_cause: i.root_cause.clone(),
            title: i.title.clone(),
            fix_id: i.fix_id.clone(),
            state: i.state,
            opened_at: i.opened_at,
            resolved_at: i.resolved_at,
            updated_at: i.updated_at,
            affected_count: i.affected_count,
            evidence: i.evidence.clone(),
        }
    }
}

/// A machine of an incident.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IncidentMachineBody {
    pub machine_id: Uuid,
    pub hostname: String,
    pub site: Option<String>,
    /// `source` (at fault) or `affected`.
    #[schema(value_type = String)]
    pub relation: crate::domain::incident::Relation,
    /// The machine's worst status: pass, warn, fail, error or unknown.
    #[schema(value_type = String)]
    pub health: crate::domain::health::Health,
}

impl From<&IncidentMachine> for IncidentMachineBody {
    fn from(m: &IncidentMachine) -> IncidentMachineBody {
        IncidentMachineBody {
            machine_id: m.machine_id.0,
            hostname: m.hostname.clone(),
            site: m.site.clone(),
            relation: m.relation,
            health: m.health,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IncidentEventBody {
    pub at: i64,
    pub event: String,
    pub detail: String,
}

impl From<&IncidentEvent> for IncidentEventBody {
    fn from(e: &IncidentEvent) -> IncidentEventBody {
        IncidentEventBody { at: e.at, event: e.event.clone(), detail: e.detail.clone() }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct IncidentQuery {
    /// open (default), resolved or all.
    pub state: Option<String>,
}

/// `open` (the default), `resolved`, or `all` (`None`).
pub fn state_filter(q: Option<&str>) -> Result<Option<IncidentState>, String> {
    match q.unwrap_or("open") {
        "all" => Ok(None),
        s => IncidentState::parse(s).map(Some).ok_or_else(|| "state must be open, resolved or all".to_owned()),
    }
}

#[utoipa::path(get, path = "/api/v1/incidents", tag = "dashboard", params(IncidentQuery), security(("user_token" = [])),
    responses((status = 200, body = [IncidentBody]), (status = 422, body = rdpfleet_proto::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _user: UserAuth,
    ApiQuery(q): ApiQuery<IncidentQuery>,
) -> AppResult<Json<Vec<IncidentBody>>> {
    let filter = state_filter(q.state.as_deref()).map_err(AppError::Validation)?;
    Ok(Json(state.store.incidents(filter, 1000, 0).await?.iter().map(IncidentBody::from).collect()))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IncidentDetail {
    pub incident: IncidentBody,
    /// The machines at fault (`source`) and those affected, while the incident is open.
    pub machines: Vec<IncidentMachineBody>,
    pub events: Vec<IncidentEventBody>,
}

#[utoipa::path(get, path = "/api/v1/incidents/{incident_id}", tag = "dashboard", params(("incident_id" = Uuid, Path)),
    security(("user_token" = [])), responses((status = 200, body = IncidentDetail), (status = 404, body = rdpfleet_proto::error::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    _user: UserAuth,
    ApiPath(id): ApiPath<Uuid>,
) -> AppResult<Json<IncidentDetail>> {
    let incident = state.store.incident(id).await?.ok_or(AppError::NotFound("incident"))?;
    Ok(Json(IncidentDetail {
        incident: IncidentBody::from(&incident),
        machines: state.store.incident_machines(id, 10_000).await?.iter().map(IncidentMachineBody::from).collect(),
        events: state.store.incident_events(id).await?.iter().map(IncidentEventBody::from).collect(),
    }))
}
