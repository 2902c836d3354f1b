//! A batch of check results.
use serde::{Deserialize, Serialize};

use crate::check::CheckResult;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    /// Per-agent sequence number, strictly increasing from 1. A report whose sequence is not
    /// above the last one accepted is acknowledged as a duplicate and not stored again, so an
    /// agent can safely retry a report whose answer it never saw. Gaps are allowed.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub seq: u64,
    /// Agent version at the time of the report (it can change after an upgrade).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    /// Reports this agent has dropped over its life (its outbox was full while the server was
    /// away, or the server refused them for good). The server keeps the highest value seen, so
    /// a gap in a machine's history is visible.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped_reports: u64,
    pub results: Vec<CheckResult>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportResponse {
    /// The sequence number acknowledged.
    pub seq: u64,
    /// True when this sequence had already been stored; nothing was written.
    pub duplicate: bool,
    /// Number of results stored.
    pub stored: u64,
    /// Number of results whose status differed from the previous one (new history rows).
    pub transitions: u64,
}
