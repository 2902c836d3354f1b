//! The agent's credential, stored in the state directory at enrollment.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct Credential {
    pub server: String,
    pub machine_id: Uuid,
    pub agent_token: String,
    /// Pinned at enrollment (or taken from a rotation statement this key's predecessor signed):
    /// jobs must be signed by this key...
    pub job_signing_public_key: String,
    /// ...or by a key it replaced, until that key's grace period ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_signing_keys: Vec<PreviousKey>,
    /// The server's release key, pinned at enrollment: agent updates must be signed by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_public_key: Option<String>,
}

/// A job-signing key the server rotated out, accepted until `valid_until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousKey {
    pub key: String,
    #[serde(with = "time::serde::rfc3339")]
    pub valid_until: time::OffsetDateTime,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("server", &self.server)
            .field("machine_id", &self.machine_id)
            .field("agent_token", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("this agent is not enrolled (no {0}); run `rdpfleet-agent enroll --server URL --token TOKEN`")]
    NotEnrolled(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("credential file {0} is damaged; enroll again")]
    Damaged(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

pub fn path_in(state_dir: &Path) -> PathBuf {
    state_dir.join("credential.json")
}

impl Credential {
    pub fn load(state_dir: &Path) -> Result<Credential, CredentialError> {
        let path = path_in(state_dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(CredentialError::NotEnrolled(path)),
            Err(source) => return Err(CredentialError::Read { path, source }),
        };
        serde_json::from_str(&text).map_err(|_| CredentialError::Damaged(path))
    }

    pub fn save(&self, state_dir: &Path) -> Result<(), CredentialError> {
        let path = path_in(state_dir);
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| CredentialError::Write { path: path.clone(), source: e.into() })?;
        crate::fsutil::write_private(&path, &json).map_err(|source| CredentialError::Write { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_with_owner_only_permissions_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        assert!(matches!(Credential::load(&state), Err(CredentialError::NotEnrolled(_))));
        let c = Credential {
            server: "https://s".into(),
            machine_id: Uuid::new_v4(),
            agent_token: "rfa_secret".into(),
            job_signing_public_key: "k".into(),
            previous_signing_keys: vec![],
            release_public_key: None,
        };
        c.save(&state).unwrap();
        assert_eq!(Credential::load(&state).unwrap(), c);
        assert!(!format!("{c:?}").contains("rfa_secret"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path_in(&state)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(path_in(&state), "{").unwrap();
        assert!(matches!(Credential::load(&state), Err(CredentialError::Damaged(_))));
    }
}
