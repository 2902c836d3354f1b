//! Fixes that set registry values (DOMAIN: Windows state, fixes and their undo). Each names the
//! values it owns, what "compliant" means for each, and the Group Policy value that overrides
//! it: a policy-managed value is reported, never overwritten.
use serde_json::Value;

use crate::engine::fix::{Backup, Fix, FixError, Verdict, no_params};
use crate::platform::{Platform, PlatformResult, RegValue};

pub use crate::platform::registry::TS_KEY;
pub const RDP_TCP_KEY: &str = r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp";
pub const TS_POLICY_KEY: &str = r"HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services";
pub const SCHANNEL_PROTOCOLS: &str = r"HKLM\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols";
pub const MSLICENSING_KEY: &str = r"HKLM\SOFTWARE\Microsoft\MSLicensing";

/// What a DWORD must be for the setting to be compliant.
#[derive(Debug, Clone, Copy)]
pub enum Want {
    /// Exactly this value; an absent value is not compliant.
    Is(u32),
    /// Anything but this value; absent (the OS default) is compliant.
    IsNot(u32),
}

#[derive(Debug, Clone)]
pub struct Setting {
    pub key: String,
    pub name: &'static str,
    pub want: Want,
    /// The value written by the fix.
    pub write: u32,
    /// Group Policy value that overrides the local one, if any.
    pub policy: Option<(&'static str, &'static str)>,
}

/// The value in force, and whether a policy set it.
pub fn effective(p: &Platform, s: &Setting) -> PlatformResult<(Option<u32>, bool)> {
    if let Some((key, name)) = s.policy {
        if let Some(v) = p.registry.get(key, name)? {
            return Ok((v.as_dword(), true));
        }
    }
    Ok((p.registry.get(&s.key, s.name)?.and_then(|v| v.as_dword()), false))
}

fn complies(want: Want, v: Option<u32>) -> bool {
    match want {
        Want::Is(x) => v == Some(x),
        Want::IsNot(x) => v != Some(x),
    }
}

fn describe(v: Option<u32>) -> String {
    v.map_or("absent".to_owned(), |v| v.to_string())
}

/// Evaluates every setting: compliant when all are.
pub fn evaluate(p: &Platform, settings: &[Setting]) -> PlatformResult<Verdict> {
    let mut problems = Vec::new();
    for s in settings {
        let (v, by_policy) = effective(p, s)?;
        if !complies(s.want, v) {
            problems.push(format!(
                "{}\\{} is {}{}",
                s.key,
                s.name,
                describe(v),
                if by_policy { " (set by Group Policy)" } else { "" }
            ));
        }
    }
    Ok(Verdict {
        ok: problems.is_empty(),
        detail: if problems.is_empty() { "compliant".into() } else { problems.join("; ") },
    })
}

pub struct RegistryFix {
    pub id: &'static str,
    pub settings: fn(&Value) -> Result<Vec<Setting>, FixError>,
}

impl Fix for RegistryFix {
    fn id(&self) -> &'static str {
        self.id
    }

    fn verify(&self, p: &Platform, params: &Value) -> Result<Verdict, FixError> {
        Ok(evaluate(p, &(self.settings)(params)?)?)
    }

    fn precondition(&self, p: &Platform, params: &Value) -> Result<(), FixError> {
        for s in (self.settings)(params)? {
            if let (v, true) = effective(p, &s)? {
                if !complies(s.want, v) {
                    let (key, name) = s.policy.unwrap_or_default();
                    return Err(FixError::Precondition(format!(
                        "{key}\\{name} = {} is set by Group Policy; change the policy, not the machine",
                        describe(v)
                    )));
                }
            }
        }
        Ok(())
    }

    fn backup(&self, p: &Platform, params: &Value) -> Result<Backup, FixError> {
        let mut b = Backup::default();
        for s in (self.settings)(params)? {
            b.registry_value(p, &s.key, s.name)?;
        }
        Ok(b)
    }

    fn apply(&self, p: &Platform, params: &Value) -> Result<(), FixError> {
        for s in (self.settings)(params)? {
            if !complies(s.want, effective(p, &s)?.0) {
                p.registry.set(&s.key, s.name, &RegValue::Dword(s.write))?;
            }
        }
        Ok(())
    }
}

pub fn rdp_enabled(params: &Value) -> Result<Vec<Setting>, FixError> {
    no_params(params)?;
    Ok(vec![Setting {
        key: TS_KEY.into(),
        name: "fDenyTSConnections",
        want: Want::Is(0),
        write: 0,
        policy: Some((TS_POLICY_KEY, "fDenyTSConnections")),
    }])
}

pub fn nla_enabled(params: &Value) -> Result<Vec<Setting>, FixError> {
    no_params(params)?;
    Ok(vec![Setting {
        key: RDP_TCP_KEY.into(),
        name: "UserAuthentication",
        want: Want::Is(1),
        write: 1,
        policy: Some((TS_POLICY_KEY, "UserAuthentication")),
    }])
}

/// `{"level": 1}` (negotiate) or `{"level": 2}` (TLS, the default). Level 0 (RDP security) is
/// refused: it is the problem this fix exists to remove.
pub fn security_layer(params: &Value) -> Result<Vec<Setting>, FixError> {
    let level = match params.get("level") {
        None => 2,
        Some(v) => match v.as_u64() {
            Some(l @ (1 | 2)) => l as u32,
            _ => return Err(FixError::Params("level must be 1 (negotiate) or 2 (TLS)".into())),
        },
    };
    if params.as_object().is_some_and(|m| m.keys().any(|k| k != "level")) {
        return Err(FixError::Params("only \"level\" is accepted".into()));
    }
    Ok(vec![Setting {
        key: RDP_TCP_KEY.into(),
        name: "SecurityLayer",
        want: Want::Is(level),
        write: level,
        policy: Some((TS_POLICY_KEY, "SecurityLayer")),
    }])
}

/// TLS 1.2 for both Schannel roles: `Enabled` not 0 and `DisabledByDefault` not 1.
pub fn tls12_enabled(params: &Value) -> Result<Vec<Setting>, FixError> {
    no_params(params)?;
    Ok(["Server", "Client"].into_iter().flat_map(tls12_role).collect())
}

/// TLS 1.2 for one Schannel role (`Server` or `Client`).
pub fn tls12_role(role: &str) -> Vec<Setting> {
    let key = format!(r"{SCHANNEL_PROTOCOLS}\TLS 1.2\{role}");
    vec![
        Setting { key: key.clone(), name: "Enabled", want: Want::IsNot(0), write: 1, policy: None },
        Setting { key, name: "DisabledByDefault", want: Want::IsNot(1), write: 0, policy: None },
    ]
}

/// Clears the client's MSLicensing cache (Windows rebuilds it at the next connection). The
/// whole tree is exported first and re-imported on rollback.
pub struct ClearMsLicensing;

impl Fix for ClearMsLicensing {
    fn id(&self) -> &'static str {
        "client.mslicensing.clear"
    }
    fn verify(&self, p: &Platform, params: &Value) -> Result<Verdict, FixError> {
        no_params(params)?;
        let present = p.registry.key_exists(&format!(r"{MSLICENSING_KEY}\Store"))?
            || p.registry.key_exists(&format!(r"{MSLICENSING_KEY}\HardwareID"))?;
        Ok(Verdict {
            ok: !present,
            detail: if present { "a licensing cache is present".into() } else { "no licensing cache".into() },
        })
    }
    fn backup(&self, p: &Platform, _: &Value) -> Result<Backup, FixError> {
        let mut b = Backup::default();
        b.registry_tree(p, MSLICENSING_KEY)?;
        Ok(b)
    }
    fn apply(&self, p: &Platform, _: &Value) -> Result<(), FixError> {
        Ok(p.registry.delete_tree(MSLICENSING_KEY)?)
    }
}

pub fn all() -> Vec<Box<dyn Fix>> {
    // Titles and risk (approval, reversibility) are the shared catalogue's: `rdpfleet_proto::fixes`.
    let fix = |id, settings| -> Box<dyn Fix> { Box::new(RegistryFix { id, settings }) };
    vec![
        fix("host.rdp.enable", rdp_enabled),
        fix("host.nla.enable", nla_enabled),
        fix("host.security_layer.set", security_layer),
        fix("host.tls12.enable", tls12_enabled),
        Box::new(ClearMsLicensing),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fix::{FixOutcome, run};
    use crate::platform::memory::MemoryPlatform;
    use crate::subjects::find_fix;
    use serde_json::json;

    fn windows_host() -> MemoryPlatform {
        let m = MemoryPlatform::new();
        let p = m.platform();
        p.registry.set(TS_KEY, "fDenyTSConnections", &RegValue::Dword(1)).unwrap();
        p.registry.set(RDP_TCP_KEY, "UserAuthentication", &RegValue::Dword(0)).unwrap();
        p.registry.set(RDP_TCP_KEY, "SecurityLayer", &RegValue::Dword(0)).unwrap();
        m
    }

    #[test]
    fn each_registry_fix_applies_verifies_and_is_idempotent() {
        for (id, params) in [
            ("host.rdp.enable", json!({})),
            ("host.nla.enable", json!(null)),
            ("host.security_layer.set", json!({"level": 2})),
            ("host.tls12.enable", json!({})),
        ] {
            let m = windows_host();
            let p = m.platform();
            if id == "host.tls12.enable" {
                p.registry
                    .set(&format!(r"{SCHANNEL_PROTOCOLS}\TLS 1.2\Server"), "Enabled", &RegValue::Dword(0))
                    .unwrap();
            }
            let fix = find_fix(id).unwrap();
            let r = run(fix.as_ref(), &p, &params, false);
            assert_eq!(r.outcome, FixOutcome::Succeeded, "{id}: {r:?}");
            assert!(r.after.as_ref().unwrap().ok);
            let again = run(fix.as_ref(), &p, &params, false);
            assert_eq!(again.outcome, FixOutcome::AlreadyCompliant, "{id} is idempotent");
        }
    }

    #[test]
    fn tls12_fix_creates_missing_keys_and_rollback_removes_them_exactly() {
        let m = windows_host();
        let p = m.platform();
        p.registry
            .set(&format!(r"{SCHANNEL_PROTOCOLS}\TLS 1.2\Client"), "DisabledByDefault", &RegValue::Dword(1))
            .unwrap();
        let before = m.registry.snapshot();
        let fix = find_fix("host.tls12.enable").unwrap();
        let backup = fix.backup(&p, &json!({})).unwrap();
        fix.apply(&p, &json!({})).unwrap();
        assert!(fix.verify(&p, &json!({})).unwrap().ok);
        let client = format!(r"{SCHANNEL_PROTOCOLS}\TLS 1.2\Client");
        assert_eq!(p.registry.get(&client, "DisabledByDefault").unwrap(), Some(RegValue::Dword(0)));
        assert!(
            !p.registry.key_exists(&format!(r"{SCHANNEL_PROTOCOLS}\TLS 1.2\Server")).unwrap(),
            "absent values are the OS default: left alone"
        );
        backup.restore(&p).unwrap();
        assert_eq!(m.registry.snapshot(), before, "the Client value restored, nothing else touched");
    }

    #[test]
    fn verification_failure_rolls_back_to_the_original_state() {
        /// Writes succeed but read back wrong: the fix cannot verify.
        struct Sabotaged;
        impl Fix for Sabotaged {
            fn id(&self) -> &'static str {
                "test.sabotaged"
            }
            fn verify(&self, p: &Platform, _: &Value) -> Result<Verdict, FixError> {
                Ok(evaluate(p, &nla_enabled(&json!({}))?)?)
            }
            fn backup(&self, p: &Platform, v: &Value) -> Result<Backup, FixError> {
                let mut b = Backup::default();
                b.registry_value(p, RDP_TCP_KEY, "UserAuthentication")?;
                b.registry_value(p, r"HKLM\SOFTWARE\rdpfleet\new\deep", "Marker")?;
                let _ = v;
                Ok(b)
            }
            fn apply(&self, p: &Platform, _: &Value) -> Result<(), FixError> {
                p.registry.set(RDP_TCP_KEY, "UserAuthentication", &RegValue::Dword(7))?;
                p.registry.set(r"HKLM\SOFTWARE\rdpfleet\new\deep", "Marker", &RegValue::Dword(1))?;
                Ok(())
            }
        }
        let m = windows_host();
        let p = m.platform();
        let before = m.registry.snapshot();
        let r = run(&Sabotaged, &p, &json!({}), false);
        assert_eq!(r.outcome, FixOutcome::RolledBack, "{r:?}");
        assert!(r.message.contains("did not verify"));
        assert_eq!(
            m.registry.snapshot(),
            before,
            "values and keys exactly as before, including keys that did not exist"
        );
    }

    #[test]
    fn a_failed_apply_is_rolled_back_too() {
        let m = windows_host();
        let p = m.platform();
        p.registry.set(&format!(r"{SCHANNEL_PROTOCOLS}\TLS 1.2\Server"), "Enabled", &RegValue::Dword(0)).unwrap();
        p.registry.set(&format!(r"{SCHANNEL_PROTOCOLS}\TLS 1.2\Client"), "Enabled", &RegValue::Dword(0)).unwrap();
        let before = m.registry.snapshot();
        let r = run(find_fix("host.tls12.enable").unwrap().as_ref(), &p, &json!({}), true);
        assert_eq!(r.outcome, FixOutcome::WouldChange, "a dry run changes nothing");
        assert_eq!(m.registry.snapshot(), before);
        // The Server half is written, then the Client half is refused.
        m.registry
            .deny_writes_under
            .lock()
            .unwrap()
            .insert(format!(r"{SCHANNEL_PROTOCOLS}\TLS 1.2\Client").to_lowercase());
        let r = run(find_fix("host.tls12.enable").unwrap().as_ref(), &p, &json!({}), false);
        assert_eq!(r.outcome, FixOutcome::RolledBack, "{r:?}");
        assert!(r.message.contains("apply failed"), "{}", r.message);
        assert_eq!(m.registry.snapshot(), before, "the Server half that was written is undone");
    }

    #[test]
    fn group_policy_values_are_reported_never_overwritten() {
        let m = windows_host();
        let p = m.platform();
        p.registry.set(TS_POLICY_KEY, "fDenyTSConnections", &RegValue::Dword(1)).unwrap();
        p.registry.set(TS_KEY, "fDenyTSConnections", &RegValue::Dword(0)).unwrap();
        let fix = find_fix("host.rdp.enable").unwrap();
        let v = fix.verify(&p, &json!({})).unwrap();
        assert!(!v.ok && v.detail.contains("Group Policy"), "the policy value is what counts: {v:?}");
        let before = m.registry.snapshot();
        let r = run(fix.as_ref(), &p, &json!({}), false);
        assert_eq!(r.outcome, FixOutcome::Failed);
        assert!(r.message.contains("Group Policy"), "{}", r.message);
        assert_eq!(m.registry.snapshot(), before);
    }

    #[test]
    fn security_layer_parameters_are_validated() {
        let fix = find_fix("host.security_layer.set").unwrap();
        let m = windows_host();
        for bad in [json!({"level": 0}), json!({"level": 3}), json!({"level": "2"}), json!({"level": 2, "x": 1})] {
            let r = run(fix.as_ref(), &m.platform(), &bad, false);
            assert_eq!(r.outcome, FixOutcome::Failed, "{bad}");
        }
        let r = run(fix.as_ref(), &m.platform(), &json!({"level": 1}), false);
        assert_eq!(r.outcome, FixOutcome::Succeeded);
        assert_eq!(m.platform().registry.get(RDP_TCP_KEY, "SecurityLayer").unwrap(), Some(RegValue::Dword(1)));
    }

    #[test]
    fn mslicensing_is_exported_cleared_and_restorable() {
        let m = MemoryPlatform::new();
        let p = m.platform();
        p.registry
            .set(&format!(r"{MSLICENSING_KEY}\HardwareID"), "ClientHWID", &RegValue::Binary(vec![1, 2, 3]))
            .unwrap();
        p.registry.create_key(&format!(r"{MSLICENSING_KEY}\Store\LICENSE000")).unwrap();
        let before = m.registry.snapshot();
        let fix = ClearMsLicensing;
        let backup = fix.backup(&p, &json!({})).unwrap();
        let r = run(&fix, &p, &json!({}), false);
        assert_eq!(r.outcome, FixOutcome::Succeeded);
        assert!(!p.registry.key_exists(MSLICENSING_KEY).unwrap());
        backup.restore(&p).unwrap();
        assert_eq!(m.registry.snapshot(), before, "the export restores the tree, empty keys included");
    }
}

/// The same fixes against the real registry (Windows, or Wine in CI): one test, in sequence,
/// because the registry is shared by every thread of the test process.
#[cfg(all(test, windows))]
#[allow(clippy::unwrap_used)] // clippy's test exemption only recognises a plain #[cfg(test)]
mod native_registry {
    use super::*;
    use crate::engine::fix::{FixOutcome, run};
    use crate::platform::registry::Registry;
    use crate::platform::windows::registry::WindowsRegistry;
    use crate::subjects::find_fix;
    use serde_json::json;
    use std::sync::Arc;

    fn native() -> Platform {
        let mut p = Platform::native();
        p.registry = Arc::new(WindowsRegistry);
        p
    }

    fn tree(p: &Platform, key: &str) -> Option<Vec<(String, String, Option<RegValue>)>> {
        p.registry.key_exists(key).unwrap().then(|| p.registry.export_tree(key).unwrap())
    }

    #[test]
    fn native_registry_fixes_apply_verify_and_roll_back_exactly() {
        let p = native();
        let reg = WindowsRegistry;

        // Value types round-trip.
        let scratch = format!(r"HKLM\SOFTWARE\rdpfleet-test-{}", uuid::Uuid::new_v4().simple());
        for (name, v) in [
            ("d", RegValue::Dword(7)),
            ("q", RegValue::Qword(1 << 40)),
            ("s", RegValue::String("héllo".into())),
            ("m", RegValue::MultiString(vec!["a".into(), "b".into()])),
            ("b", RegValue::Binary(vec![0, 1, 2])),
        ] {
            reg.set(&format!(r"{scratch}\sub"), name, &v).unwrap();
            assert_eq!(reg.get(&format!(r"{scratch}\sub"), name).unwrap(), Some(v));
        }
        assert_eq!(reg.get(&scratch, "absent").unwrap(), None);
        reg.delete_tree(&scratch).unwrap();
        assert!(!reg.key_exists(&scratch).unwrap());

        // RDP enable: applies, verifies, idempotent; the policy guard holds on the real registry.
        p.registry.set(TS_KEY, "fDenyTSConnections", &RegValue::Dword(1)).unwrap();
        let fix = find_fix("host.rdp.enable").unwrap();
        let r = run(fix.as_ref(), &p, &json!({}), false);
        assert_eq!(r.outcome, FixOutcome::Succeeded, "{r:?}");
        assert_eq!(p.registry.get(TS_KEY, "fDenyTSConnections").unwrap(), Some(RegValue::Dword(0)));
        assert_eq!(run(fix.as_ref(), &p, &json!({}), false).outcome, FixOutcome::AlreadyCompliant);
        p.registry.set(TS_POLICY_KEY, "fDenyTSConnections", &RegValue::Dword(1)).unwrap();
        let r = run(fix.as_ref(), &p, &json!({}), false);
        assert_eq!(r.outcome, FixOutcome::Failed);
        assert!(r.message.contains("Group Policy"));
        p.registry.delete_value(TS_POLICY_KEY, "fDenyTSConnections").unwrap();

        // TLS 1.2: keys that did not exist are created, then removed again by the rollback.
        let tls12 = format!(r"{SCHANNEL_PROTOCOLS}\TLS 1.2");
        p.registry.delete_tree(&tls12).unwrap();
        p.registry.set(&format!(r"{tls12}\Client"), "Enabled", &RegValue::Dword(0)).unwrap();
        p.registry.set(&format!(r"{tls12}\Server"), "DisabledByDefault", &RegValue::Dword(1)).unwrap();
        let before = tree(&p, SCHANNEL_PROTOCOLS);
        let fix = find_fix("host.tls12.enable").unwrap();
        let r = run(fix.as_ref(), &p, &json!({}), false);
        assert_eq!(r.outcome, FixOutcome::Succeeded, "{r:?}");
        r.backup.restore(&p).unwrap();
        assert_eq!(tree(&p, SCHANNEL_PROTOCOLS), before, "restored exactly");

        // A backup of a value whose key did not exist: the restore deletes the created key.
        let deep = format!(r"{scratch}\a\b");
        let mut b = Backup::default();
        b.registry_value(&p, &deep, "Marker").unwrap();
        p.registry.set(&deep, "Marker", &RegValue::Dword(1)).unwrap();
        b.restore(&p).unwrap();
        assert!(!p.registry.key_exists(&scratch).unwrap(), "\"key did not exist\" is restored too");

        // MSLicensing: exported, cleared, restored with its value types.
        p.registry
            .set(&format!(r"{MSLICENSING_KEY}\HardwareID"), "ClientHWID", &RegValue::Binary(vec![9, 8, 7]))
            .unwrap();
        p.registry.create_key(&format!(r"{MSLICENSING_KEY}\Store\LICENSE000")).unwrap();
        let before = tree(&p, MSLICENSING_KEY);
        let r = run(&ClearMsLicensing, &p, &json!({}), false);
        assert_eq!(r.outcome, FixOutcome::Succeeded, "{r:?}");
        assert!(!p.registry.key_exists(MSLICENSING_KEY).unwrap());
        r.backup.restore(&p).unwrap();
        assert_eq!(tree(&p, MSLICENSING_KEY), before);
        p.registry.delete_tree(MSLICENSING_KEY).unwrap();
    }
}
