//! Incidents: one real fault, its root cause, the machines at fault (sources) and the machines
//! that suffer from it (affected). The correlation engine (`domain::correlation`) drafts them;
//! the store keeps them open until no machine shows the failure any more.
use crate::domain::correlation::Kind;
use crate::domain::health::Health;
use crate::domain::ids::{IncidentId, MachineId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    Open,
    /// No machine shows the failure any more.
    Resolved,
}

crate::domain::text_enum!(IncidentState { Open = "open", Resolved = "resolved" });

/// How a machine takes part in an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// At fault: its own agent reports the root cause; a fix is rolled out to these.
    Source,
    /// Suffers from it (a client that cannot connect).
    Affected,
}

crate::domain::text_enum!(Relation { Source = "source", Affected = "affected" });

/// An incident as stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Incident {
    pub id: IncidentId,
    /// What makes two drafts the same incident (kind, scope, and what they are about).
    #[serde(rename = "incident_key")]
    pub key: String,
    pub kind: Kind,
    /// The host, gateway, site or machine it is about.
    pub scope: String,
    /// A cause id of the cause catalogue.
    pub root_cause: String,
    pub title: String,
    pub fix_id: Option<String>,
    pub state: IncidentState,
    pub opened_at: i64,
    pub resolved_at: Option<i64>,
    pub updated_at: i64,
    pub affected_count: i64,
    /// `{"failures": n, "chain": [link…]}`: the failures behind the verdict.
    pub evidence: serde_json::Value,
}

/// A machine of an incident.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IncidentMachine {
    pub machine_id: MachineId,
    pub hostname: String,
    pub site: Option<String>,
    pub relation: Relation,
    pub health: Health,
}

/// One step of an incident's history (opened, changed, resolved).
#[derive(Debug, Clone, serde::Serialize)]
pub struct IncidentEvent {
    pub at: i64,
    pub event: String,
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_relations_round_trip_as_text() {
        for s in IncidentState::ALL {
            assert_eq!(IncidentState::parse(s.as_str()), Some(s));
        }
        for r in Relation::ALL {
            assert_eq!(IncidentState::parse(r.as_str()), None);
            assert_eq!(Relation::parse(r.as_str()), Some(r));
        }
        assert_eq!(Relation::parse("Source"), None);
    }
}
