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
    /// Every rotation of the server's job-signing key, oldest first: an agent follows them from
    /// the key it pinned, each checked with the key it replaces, before it looks at the jobs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_rotations: Vec<KeyRotation>,
    /// Every rotation of the server's release key, oldest first, each signed by the release key
    /// it replaces (over [`KeyRotation::release_signing_payload`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub release_key_rotations: Vec<KeyRotation>,
}

/// A statement, signed by the job-signing key being replaced, that jobs are signed by `new_key`
/// from now on and that `old_key` stays valid for jobs until `old_key_valid_until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct KeyRotation {
    /// Base64 Ed25519 public keys.
    pub old_key: String,
    pub new_key: String,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub issued_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub old_key_valid_until: OffsetDateTime,
    /// Base64 Ed25519 signature by `old_key` over [`KeyRotation::signing_payload`].
    pub signature: String,
}

impl KeyRotation {
    /// The bytes the old key signs: every other field, in a fixed text form (whole seconds).
    pub fn signing_payload(&self) -> Vec<u8> {
        self.payload("rdpfleet-key-rotation-v1")
    }

    /// The same for a rotation of the release key: another prefix, so that a statement made for
    /// one key can never be taken for the other.
    pub fn release_signing_payload(&self) -> Vec<u8> {
        self.payload("rdpfleet-release-key-rotation-v1")
    }

    fn payload(&self, prefix: &str) -> Vec<u8> {
        format!(
            "{prefix}\n{}\n{}\n{}\n{}\n",
            self.old_key.trim(),
            self.new_key.trim(),
            self.issued_at.unix_timestamp(),
            self.old_key_valid_until.unix_timestamp()
        )
        .into_bytes()
    }
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

/// JSON with object keys sorted at every level, so the signer and the verifier produce the same
/// bytes whatever map type their serde_json build uses.
pub fn canonical_json(v: &serde_json::Value) -> String {
    fn write(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String(k.clone()).to_string());
                    out.push(':');
                    write(&m[k], out);
                }
                out.push('}');
            }
            serde_json::Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(v, &mut out);
    out
}

impl Job {
    /// The bytes the server signs and the agent verifies: every field but the signature, one per
    /// line, under a version tag (so a signature can never be replayed as another message type).
    pub fn signing_payload(&self) -> Vec<u8> {
        format!(
            "rdpfleet-job-v1\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.id,
            self.machine_id,
            self.fix,
            self.action.as_str(),
            canonical_json(&self.params),
            self.nonce,
            self.expires_at.unix_timestamp()
        )
        .into_bytes()
    }
}

#[cfg(test)]
mod signing_tests {
    use super::*;

    #[test]
    fn payload_is_canonical_and_covers_every_field() {
        let job = Job {
            id: Uuid::nil(),
            machine_id: Uuid::nil(),
            fix: "host.nla.enable".into(),
            action: JobAction::Apply,
            params: serde_json::json!({"b": [1, {"z": 1, "a": 2}], "a": "x"}),
            nonce: "n".into(),
            expires_at: OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
            signature: Some("ignored".into()),
        };
        let p = String::from_utf8(job.signing_payload()).unwrap();
        assert!(p.ends_with("\n{\"a\":\"x\",\"b\":[1,{\"a\":2,\"z\":1}]}\nn\n1700000000"), "{p}");
        let mut other = job.clone();
        other.signature = None;
        assert_eq!(other.signing_payload(), job.signing_payload(), "the signature is not signed");
        for change in [
            |j: &mut Job| j.fix = "host.rdp.enable".into(),
            |j: &mut Job| j.action = JobAction::Rollback,
            |j: &mut Job| j.nonce = "m".into(),
            |j: &mut Job| j.params = serde_json::json!({"a": "y"}),
            |j: &mut Job| j.machine_id = Uuid::max(),
        ] {
            let mut j = job.clone();
            change(&mut j);
            assert_ne!(j.signing_payload(), job.signing_payload());
        }
    }
}
