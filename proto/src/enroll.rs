//! Enrollment: an agent trades a one-time enrollment token for its own credential.
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// What the machine is in RDP terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MachineRole {
    /// Connects to RDP hosts.
    #[default]
    Client,
    /// Accepts RDP connections.
    Host,
    Both,
}

impl MachineRole {
    pub fn as_str(self) -> &'static str {
        match self {
            MachineRole::Client => "client",
            MachineRole::Host => "host",
            MachineRole::Both => "both",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [MachineRole::Client, MachineRole::Host, MachineRole::Both].into_iter().find(|r| r.as_str() == s)
    }
}

pub const MAX_HOSTNAME_LEN: usize = 253;
pub const MAX_LABELS: usize = 32;
pub const MAX_LABEL_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The enrollment token an administrator created (`rfe_…`).
    pub token: String,
    pub hostname: String,
    pub role: MachineRole,
    /// Operating system family and version, e.g. `windows 10.0.22631` or `linux debian 12`.
    pub os: String,
    pub agent_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// Free-form labels, e.g. `["finance", "floor-3"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollResponse {
    pub machine_id: Uuid,
    /// Bearer token for every later call (`rfa_…`). Shown once; the server keeps only its hash.
    pub agent_token: String,
    /// The server's Ed25519 public key for job signatures, base64 (standard alphabet).
    /// The agent pins it at enrollment.
    pub job_signing_public_key: String,
    /// The server's Ed25519 public key for agent releases, base64: the agent pins it and
    /// installs only releases it signed. Absent from servers older than agent updates.
    #[serde(default)]
    pub release_signing_public_key: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub server_time: OffsetDateTime,
}
