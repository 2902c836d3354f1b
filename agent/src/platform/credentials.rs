//! Saved Windows credentials (Credential Manager) of the account the agent runs as. The RDP
//! client keeps one per host as `TERMSRV/<host>`; the secret itself is never read.
use serde::Serialize;

use super::{PlatformError, PlatformResult};

pub const TERMSRV_PREFIX: &str = "TERMSRV/";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SavedCredential {
    pub target: String,
    pub user: String,
    /// Unix seconds of the last change, when known.
    pub last_written: Option<i64>,
}

pub trait Credentials: Send + Sync {
    /// Credentials whose target starts with `prefix` (case-insensitive).
    fn list(&self, prefix: &str) -> PlatformResult<Vec<SavedCredential>>;
    /// Deleting a missing credential is not an error.
    fn delete(&self, target: &str) -> PlatformResult<()>;
}

/// Where there is no Credential Manager.
pub struct NoCredentials;

impl Credentials for NoCredentials {
    fn list(&self, _: &str) -> PlatformResult<Vec<SavedCredential>> {
        Err(PlatformError::Unsupported("credential manager"))
    }
    fn delete(&self, _: &str) -> PlatformResult<()> {
        Err(PlatformError::Unsupported("credential manager"))
    }
}
