//! Windows host checks read from the registry: `host.rdp_enabled`, `host.nla`,
//! `host.security_layer`, `host.tls12`. They evaluate the same settings their fixes write
//! (`fixes::registry_fixes`), so a fix verifies by exactly the check that found the problem.
use async_trait::async_trait;

use crate::config::Target;
use crate::engine::check::{Check, CheckContext, Finding, Scope, problem};
use crate::engine::fix::FixError;
use crate::subjects::registry_fixes::{self, Setting, evaluate};

struct RegistryCheck {
    id: &'static str,
    cause: &'static str,
    settings: fn(&serde_json::Value) -> Result<Vec<Setting>, FixError>,
}

pub fn checks() -> Vec<Box<dyn Check>> {
    let c = |id, cause, settings| -> Box<dyn Check> { Box::new(RegistryCheck { id, cause, settings }) };
    vec![
        c("host.rdp_enabled", "host.rdp_disabled", registry_fixes::rdp_enabled),
        c("host.nla", "rdp.nla_not_required", registry_fixes::nla_enabled),
        c("host.security_layer", "rdp.tls_not_allowed", tls_capable_security_layer),
        c("host.tls12", "host.tls12_disabled", tls12_server),
    ]
}

/// The server role only; the client role is `client.tls12`.
fn tls12_server(_: &serde_json::Value) -> Result<Vec<Setting>, FixError> {
    Ok(registry_fixes::tls12_role("Server"))
}

/// SecurityLayer 1 (negotiate) and 2 (TLS) both allow TLS; only 0 is a problem.
fn tls_capable_security_layer(_: &serde_json::Value) -> Result<Vec<Setting>, FixError> {
    let mut s = registry_fixes::security_layer(&serde_json::json!({"level": 2}))?;
    for setting in &mut s {
        setting.want = registry_fixes::Want::IsNot(0);
    }
    Ok(s)
}

#[async_trait]
impl Check for RegistryCheck {
    fn id(&self) -> &'static str {
        self.id
    }
    fn scope(&self) -> Scope {
        Scope::Machine
    }
    fn applies(&self, ctx: &CheckContext) -> bool {
        ctx.is_host() && ctx.is_windows()
    }
    async fn run(&self, ctx: &CheckContext, _: Option<&Target>) -> Finding {
        let settings = match (self.settings)(&serde_json::Value::Null) {
            Ok(s) => s,
            Err(e) => return Finding::error(e.to_string()),
        };
        match evaluate(&ctx.platform, &settings) {
            Ok(v) if v.ok => Finding::from_problems("compliant", &[]),
            Ok(v) => Finding::from_problems("", &[problem(self.cause, v.detail)]),
            Err(e) => Finding::error(format!("cannot read the registry: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AgentConfig;
    use crate::platform::RegValue;
    use crate::platform::memory::MemoryPlatform;
    use crate::subjects::registry_fixes::TS_KEY;
    use rdpfleet_proto::check::CheckStatus;

    #[tokio::test]
    async fn registry_checks_find_and_name_problems() {
        let m = MemoryPlatform::new();
        let mut config = AgentConfig::default();
        config.probe.platform_roots = false;
        config.role = rdpfleet_proto::enroll::MachineRole::Host;
        let mut ctx = CheckContext::from_config(&config, None).unwrap();
        ctx.platform = m.platform();
        let all = checks();
        assert!(all.iter().all(|c| !c.applies(&ctx)), "not a Windows host: nothing applies");
        let p = m.platform();
        p.registry.set(TS_KEY, "fDenyTSConnections", &RegValue::Dword(1)).unwrap();
        p.registry.set(registry_fixes::RDP_TCP_KEY, "UserAuthentication", &RegValue::Dword(1)).unwrap();
        p.registry.set(registry_fixes::RDP_TCP_KEY, "SecurityLayer", &RegValue::Dword(0)).unwrap();
        let mut results = Vec::new();
        for c in &all {
            assert!(c.applies(&ctx));
            let f = c.run(&ctx, None).await;
            results.push((c.id(), f.status, f.cause));
        }
        assert_eq!(
            results,
            vec![
                ("host.rdp_enabled", CheckStatus::Fail, Some("host.rdp_disabled")),
                ("host.nla", CheckStatus::Pass, None),
                ("host.security_layer", CheckStatus::Fail, Some("rdp.tls_not_allowed")),
                ("host.tls12", CheckStatus::Pass, None),
            ]
        );
        // NLA off is a note, not a failure; TLS 1.2 disabled fails.
        p.registry.set(registry_fixes::RDP_TCP_KEY, "UserAuthentication", &RegValue::Dword(0)).unwrap();
        let nla = all[1].run(&ctx, None).await;
        assert_eq!((nla.status, nla.cause), (CheckStatus::Pass, None), "low severity stays a pass");
        p.registry
            .set(&format!(r"{}\TLS 1.2\Server", registry_fixes::SCHANNEL_PROTOCOLS), "Enabled", &RegValue::Dword(0))
            .unwrap();
        let tls = all[3].run(&ctx, None).await;
        assert_eq!((tls.status, tls.cause), (CheckStatus::Fail, Some("host.tls12_disabled")));
    }
}
