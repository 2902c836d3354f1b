//! `GET /api/v1/releases`: the agent releases and the update rollouts of each.
use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::auth::user::UserAuth;
use crate::error::AppResult;
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReleaseBody {
    pub id: uuid::Uuid,
    pub version: String,
    pub platform: rdpfleet_proto::release::Platform,
    /// Hex SHA-256 of the binary.
    pub sha256: String,
    pub size: i64,
    /// SHA-256 fingerprint of the release key that signed it.
    pub key_fingerprint: String,
    pub added_by: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// `agent.update` rollouts to this version.
    pub rollouts: Vec<ReleaseRollout>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReleaseRollout {
    pub id: uuid::Uuid,
    pub state: String,
    pub dry_run: bool,
}

#[utoipa::path(get, path = "/api/v1/releases", tag = "releases", security(("user_token" = [])),
    responses((status = 200, body = [ReleaseBody])))]
pub async fn list(State(state): State<AppState>, _user: UserAuth) -> AppResult<Json<Vec<ReleaseBody>>> {
    let all = crate::services::releases::with_rollouts(&state.store).await?;
    Ok(Json(all.into_iter().map(ReleaseBody::from).collect()))
}

impl From<crate::services::releases::ReleaseRollouts> for ReleaseBody {
    fn from(x: crate::services::releases::ReleaseRollouts) -> ReleaseBody {
        let r = x.release;
        ReleaseBody {
            rollouts: x
                .rollouts
                .iter()
                .map(|o| ReleaseRollout { id: o.id.0, state: o.state.as_str().to_owned(), dry_run: o.dry_run })
                .collect(),
            id: r.id,
            version: r.version,
            platform: r.platform,
            sha256: r.sha256,
            size: r.size,
            key_fingerprint: r.key_fingerprint,
            added_by: r.added_by,
            created_at: r.created_at,
        }
    }
}
