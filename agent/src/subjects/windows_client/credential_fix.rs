//! Deletes the RDP client's saved credentials for one host (`TERMSRV/<host>`). The secret cannot
//! be read, so it cannot be put back: irreversible, and a rollout of it needs approval.
use serde_json::Value;

use crate::engine::backup::Saved;
use crate::engine::fix::{Backup, Fix, FixError, Verdict};
use crate::platform::Platform;
use crate::platform::credentials::TERMSRV_PREFIX;

pub struct DeleteTermsrvCredentials;

/// `{"target": "rdp01.corp.example"}`: a host name as saved by the client (no wildcard).
fn target(params: &Value) -> Result<String, FixError> {
    let obj = params.as_object().ok_or_else(|| FixError::Params("expected {\"target\": HOST}".into()))?;
    if obj.keys().any(|k| k != "target") {
        return Err(FixError::Params("only \"target\" is accepted".into()));
    }
    let t = obj.get("target").and_then(Value::as_str).map(str::trim).unwrap_or_default();
    if t.is_empty() || t.len() > 253 || t.contains(['*', '?', '/', '\\']) || t.chars().any(char::is_control) {
        return Err(FixError::Params("target must be one host name, without wildcards".into()));
    }
    Ok(format!("{TERMSRV_PREFIX}{t}"))
}

impl Fix for DeleteTermsrvCredentials {
    fn id(&self) -> &'static str {
        "client.credentials.delete"
    }
    fn verify(&self, p: &Platform, params: &Value) -> Result<Verdict, FixError> {
        let t = target(params)?;
        let found = p.credentials.list(&t)?.into_iter().any(|c| c.target.eq_ignore_ascii_case(&t));
        Ok(Verdict {
            ok: !found,
            detail: if found { format!("{t} is saved") } else { format!("no saved credentials for {t}") },
        })
    }
    fn backup(&self, p: &Platform, params: &Value) -> Result<Backup, FixError> {
        let t = target(params)?;
        let saved = p
            .credentials
            .list(&t)?
            .into_iter()
            .filter(|c| c.target.eq_ignore_ascii_case(&t))
            .map(|c| Saved::Irreversible { what: format!("credential {} for user {}", c.target, c.user) })
            .collect();
        Ok(Backup { saved })
    }
    fn apply(&self, p: &Platform, params: &Value) -> Result<(), FixError> {
        Ok(p.credentials.delete(&target(params)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fix::{FixOutcome, run};
    use crate::platform::credentials::SavedCredential;
    use crate::platform::memory::MemoryPlatform;
    use serde_json::json;

    fn saved(target: &str) -> SavedCredential {
        SavedCredential { target: target.into(), user: "CORP\\alice".into(), last_written: Some(1) }
    }

    #[test]
    fn deletes_only_the_named_host_and_records_what_cannot_come_back() {
        let m = MemoryPlatform::new();
        *m.credentials.saved.lock().unwrap() =
            vec![saved("TERMSRV/rdp01.corp.example"), saved("TERMSRV/rdp01.corp.example.evil"), saved("git:x")];
        let p = m.platform();
        let params = json!({"target": "RDP01.corp.example"});
        let dry = run(&DeleteTermsrvCredentials, &p, &params, true);
        assert_eq!(dry.outcome, FixOutcome::WouldChange);
        assert!(!dry.backup.reversible());
        let r = run(&DeleteTermsrvCredentials, &p, &params, false);
        assert_eq!(r.outcome, FixOutcome::Succeeded, "{r:?}");
        let left: Vec<String> = m.credentials.saved.lock().unwrap().iter().map(|c| c.target.clone()).collect();
        assert_eq!(left, vec!["TERMSRV/rdp01.corp.example.evil", "git:x"]);
        assert!(r.backup.restore(&p).is_err(), "an irreversible change says so instead of pretending");
        assert_eq!(run(&DeleteTermsrvCredentials, &p, &params, false).outcome, FixOutcome::AlreadyCompliant);
    }

    #[test]
    fn parameters_are_one_plain_host() {
        let p = MemoryPlatform::new().platform();
        for bad in [json!({}), json!({"target": ""}), json!({"target": "*"}), json!({"target": "a", "b": 1}), json!(3)]
        {
            assert_eq!(run(&DeleteTermsrvCredentials, &p, &bad, false).outcome, FixOutcome::Failed, "{bad}");
        }
        let info = crate::engine::fix::info(&DeleteTermsrvCredentials).unwrap();
        assert!(info.needs_approval() && info.irreversible());
    }
}
