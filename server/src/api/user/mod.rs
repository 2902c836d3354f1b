//! JSON API for people and scripts (personal API tokens).
pub mod fleet;
pub mod incidents;
pub mod machine_diagnoses;
pub mod machine_history;
pub mod machine_results;
pub mod machines;
pub mod releases;
pub mod rollouts;
pub mod users;

use serde::Serialize;

use crate::store::machines::Machine;
use crate::store::time_of;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MachineView {
    pub id: uuid::Uuid,
    pub hostname: String,
    pub role: rdpfleet_proto::enroll::MachineRole,
    pub os: String,
    pub agent_version: String,
    pub site: Option<String>,
    pub labels: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub enrolled_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_seen_at: time::OffsetDateTime,
    /// True when the machine's agent credentials are all revoked.
    pub revoked: bool,
    /// Reports stored for this machine, each once.
    pub reports_received: i64,
    /// Reports its agent says it dropped (outbox full while the server was away, or refused for
    /// good): the machine's history has gaps.
    pub reports_dropped: i64,
}

impl From<Machine> for MachineView {
    fn from(m: Machine) -> Self {
        MachineView {
            id: m.id,
            hostname: m.hostname,
            role: m.role,
            os: m.os,
            agent_version: m.agent_version,
            site: m.site,
            labels: m.labels,
            enrolled_at: time_of(m.enrolled_at),
            last_seen_at: time_of(m.last_seen_at),
            revoked: m.revoked,
            reports_received: m.reports_received,
            reports_dropped: m.reports_dropped,
        }
    }
}
