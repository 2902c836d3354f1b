//! The dashboard's data as JSON, for scripts: overview, filtered machines, a check, incidents,
//! the connection map. Same queries as the pages, bearer-token authentication.
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::incidents::IncidentBody;
use crate::auth::user::UserAuth;
use crate::domain::health::OFFLINE_AFTER_MS;
use crate::domain::machines::{CheckFinding, MachineSummary};
use crate::error::{AppError, AppResult};
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;
use crate::store::dashboard::{CheckStat, HealthCounts, HealthSample, MachineFilter, PAGE_SIZE, PathCell};
use crate::store::now_ms;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Overview {
    pub machines: HealthCounts,
    pub open_incidents: i64,
    /// Open incidents touching most machines first (12 at most).
    pub largest_incidents: Vec<IncidentBody>,
    pub failing_checks: Vec<CheckStat>,
    /// Five-minute samples of the last 48 hours.
    pub trend: Vec<HealthSample>,
}

#[utoipa::path(get, path = "/api/v1/overview", tag = "dashboard", security(("user_token" = [])),
    responses((status = 200, body = Overview), (status = 401, body = rdpfleet_proto::error::ErrorBody)))]
pub async fn overview(State(state): State<AppState>, _user: UserAuth) -> AppResult<Json<Overview>> {
    let s = &state.store;
    Ok(Json(Overview {
        machines: s.health_counts(OFFLINE_AFTER_MS).await?,
        open_incidents: s.open_incident_count().await?,
        largest_incidents: s.largest_open_incidents(12).await?.iter().map(IncidentBody::from).collect(),
        failing_checks: s.check_stats(20).await?,
        trend: s.health_samples(now_ms() - 48 * 3_600_000).await?,
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MachinePage {
    pub total: i64,
    pub page: u32,
    pub page_size: i64,
    pub machines: Vec<MachineListItem>,
}

/// A machine in the fleet-wide list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MachineListItem {
    pub id: uuid::Uuid,
    pub hostname: String,
    pub role: rdpfleet_proto::enroll::MachineRole,
    pub site: Option<String>,
    pub os: String,
    pub agent_version: String,
    /// The worst status of its current results: pass, warn, fail, error or unknown.
    #[schema(value_type = String)]
    pub health: crate::domain::health::Health,
    /// How many of its checks fail.
    pub failing: i64,
    /// Milliseconds since the Unix epoch.
    pub last_seen_at: i64,
}

impl From<&MachineSummary> for MachineListItem {
    fn from(m: &MachineSummary) -> MachineListItem {
        MachineListItem {
            id: m.id.0,
            hostname: m.hostname.clone(),
            role: m.role,
            site: m.site.clone(),
            os: m.os.clone(),
            agent_version: m.agent_version.clone(),
            health: m.health,
            failing: m.failing,
            last_seen_at: m.last_seen_at,
        }
    }
}

fn validate(f: &MachineFilter) -> AppResult<()> {
    Ok(f.validate()?)
}

#[utoipa::path(get, path = "/api/v1/fleet/machines", tag = "dashboard", params(MachineFilter), security(("user_token" = [])),
    responses((status = 200, body = MachinePage), (status = 422, body = rdpfleet_proto::error::ErrorBody)))]
pub async fn machines(
    State(state): State<AppState>,
    _user: UserAuth,
    ApiQuery(f): ApiQuery<MachineFilter>,
) -> AppResult<Json<MachinePage>> {
    validate(&f)?;
    let (machines, total) = state.store.machine_page(&f).await?;
    let machines = machines.iter().map(MachineListItem::from).collect();
    Ok(Json(MachinePage { total, page: f.page.unwrap_or(1).max(1), page_size: PAGE_SIZE, machines }))
}

/// A machine on which the check fails or warns.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckMachine {
    pub machine_id: uuid::Uuid,
    pub hostname: String,
    pub site: Option<String>,
    pub target: String,
    pub status: rdpfleet_proto::check::CheckStatus,
    pub cause: Option<String>,
    pub summary: String,
    /// Since when (milliseconds since the Unix epoch).
    pub status_since: i64,
}

impl From<&CheckFinding> for CheckMachine {
    fn from(r: &CheckFinding) -> CheckMachine {
        CheckMachine {
            machine_id: r.machine_id.0,
            hostname: r.hostname.clone(),
            site: r.site.clone(),
            target: r.target.clone(),
            status: r.status,
            cause: r.cause.clone(),
            summary: r.summary.clone(),
            status_since: r.status_since,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckReport {
    pub check_id: String,
    pub failing: i64,
    pub warning: i64,
    /// Machines where it fails or warns, longest first (500 at most).
    pub machines: Vec<CheckMachine>,
}

#[utoipa::path(get, path = "/api/v1/checks/{check_id}", tag = "dashboard", params(("check_id" = String, Path)),
    security(("user_token" = [])), responses((status = 200, body = CheckReport)))]
pub async fn check(
    State(state): State<AppState>,
    _user: UserAuth,
    ApiPath(check_id): ApiPath<String>,
) -> AppResult<Json<CheckReport>> {
    if check_id.is_empty() || check_id.len() > 64 {
        return Err(AppError::Validation("check ids are 1-64 characters".into()));
    }
    let machines = state.store.check_machines(&check_id, 500, 0).await?;
    let stat = state.store.check_stats(1000).await?.into_iter().find(|s| s.check_id == check_id);
    Ok(Json(CheckReport {
        failing: stat.as_ref().map_or(0, |s| s.failing),
        warning: stat.as_ref().map_or(0, |s| s.warning),
        machines: machines.iter().map(CheckMachine::from).collect(),
        check_id,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct MapQuery {
    /// One site: rows are its clients; otherwise rows are sites.
    pub site: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/map", tag = "dashboard", params(MapQuery), security(("user_token" = [])),
    responses((status = 200, body = [PathCell])))]
pub async fn map(
    State(state): State<AppState>,
    _user: UserAuth,
    ApiQuery(q): ApiQuery<MapQuery>,
) -> AppResult<Json<Vec<PathCell>>> {
    Ok(Json(state.store.path_map(q.site.as_deref().filter(|s| !s.is_empty()), 20_000).await?))
}
