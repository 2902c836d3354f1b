//! The OpenAPI document, generated from the handlers and wire types so it cannot drift.
use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "rdpfleet API", description = "Agent API v1 and the JSON API for people and scripts."),
    paths(
        super::health::healthz,
        super::health::readyz,
        super::agent::enroll::enroll,
        super::agent::report::report,
        super::agent::job_poll::poll,
        super::agent::job_result::job_result,
        super::agent::release::download,
        super::user::machines::list,
        super::user::machines::get,
        super::user::machine_results::results,
        super::user::machine_history::history,
        super::user::machine_diagnoses::diagnoses,
        super::user::fleet::overview,
        super::user::fleet::machines,
        super::user::fleet::check,
        super::user::incidents::list,
        super::user::incidents::get,
        super::user::fleet::map,
        super::user::rollouts::propose,
        super::user::rollouts::list,
        super::user::rollouts::get,
        super::user::rollouts::approve,
        super::user::rollouts::start,
        super::user::rollouts::pause,
        super::user::rollouts::resume,
        super::user::rollouts::abort,
        super::user::rollouts::rollback,
        super::user::releases::list,
        super::user::users::list,
        super::user::users::disable,
        super::user::users::enable,
        super::user::users::delete,
        super::user::users::set_role,
        super::user::users::tokens,
        super::user::users::revoke_token,
    ),
    modifiers(&BearerSchemes),
    tags((name = "agent", description = "Called by rdpfleet-agent"), (name = "machines", description = "Fleet inventory and results"),
        (name = "rollouts", description = "Fixes rolled out in waves, with approvals and rollback"),
        (name = "releases", description = "Agent releases and the update rollouts to them"),
        (name = "people", description = "Accounts and API tokens: disable, enable, role, delete, revoke"),
        (name = "dashboard", description = "The dashboard's pages as JSON: overview, machines, checks, incidents, connection map"))
)]
pub struct ApiDoc;

struct BearerSchemes;

impl Modify for BearerSchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, desc) in [("agent_token", "rfa_… token from enrollment"), ("user_token", "rfu_… personal API token")]
        {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(desc)).build()),
            );
        }
    }
}

/// `GET /api/openapi.json`
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
