//! A single check result as the agent reports it.
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Outcome of one check against one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// The check ran and found nothing wrong.
    Pass,
    /// The check ran and found something that will become a problem (e.g. a certificate expiring soon).
    Warn,
    /// The check ran and found a problem.
    Fail,
    /// The check could not run (permission denied, unsupported platform, internal error).
    Error,
    /// The check was not run because an earlier layer failed ("not reached").
    Skipped,
}

impl CheckStatus {
    pub const ALL: [CheckStatus; 5] =
        [CheckStatus::Pass, CheckStatus::Warn, CheckStatus::Fail, CheckStatus::Error, CheckStatus::Skipped];

    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Pass => "pass",
            CheckStatus::Warn => "warn",
            CheckStatus::Fail => "fail",
            CheckStatus::Error => "error",
            CheckStatus::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Whether this status means something needs attention.
    pub fn is_problem(self) -> bool {
        matches!(self, CheckStatus::Warn | CheckStatus::Fail | CheckStatus::Error)
    }
}

impl std::fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Upper bounds the server enforces on a result; the agent truncates to them before sending.
pub const MAX_CHECK_ID_LEN: usize = 64;
pub const MAX_TARGET_LEN: usize = 255;
pub const MAX_SUMMARY_LEN: usize = 1024;

/// One check's result for one target (or for the machine itself when `target` is absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CheckResult {
    /// Stable check id from the catalogue, e.g. `net.dns`.
    #[cfg_attr(feature = "openapi", schema(example = "net.tcp", max_length = 64))]
    pub check: String,
    /// The RDP target (`host:port`) the check was run against, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(example = "rdp-host-01.corp.example:3389"))]
    pub target: Option<String>,
    pub status: CheckStatus,
    /// One line in plain words.
    pub summary: String,
    /// Id of the cause in the cause catalogue when the check found a problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Structured evidence (addresses, latencies, certificate fields ...).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub evidence: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub observed_at: OffsetDateTime,
    pub duration_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_its_name() {
        for s in CheckStatus::ALL {
            assert_eq!(CheckStatus::parse(s.as_str()), Some(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        assert_eq!(CheckStatus::parse("PASS"), None);
    }
}
