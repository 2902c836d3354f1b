//! Jobs: fixes the server queues for an agent, and the agent's answer.
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// A job as delivered to an agent. The signature covers every other field (see the server's
/// `signing` module); an agent must refuse a job whose signature, expiry or machine does not check out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Job {
    pub id: Uuid,
    pub machine_id: Uuid,
    /// Fix id from the fix catalogue, e.g. `host.nla.enable`.
    pub fix: String,
    /// `apply`, `dry_run` or `rollback`.
    pub action: JobAction,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub params: serde_json::Value,
    pub nonce: String,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires_at: OffsetDateTime,
    /// Base64 Ed25519 signature, absent for unsigned jobs (an agent refuses those).
    #[serde(default)]
    pub signature: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobAction {
    Apply,
    DryRun,
    Rollback,
}

impl JobAction {
    pub fn as_str(self) -> &'static str {
        match self {
            JobAction::Apply => "apply",
            JobAction::DryRun => "dry_run",
            JobAction::Rollback => "rollback",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [JobAction::Apply, JobAction::DryRun, JobAction::Rollback].into_iter().find(|a| a.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobPollResponse {
    /// Jobs leased to this agent; empty when the long poll timed out.
    pub jobs: Vec<Job>,
}

/// How a job ended on the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobOutcome {
    /// Applied and verified.
    Succeeded,
    /// Applied, verification failed, the backup was restored.
    RolledBack,
    /// Could not be applied (precondition not met, error); nothing changed.
    Failed,
    /// The agent would not act on it (bad signature, expired, wrong machine, unknown fix).
    Refused,
}

impl JobOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            JobOutcome::Succeeded => "succeeded",
            JobOutcome::RolledBack => "rolled_back",
            JobOutcome::Failed => "failed",
            JobOutcome::Refused => "refused",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct JobResultRequest {
    pub outcome: JobOutcome,
    pub message: String,
    /// Before/after evidence of what the fix changed.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub evidence: serde_json::Value,
}
