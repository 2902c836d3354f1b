//! The one way every fix runs: precondition, backup of exactly what it
//! changes, apply, verify by re-evaluating its check, and automatic rollback when it does not
//! verify. A fix whose check already passes changes nothing (re-running is safe).
use serde::Serialize;

use crate::platform::{Platform, PlatformError};

pub use crate::engine::backup::Backup;

#[derive(Debug, thiserror::Error)]
pub enum FixError {
    /// The fix must not run here (e.g. the value is managed by Group Policy).
    #[error("precondition not met: {0}")]
    Precondition(String),
    #[error("invalid parameters: {0}")]
    Params(String),
    #[error(transparent)]
    Platform(#[from] PlatformError),
}

/// Whether the state a fix brings about is in place, and why (the fix's check).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub ok: bool,
    pub detail: String,
}

pub trait Fix: Send + Sync {
    /// Its id in the shared fix catalogue (`rdpfleet_proto::fixes`), which holds its title and
    /// risk once for the agent and the server.
    fn id(&self) -> &'static str;
    /// Evaluates the state with the same code as the fix's check.
    fn verify(&self, p: &Platform, params: &serde_json::Value) -> Result<Verdict, FixError>;
    fn precondition(&self, _p: &Platform, _params: &serde_json::Value) -> Result<(), FixError> {
        Ok(())
    }
    /// Records exactly what `apply` will change.
    fn backup(&self, p: &Platform, params: &serde_json::Value) -> Result<Backup, FixError>;
    fn apply(&self, p: &Platform, params: &serde_json::Value) -> Result<(), FixError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FixOutcome {
    /// Applied and verified.
    Succeeded,
    /// Nothing to do: the check already passed.
    AlreadyCompliant,
    /// A dry run: nothing changed; `backup` lists what would be.
    WouldChange,
    /// Applied but did not verify (or failed half-way); the backup was restored.
    RolledBack,
    /// Not applied (precondition, parameters, backup failed), or the rollback itself failed.
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct FixReport {
    pub fix: &'static str,
    pub outcome: FixOutcome,
    pub message: String,
    pub before: Option<Verdict>,
    pub after: Option<Verdict>,
    pub backup: Backup,
}

/// A fix's entry in the shared catalogue: title, risk, approval, reversibility.
pub fn info(fix: &dyn Fix) -> Option<&'static rdpfleet_proto::fixes::FixInfo> {
    rdpfleet_proto::fixes::lookup(fix.id())
}

/// Runs a fix end to end. `dry_run` stops after the backup.
pub fn run(fix: &dyn Fix, p: &Platform, params: &serde_json::Value, dry_run: bool) -> FixReport {
    let id = fix.id();
    let report = |outcome, message: String, before, after, backup| FixReport {
        fix: id,
        outcome,
        message,
        before,
        after,
        backup,
    };
    let before = match fix.verify(p, params) {
        Ok(v) => v,
        Err(e) => return report(FixOutcome::Failed, format!("cannot evaluate: {e}"), None, None, Backup::default()),
    };
    if before.ok {
        return report(
            FixOutcome::AlreadyCompliant,
            "already in the desired state; nothing changed".into(),
            Some(before),
            None,
            Backup::default(),
        );
    }
    if let Err(e) = fix.precondition(p, params) {
        return report(FixOutcome::Failed, e.to_string(), Some(before), None, Backup::default());
    }
    let backup = match fix.backup(p, params) {
        Ok(b) => b,
        Err(e) => {
            return report(
                FixOutcome::Failed,
                format!("backup failed, nothing changed: {e}"),
                Some(before),
                None,
                Backup::default(),
            );
        }
    };
    if dry_run {
        return report(
            FixOutcome::WouldChange,
            format!("would change {} item(s)", backup.saved.len()),
            Some(before),
            None,
            backup,
        );
    }
    let applied = fix.apply(p, params);
    let after = applied.as_ref().ok().map(|()| fix.verify(p, params));
    match (applied, after) {
        (Ok(()), Some(Ok(after))) if after.ok => {
            report(FixOutcome::Succeeded, "applied and verified".into(), Some(before), Some(after), backup)
        }
        (applied, after) => {
            let why = match (&applied, &after) {
                (Err(e), _) => format!("apply failed: {e}"),
                (_, Some(Ok(v))) => format!("did not verify: {}", v.detail),
                (_, Some(Err(e))) => format!("cannot verify: {e}"),
                _ => "did not verify".to_owned(),
            };
            let after = after.and_then(Result::ok);
            match backup.restore(p) {
                Ok(()) => report(
                    FixOutcome::RolledBack,
                    format!("{why}; the previous state was restored"),
                    Some(before),
                    after,
                    backup,
                ),
                Err(e) => {
                    report(FixOutcome::Failed, format!("{why}; RESTORE FAILED: {e}"), Some(before), after, backup)
                }
            }
        }
    }
}

/// Parameter check for fixes that take none (`null` or `{}`).
pub(crate) fn no_params(params: &serde_json::Value) -> Result<(), FixError> {
    match params {
        serde_json::Value::Null => Ok(()),
        serde_json::Value::Object(m) if m.is_empty() => Ok(()),
        _ => Err(FixError::Params("this fix takes no parameters".into())),
    }
}
