//! Windows host checks beyond single registry values: the listener certificate, the RDP
//! services, the firewall group, the port (listener vs firewall rule) and the network category.
//! Each reads through the platform traits, so Wine's stubs and the fakes exercise the same code.
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use async_trait::async_trait;
use rdpfleet_proto::causes::Severity;
use serde_json::json;

use crate::config::Target;
use crate::engine::check::{Check, CheckContext, Finding, Scope, problem};
use crate::platform::firewall::{Category, Profile, REMOTE_DESKTOP_GROUP};
use crate::platform::{PlatformError, ServiceState};
use crate::subjects::registry_fixes::RDP_TCP_KEY;
use crate::subjects::windows_host::firewall_fixes::closed_profiles;
use crate::subjects::windows_host::listener_cert::{self, TERMSERVICE};

pub fn checks() -> Vec<Box<dyn Check>> {
    vec![
        Box::new(ListenerCert),
        Box::new(RdpServices),
        Box::new(FirewallGroup),
        Box::new(Port),
        Box::new(NetworkCategory),
    ]
}

/// What a platform error means for a check: a platform without the facility skips the check.
pub(crate) fn platform_finding(what: &str, e: &PlatformError) -> Finding {
    match e {
        PlatformError::Unsupported(s) => Finding::skipped(format!("{what}: not available here ({s})")),
        other => Finding::error(format!("{what}: {other}")),
    }
}

fn host_applies(ctx: &CheckContext) -> bool {
    ctx.is_host() && ctx.is_windows()
}

pub struct ListenerCert;

#[async_trait]
impl Check for ListenerCert {
    fn id(&self) -> &'static str {
        "host.listener_cert"
    }
    fn scope(&self) -> Scope {
        Scope::Machine
    }
    fn applies(&self, ctx: &CheckContext) -> bool {
        host_applies(ctx)
    }
    async fn run(&self, ctx: &CheckContext, _: Option<&Target>) -> Finding {
        let now = time::OffsetDateTime::now_utc();
        match listener_cert::evaluate(&ctx.platform, now, ctx.probe.expiry_warn_days) {
            Ok((_, problems, evidence)) => {
                let mut f = Finding::from_problems("the listener certificate is valid", &problems);
                f.evidence = json!({"certificate": evidence, "problems": f.evidence});
                f
            }
            Err(e) => platform_finding("certificate store", &e),
        }
    }
}

pub struct RdpServices;

#[async_trait]
impl Check for RdpServices {
    fn id(&self) -> &'static str {
        "host.rdp_services"
    }
    fn scope(&self) -> Scope {
        Scope::Machine
    }
    fn applies(&self, ctx: &CheckContext) -> bool {
        host_applies(ctx)
    }
    async fn run(&self, ctx: &CheckContext, _: Option<&Target>) -> Finding {
        let mut problems = Vec::new();
        let mut states = serde_json::Map::new();
        for (name, cause, severity) in [
            (TERMSERVICE, "host.service_stopped", Severity::Critical),
            ("UmRdpService", "host.umrdp_stopped", Severity::Low),
        ] {
            match ctx.platform.services.state(name) {
                Ok(ServiceState::Running) => {}
                Ok(s) => problems.push((cause, severity, format!("{name} is {}", json!(s).as_str().unwrap_or("?")))),
                Err(e) => return platform_finding("service control manager", &e),
            }
            states.insert(name.to_owned(), json!(ctx.platform.services.state(name).ok()));
        }
        let mut f = Finding::from_problems("TermService and UmRdpService are running", &problems);
        f.evidence = json!({"services": states, "problems": f.evidence});
        f
    }
}

pub struct FirewallGroup;

#[async_trait]
impl Check for FirewallGroup {
    fn id(&self) -> &'static str {
        "host.firewall"
    }
    fn scope(&self) -> Scope {
        Scope::Machine
    }
    fn applies(&self, ctx: &CheckContext) -> bool {
        host_applies(ctx)
    }
    async fn run(&self, ctx: &CheckContext, _: Option<&Target>) -> Finding {
        let p = &ctx.platform;
        let closed = match closed_profiles(p) {
            Ok(c) => c,
            Err(e) => return platform_finding("firewall", &e),
        };
        let problems: Vec<_> = closed
            .iter()
            .map(|profile| {
                problem("host.firewall_closed", format!("the Remote Desktop rules are off on the {profile:?} profile"))
            })
            .collect();
        let mut f = Finding::from_problems("the Remote Desktop rules are on for every active profile", &problems);
        f.evidence = json!({"active_profiles": p.firewall.active_profiles().ok(), "group": REMOTE_DESKTOP_GROUP, "problems": f.evidence});
        f
    }
}

/// The port the listener is configured for.
pub fn listener_port(ctx: &CheckContext) -> u16 {
    ctx.platform
        .registry
        .get(RDP_TCP_KEY, "PortNumber")
        .ok()
        .flatten()
        .and_then(|v| v.as_dword())
        .and_then(|v| u16::try_from(v).ok())
        .unwrap_or(3389)
}

pub struct Port;

#[async_trait]
impl Check for Port {
    fn id(&self) -> &'static str {
        "host.port"
    }
    fn scope(&self) -> Scope {
        Scope::Machine
    }
    fn applies(&self, ctx: &CheckContext) -> bool {
        host_applies(ctx)
    }
    async fn run(&self, ctx: &CheckContext, _: Option<&Target>) -> Finding {
        let port = listener_port(ctx);
        let mut problems = Vec::new();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let listening =
            tokio::task::spawn_blocking(move || TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok())
                .await
                .unwrap_or(false);
        if !listening {
            problems.push(problem("host.not_listening", format!("nothing accepts TCP {port} on this host")));
        }
        let fw = &ctx.platform.firewall;
        let mut rule_ports = Vec::new();
        let firewall = (|| -> Result<(), PlatformError> {
            let rules = fw.inbound_rules()?;
            rule_ports = rules
                .iter()
                .filter(|r| r.group == REMOTE_DESKTOP_GROUP && r.enabled)
                .map(|r| r.local_ports.clone())
                .collect();
            for profile in fw.active_profiles()? {
                if fw.profile_enabled(profile)? && !rules.iter().any(|r| r.admits(port, profile)) {
                    problems.push(problem(
                        "host.port_not_allowed",
                        format!("no enabled inbound rule admits TCP {port} on the {profile:?} profile"),
                    ));
                }
            }
            Ok(())
        })();
        let firewall_note = match firewall {
            Ok(()) => None,
            Err(PlatformError::Unsupported(s)) => Some(format!("firewall not readable here ({s})")),
            Err(e) => return platform_finding("firewall", &e),
        };
        let mut f =
            Finding::from_problems(&format!("the listener accepts TCP {port} and the firewall admits it"), &problems);
        f.evidence = json!({
            "port": port,
            "listening": listening,
            "remote_desktop_rule_ports": rule_ports,
            "firewall": firewall_note,
            "problems": f.evidence,
        });
        f
    }
}

pub struct NetworkCategory;

#[async_trait]
impl Check for NetworkCategory {
    fn id(&self) -> &'static str {
        "host.network_category"
    }
    fn scope(&self) -> Scope {
        Scope::Machine
    }
    fn applies(&self, ctx: &CheckContext) -> bool {
        host_applies(ctx)
    }
    async fn run(&self, ctx: &CheckContext, _: Option<&Target>) -> Finding {
        let p = &ctx.platform;
        let nets = match p.networks.connected() {
            Ok(n) => n,
            Err(e) => return platform_finding("network list", &e),
        };
        let public_open = p.firewall.group_enabled(REMOTE_DESKTOP_GROUP, Profile::Public).unwrap_or(false);
        let problems: Vec<_> = nets
            .iter()
            .filter(|n| n.category == Category::Public)
            .map(|n| {
                if public_open {
                    (
                        "host.network_public",
                        Severity::Low,
                        format!("{} is Public (Remote Desktop is allowed there)", n.name),
                    )
                } else {
                    problem("host.network_public", format!("{} is Public: Remote Desktop is blocked on it", n.name))
                }
            })
            .collect();
        let mut f = Finding::from_problems("no connected network is Public", &problems);
        f.evidence = json!({"networks": nets, "problems": f.evidence});
        f
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::AgentConfig;
    use crate::platform::RegValue;
    use crate::platform::certstore::REMOTE_DESKTOP_STORE;
    use crate::platform::firewall::{InboundRule, Network};
    use crate::platform::memory::MemoryPlatform;
    use crate::subjects::registry_fixes::TS_KEY;
    use rdpfleet_proto::check::CheckStatus;
    use rdpfleet_proto::enroll::MachineRole;

    pub(crate) fn ctx(m: &MemoryPlatform, role: MachineRole) -> CheckContext {
        let mut config = AgentConfig::default();
        config.probe.platform_roots = false;
        config.role = role;
        let mut ctx = CheckContext::from_config(&config, None).unwrap();
        ctx.platform = m.platform();
        m.platform().registry.set(TS_KEY, "fDenyTSConnections", &RegValue::Dword(0)).unwrap();
        ctx
    }

    fn rdp_rule(ports: &str, profiles: i32) -> InboundRule {
        InboundRule {
            name: "Remote Desktop - User Mode (TCP-In)".into(),
            group: REMOTE_DESKTOP_GROUP.into(),
            enabled: true,
            allow: true,
            tcp: true,
            local_ports: ports.into(),
            profiles,
        }
    }

    async fn outcome(c: &dyn Check, ctx: &CheckContext) -> (CheckStatus, Option<&'static str>) {
        let f = c.run(ctx, None).await;
        (f.status, f.cause)
    }

    #[tokio::test]
    async fn host_checks_apply_to_windows_hosts_only() {
        let m = MemoryPlatform::new();
        let client = ctx(&m, MachineRole::Client);
        assert!(checks().iter().all(|c| !c.applies(&client)));
        let host = ctx(&m, MachineRole::Host);
        assert!(checks().iter().all(|c| c.applies(&host)));
        let linux = MemoryPlatform::new();
        let mut l = ctx(&linux, MachineRole::Host);
        l.platform.registry = std::sync::Arc::new(crate::platform::registry::NoRegistry);
        assert!(checks().iter().all(|c| !c.applies(&l)));
    }

    #[tokio::test]
    async fn listener_certificate() {
        let m = MemoryPlatform::new();
        let c = ctx(&m, MachineRole::Host);
        assert_eq!(outcome(&ListenerCert, &c).await, (CheckStatus::Fail, Some("host.listener_cert_missing")));
        m.certs.add(
            REMOTE_DESKTOP_STORE,
            crate::subjects::windows_host::listener_cert::tests::cert("H", -400, -3),
            true,
        );
        let f = ListenerCert.run(&c, None).await;
        assert_eq!((f.status, f.cause), (CheckStatus::Fail, Some("host.listener_cert_expired")));
        assert_eq!(f.evidence["certificate"]["source"], "self_signed");
        m.certs.add(
            REMOTE_DESKTOP_STORE,
            crate::subjects::windows_host::listener_cert::tests::cert("H", -1, 170),
            true,
        );
        assert_eq!(outcome(&ListenerCert, &c).await, (CheckStatus::Pass, None));
    }

    #[tokio::test]
    async fn services() {
        let m = MemoryPlatform::new();
        let c = ctx(&m, MachineRole::Host);
        assert_eq!(outcome(&RdpServices, &c).await, (CheckStatus::Fail, Some("host.service_stopped")));
        m.services.set(TERMSERVICE, ServiceState::Running);
        m.services.set("UmRdpService", ServiceState::Stopped);
        let f = RdpServices.run(&c, None).await;
        assert_eq!((f.status, f.cause), (CheckStatus::Pass, None), "UmRdpService is a note: {f:?}");
        assert!(f.summary.contains("UmRdpService is stopped"));
        m.services.set("UmRdpService", ServiceState::Running);
        assert_eq!(outcome(&RdpServices, &c).await, (CheckStatus::Pass, None));
    }

    #[tokio::test]
    async fn firewall_group_on_the_active_profile_and_wine_stubs() {
        let m = MemoryPlatform::new();
        let c = ctx(&m, MachineRole::Host);
        *m.firewall.active.lock().unwrap() = vec![Profile::Public];
        assert_eq!(outcome(&FirewallGroup, &c).await, (CheckStatus::Fail, Some("host.firewall_closed")));
        m.firewall.groups.lock().unwrap().insert((REMOTE_DESKTOP_GROUP.into(), Profile::Private));
        assert_eq!(outcome(&FirewallGroup, &c).await.0, CheckStatus::Fail, "on for Private does not help on Public");
        m.firewall.disabled_profiles.lock().unwrap().insert(Profile::Public);
        assert_eq!(outcome(&FirewallGroup, &c).await, (CheckStatus::Pass, None), "no firewall, nothing blocked");
        m.firewall.broken.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(outcome(&FirewallGroup, &c).await.0, CheckStatus::Error);
        let mut linux = ctx(&m, MachineRole::Host);
        linux.platform.firewall = std::sync::Arc::new(crate::platform::firewall::NoFirewall);
        assert_eq!(outcome(&FirewallGroup, &linux).await.0, CheckStatus::Skipped);
    }

    #[tokio::test]
    async fn port_listener_versus_firewall_rule() {
        let m = MemoryPlatform::new();
        let c = ctx(&m, MachineRole::Host);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        m.platform().registry.set(RDP_TCP_KEY, "PortNumber", &RegValue::Dword(u32::from(port))).unwrap();
        // The classic: the port was moved, the rule still says 3389.
        *m.firewall.rules.lock().unwrap() = vec![rdp_rule("3389", 7)];
        let f = Port.run(&c, None).await;
        assert_eq!((f.status, f.cause), (CheckStatus::Fail, Some("host.port_not_allowed")), "{f:?}");
        assert_eq!(f.evidence["listening"], true);
        m.firewall.rules.lock().unwrap().push(rdp_rule(&format!("3389, {port}"), Profile::Private.bit()));
        assert_eq!(outcome(&Port, &c).await, (CheckStatus::Pass, None));
        drop(listener);
        assert_eq!(outcome(&Port, &c).await, (CheckStatus::Fail, Some("host.not_listening")));
    }

    #[tokio::test]
    async fn public_network() {
        let m = MemoryPlatform::new();
        let c = ctx(&m, MachineRole::Host);
        *m.firewall.networks.lock().unwrap() =
            vec![Network { id: "{N}".into(), name: "Network 3".into(), category: Category::Public }];
        assert_eq!(outcome(&NetworkCategory, &c).await, (CheckStatus::Warn, Some("host.network_public")));
        m.firewall.groups.lock().unwrap().insert((REMOTE_DESKTOP_GROUP.into(), Profile::Public));
        let f = NetworkCategory.run(&c, None).await;
        assert_eq!((f.status, f.cause), (CheckStatus::Pass, None), "open on Public: a note only");
        assert!(f.summary.contains("Network 3"));
    }
}
