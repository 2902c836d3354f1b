//! The fleet's machines as people look for them: the filters of the Machines page and the API.
use rdpfleet_proto::enroll::MachineRole;

use crate::domain::health::Health;
use crate::domain::ids::MachineId;
use crate::domain::{DomainError, DomainResult};

/// A machine as the fleet-wide lists show it (serialized as the exports write it).
#[derive(Debug, Clone, serde::Serialize)]
pub struct MachineSummary {
    pub id: MachineId,
    pub hostname: String,
    pub role: MachineRole,
    pub site: Option<String>,
    pub os: String,
    pub agent_version: String,
    /// The worst status of its current results.
    pub health: Health,
    /// How many of its checks fail.
    pub failing: i64,
    pub last_seen_at: i64,
}

/// Filters of the Machines page; every field optional.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(default, deny_unknown_fields)]
pub struct MachineFilter {
    /// Host name prefix (case-insensitive).
    pub q: Option<String>,
    pub role: Option<String>,
    pub site: Option<String>,
    /// Health: pass, warn, fail, error, unknown.
    pub status: Option<String>,
    /// Only machines where this check fails or warns.
    pub check: Option<String>,
    /// Only clients whose path toward this host (the name they use) fails or warns.
    pub toward: Option<String>,
    /// Only machines whose agent reports this version.
    pub version: Option<String>,
    /// hostname (default), last_seen, failing, site.
    pub sort: Option<String>,
    pub page: Option<u32>,
}

/// A machine on which a check fails or warns, and since when.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckFinding {
    pub machine_id: MachineId,
    pub hostname: String,
    pub site: Option<String>,
    pub target: String,
    pub status: rdpfleet_proto::check::CheckStatus,
    pub cause: Option<String>,
    pub summary: String,
    pub status_since: i64,
}

/// A machine's current result of one check for one target.
#[derive(Debug, Clone)]
pub struct CurrentResult {
    pub check_id: String,
    /// Empty for checks without a target.
    pub target: String,
    pub status: rdpfleet_proto::check::CheckStatus,
    pub summary: String,
    pub cause: Option<String>,
    /// What the check saw (for `rdp.path`, a `Diagnosis`).
    pub evidence: serde_json::Value,
    pub observed_at: i64,
    pub duration_ms: i64,
    /// When the current status began.
    pub status_since: i64,
}

/// A change of a check's status on a machine (its history).
#[derive(Debug, Clone)]
pub struct StatusChange {
    pub id: i64,
    pub check_id: String,
    pub target: String,
    /// None for the first result of a check.
    pub from: Option<rdpfleet_proto::check::CheckStatus>,
    pub to: rdpfleet_proto::check::CheckStatus,
    pub cause: Option<String>,
    pub summary: String,
    pub at: i64,
}

impl MachineFilter {
    /// Rejects values outside their sets: the page would show nothing and hide the typo.
    pub fn validate(&self) -> DomainResult<()> {
        let check = |v: &Option<String>, allowed: &[&str], what: &str| match v.as_deref() {
            Some(x) if !x.is_empty() && !allowed.contains(&x) => {
                Err(DomainError::Invalid(format!("unknown {what} {x:?}")))
            }
            _ => Ok(()),
        };
        check(&self.role, &["client", "host", "both"], "role")?;
        let healths: Vec<&str> = crate::domain::health::Health::ALL.iter().map(|h| h.as_str()).collect();
        check(&self.status, &healths, "status")?;
        check(&self.sort, &["hostname", "last_seen", "failing", "site"], "sort")?;
        if self.q.as_deref().is_some_and(|q| q.len() > 253)
            || self.check.as_deref().is_some_and(|c| c.len() > 64)
            || self.toward.as_deref().is_some_and(|t| t.len() > 253)
            || self.version.as_deref().is_some_and(|v| v.len() > 64)
        {
            return Err(DomainError::Invalid("search text too long".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::MachineFilter;

    #[test]
    fn filters_outside_their_sets_are_refused() {
        assert!(MachineFilter::default().validate().is_ok());
        let ok = MachineFilter { status: Some("warn".into()), role: Some("host".into()), ..Default::default() };
        assert!(ok.validate().is_ok());
        let typo = MachineFilter { status: Some("failing".into()), ..Default::default() };
        assert_eq!(typo.validate().unwrap_err().to_string(), "unknown status \"failing\"");
        let long = MachineFilter { q: Some("x".repeat(254)), ..Default::default() };
        assert!(long.validate().is_err());
    }
}
