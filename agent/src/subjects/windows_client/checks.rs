//! Windows client checks: the MSLicensing cache, saved TERMSRV credentials for the configured
//! targets, the server-authentication policy, certificate warnings silenced per user, TLS 1.2
//! for the client role, and whether this client trusts its RD Gateway's certificate.
use async_trait::async_trait;

use serde_json::json;

use crate::config::Target;
use crate::engine::check::{Check, CheckContext, Finding, Scope, problem};
use crate::platform::credentials::TERMSRV_PREFIX;
use crate::subjects::registry_fixes::{self, MSLICENSING_KEY, TS_POLICY_KEY, evaluate};
use crate::subjects::windows_host::checks::platform_finding;

/// Per-user RDP client settings, below each user's hive.
const CLIENT_SETTINGS: &str = r"Software\Microsoft\Terminal Server Client";

pub fn checks() -> Vec<Box<dyn Check>> {
    vec![
        Box::new(MsLicensing),
        Box::new(SavedCredentials),
        Box::new(AuthPolicy),
        Box::new(CertWarningOverride),
        Box::new(ClientTls12),
        Box::new(GatewayTrust),
    ]
}

fn client_applies(ctx: &CheckContext) -> bool {
    ctx.is_client() && ctx.is_windows()
}

macro_rules! machine_check {
    ($ty:ident, $id:literal) => {
        pub struct $ty;
        impl $ty {
            const ID: &'static str = $id;
        }
    };
}

machine_check!(MsLicensing, "client.mslicensing");
machine_check!(AuthPolicy, "client.auth_policy");
machine_check!(CertWarningOverride, "client.cert_warning_override");
machine_check!(ClientTls12, "client.tls12");

#[async_trait]
impl Check for MsLicensing {
    fn id(&self) -> &'static str {
        Self::ID
    }
    fn scope(&self) -> Scope {
        Scope::Machine
    }
    fn applies(&self, ctx: &CheckContext) -> bool {
        client_applies(ctx)
    }
    async fn run(&self, ctx: &CheckContext, _: Option<&Target>) -> Finding {
        let r = &ctx.platform.registry;
        let parts = ["Store", "HardwareID"].map(|k| (k, r.key_exists(&format!(r"{MSLICENSING_KEY}\{k}"))));
        let mut present = Vec::new();
        for (k, exists) in parts {
            match exists {
                Ok(true) => present.push(k),
                Ok(false) => {}
                Err(e) => return platform_finding("registry", &e),
            }
        }
        let problems: Vec<_> = if present.is_empty() {
            vec![]
        } else {
            vec![problem(
                "client.mslicensing_cache",
                format!(
                    "an RDP licensing cache is present ({}); clear it if connections fail with licensing errors",
                    present.join(", ")
                ),
            )]
        };
        Finding::from_problems("no RDP licensing cache", &problems)
    }
}

/// Saved credentials for each configured target host.
pub struct SavedCredentials;

#[async_trait]
impl Check for SavedCredentials {
    fn id(&self) -> &'static str {
        "client.saved_credentials"
    }
    fn scope(&self) -> Scope {
        Scope::Target
    }
    fn applies(&self, ctx: &CheckContext) -> bool {
        client_applies(ctx)
    }
    async fn run(&self, ctx: &CheckContext, target: Option<&Target>) -> Finding {
        let Some(t) = target else { return Finding::error("no target") };
        let name = format!("{TERMSRV_PREFIX}{}", t.host);
        let saved = match ctx.platform.credentials.list(&name) {
            Ok(list) => list.into_iter().filter(|c| c.target.eq_ignore_ascii_case(&name)).collect::<Vec<_>>(),
            Err(e) => return platform_finding("credential manager", &e),
        };
        let problems: Vec<_> = saved
            .iter()
            .map(|c| {
                problem(
                    "client.cached_credentials",
                    format!("{} is saved for user {}; after a password change it fails every logon", c.target, c.user),
                )
            })
            .collect();
        let mut f = Finding::from_problems(&format!("no saved credentials for {}", t.host), &problems);
        f.evidence = json!({"saved": saved, "fix_params": {"target": t.host}, "problems": f.evidence});
        f
    }
}

#[async_trait]
impl Check for AuthPolicy {
    fn id(&self) -> &'static str {
        Self::ID
    }
    fn scope(&self) -> Scope {
        Scope::Machine
    }
    fn applies(&self, ctx: &CheckContext) -> bool {
        client_applies(ctx)
    }
    async fn run(&self, ctx: &CheckContext, _: Option<&Target>) -> Finding {
        let level = match ctx.platform.registry.get(TS_POLICY_KEY, "AuthenticationLevel") {
            Ok(v) => v.and_then(|v| v.as_dword()),
            Err(e) => return platform_finding("registry", &e),
        };
        let mut f = match level {
            Some(0) => Finding::from_problems(
                "",
                &[problem(
                    "client.server_auth_disabled",
                    "policy AuthenticationLevel = 0: the client connects without verifying the server".to_owned(),
                )],
            ),
            Some(1) => Finding::pass(
                "policy AuthenticationLevel = 1: connections to hosts whose certificate is not trusted are refused",
                serde_json::Value::Null,
            ),
            Some(n) => {
                Finding::pass(format!("policy AuthenticationLevel = {n}: the user is warned"), serde_json::Value::Null)
            }
            None => Finding::pass("no AuthenticationLevel policy: the user is warned", serde_json::Value::Null),
        };
        f.evidence = json!({"authentication_level": level, "problems": f.evidence});
        f
    }
}

#[async_trait]
impl Check for CertWarningOverride {
    fn id(&self) -> &'static str {
        Self::ID
    }
    fn scope(&self) -> Scope {
        Scope::Machine
    }
    fn applies(&self, ctx: &CheckContext) -> bool {
        client_applies(ctx)
    }
    async fn run(&self, ctx: &CheckContext, _: Option<&Target>) -> Finding {
        let r = &ctx.platform.registry;
        // The agent's own hive, and every loaded user's (a service sees users only through HKU).
        let mut hives = vec!["HKCU".to_owned()];
        match r.subkeys("HKU") {
            Ok(sids) => hives.extend(
                sids.into_iter()
                    .filter(|s| s.starts_with("S-1-5-21-") && !s.ends_with("_Classes"))
                    .map(|s| format!(r"HKU\{s}")),
            ),
            Err(e) => return platform_finding("registry", &e),
        }
        let mut problems = Vec::new();
        for hive in &hives {
            let key = format!(r"{hive}\{CLIENT_SETTINGS}");
            match r.get(&key, "AuthenticationLevelOverride") {
                Ok(Some(v)) if v.as_dword() == Some(0) => problems.push(problem(
                    "client.cert_warnings_silenced",
                    format!(r"{key}\AuthenticationLevelOverride = 0: certificate warnings are silenced"),
                )),
                Ok(_) => {}
                Err(e) => return platform_finding("registry", &e),
            }
        }
        let mut f = Finding::from_problems("certificate warnings are not silenced", &problems);
        f.evidence = json!({"hives": hives, "problems": f.evidence});
        f
    }
}

#[async_trait]
impl Check for ClientTls12 {
    fn id(&self) -> &'static str {
        Self::ID
    }
    fn scope(&self) -> Scope {
        Scope::Machine
    }
    fn applies(&self, ctx: &CheckContext) -> bool {
        client_applies(ctx)
    }
    async fn run(&self, ctx: &CheckContext, _: Option<&Target>) -> Finding {
        match evaluate(&ctx.platform, &registry_fixes::tls12_role("Client")) {
            Ok(v) if v.ok => Finding::from_problems("TLS 1.2 is enabled for the client role", &[]),
            Ok(v) => Finding::from_problems("", &[problem("client.tls12_disabled", v.detail)]),
            Err(e) => platform_finding("registry", &e),
        }
    }
}

/// Whether this client trusts the certificate of the RD Gateway a target is reached through.
pub struct GatewayTrust;

const TRUST_CAUSES: [&str; 2] = ["gateway.cert_untrusted", "gateway.cert_self_signed"];

#[async_trait]
impl Check for GatewayTrust {
    fn id(&self) -> &'static str {
        "client.gateway_trust"
    }
    fn scope(&self) -> Scope {
        Scope::Target
    }
    fn applies(&self, ctx: &CheckContext) -> bool {
        ctx.is_client() && ctx.targets.iter().any(|t| t.gateway.is_some())
    }
    async fn run(&self, ctx: &CheckContext, target: Option<&Target>) -> Finding {
        let Some(t) = target else { return Finding::error("no target") };
        let (name, port) = match t.gateway() {
            Ok(Some(g)) => g,
            Ok(None) => return Finding::skipped(format!("{} is reached without a gateway", t.host)),
            Err(e) => return Finding::error(e),
        };
        let o = &ctx.probe;
        let (layer, detail) =
            crate::probe::gateway::probe(&name, port, o.io_timeout, o.expiry_warn_days, &o.trust).await;
        if detail.certificate.is_none() {
            return Finding::skipped(format!("the gateway {name}:{port} could not be reached: {}", layer.summary));
        }
        let problems: Vec<_> = layer
            .findings
            .iter()
            .filter(|f| TRUST_CAUSES.contains(&f.cause.as_str()))
            .filter_map(|f| rdpfleet_proto::causes::lookup(&f.cause).map(|c| (c.id, f.severity, f.detail.clone())))
            .collect();
        let mut f = Finding::from_problems(&format!("this client trusts {name}'s certificate"), &problems);
        f.evidence = json!({"gateway": detail, "problems": f.evidence});
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::RegValue;
    use crate::platform::credentials::SavedCredential;
    use crate::platform::memory::MemoryPlatform;
    use crate::subjects::windows_host::checks::tests::ctx;
    use rdpfleet_proto::check::CheckStatus;
    use rdpfleet_proto::enroll::MachineRole;

    async fn outcome(c: &dyn Check, ctx: &CheckContext, t: Option<&Target>) -> (CheckStatus, Option<&'static str>) {
        let f = c.run(ctx, t).await;
        (f.status, f.cause)
    }

    #[tokio::test]
    async fn client_checks_apply_to_windows_clients() {
        let m = MemoryPlatform::new();
        let host = ctx(&m, MachineRole::Host);
        assert!(checks().iter().all(|c| !c.applies(&host)));
        let client = ctx(&m, MachineRole::Both);
        assert!(checks().iter().filter(|c| c.id() != "client.gateway_trust").all(|c| c.applies(&client)));
    }

    #[tokio::test]
    async fn mslicensing_tls12_and_policy() {
        let m = MemoryPlatform::new();
        let c = ctx(&m, MachineRole::Client);
        let r = m.platform().registry;
        assert_eq!(outcome(&MsLicensing, &c, None).await, (CheckStatus::Pass, None));
        r.create_key(&format!(r"{MSLICENSING_KEY}\Store\LICENSE000")).unwrap();
        let f = MsLicensing.run(&c, None).await;
        assert_eq!((f.status, f.cause), (CheckStatus::Pass, None), "a low note");
        assert!(f.summary.contains("Store"));

        assert_eq!(outcome(&ClientTls12, &c, None).await, (CheckStatus::Pass, None));
        let server = format!(r"{}\TLS 1.2\Server", registry_fixes::SCHANNEL_PROTOCOLS);
        r.set(&server, "Enabled", &RegValue::Dword(0)).unwrap();
        assert_eq!(outcome(&ClientTls12, &c, None).await, (CheckStatus::Pass, None), "the server role is not ours");
        let client = format!(r"{}\TLS 1.2\Client", registry_fixes::SCHANNEL_PROTOCOLS);
        r.set(&client, "DisabledByDefault", &RegValue::Dword(1)).unwrap();
        assert_eq!(outcome(&ClientTls12, &c, None).await, (CheckStatus::Fail, Some("client.tls12_disabled")));

        assert_eq!(outcome(&AuthPolicy, &c, None).await, (CheckStatus::Pass, None));
        r.set(TS_POLICY_KEY, "AuthenticationLevel", &RegValue::Dword(0)).unwrap();
        assert_eq!(outcome(&AuthPolicy, &c, None).await, (CheckStatus::Warn, Some("client.server_auth_disabled")));
        r.set(TS_POLICY_KEY, "AuthenticationLevel", &RegValue::Dword(1)).unwrap();
        let f = AuthPolicy.run(&c, None).await;
        assert_eq!(f.status, CheckStatus::Pass);
        assert!(f.summary.contains("refused"));
    }

    #[tokio::test]
    async fn silenced_certificate_warnings_in_any_user_hive() {
        let m = MemoryPlatform::new();
        let c = ctx(&m, MachineRole::Client);
        let r = m.platform().registry;
        assert_eq!(outcome(&CertWarningOverride, &c, None).await, (CheckStatus::Pass, None));
        let user = r"HKU\S-1-5-21-1-2-3-1001";
        r.set(&format!(r"{user}\{CLIENT_SETTINGS}"), "AuthenticationLevelOverride", &RegValue::Dword(2)).unwrap();
        assert_eq!(outcome(&CertWarningOverride, &c, None).await, (CheckStatus::Pass, None));
        r.set(&format!(r"{user}\{CLIENT_SETTINGS}"), "AuthenticationLevelOverride", &RegValue::Dword(0)).unwrap();
        let f = CertWarningOverride.run(&c, None).await;
        assert_eq!((f.status, f.cause), (CheckStatus::Fail, Some("client.cert_warnings_silenced")));
        assert!(f.summary.contains("S-1-5-21-1-2-3-1001"), "{}", f.summary);
        assert!(rdpfleet_proto::causes::lookup("client.cert_warnings_silenced").unwrap().fix.is_none(), "never set");
    }

    #[tokio::test]
    async fn saved_credentials_for_the_configured_target() {
        let m = MemoryPlatform::new();
        let c = ctx(&m, MachineRole::Client);
        let t = Target::parse("rdp01.corp.example").unwrap();
        assert_eq!(outcome(&SavedCredentials, &c, Some(&t)).await, (CheckStatus::Pass, None));
        m.credentials.saved.lock().unwrap().push(SavedCredential {
            target: "TERMSRV/RDP01.corp.example".into(),
            user: "CORP\\bob".into(),
            last_written: None,
        });
        let f = SavedCredentials.run(&c, Some(&t)).await;
        assert_eq!(f.status, CheckStatus::Pass, "a low note: {f:?}");
        assert!(f.summary.contains("saved for user CORP\\bob"), "{}", f.summary);
        assert_eq!(f.evidence["problems"][0]["cause"], "client.cached_credentials");
        assert_eq!(f.evidence["fix_params"]["target"], "rdp01.corp.example");
        let mut linux = ctx(&m, MachineRole::Client);
        linux.platform.credentials = std::sync::Arc::new(crate::platform::credentials::NoCredentials);
        assert_eq!(outcome(&SavedCredentials, &linux, Some(&t)).await.0, CheckStatus::Skipped);
    }
}
