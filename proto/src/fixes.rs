//! The fix catalogue as both sides know it: what a fix is called, its risk class (whether a
//! rollout of it needs a second person's approval, whether it can be undone), which platform runs it, and what parameters it
//! takes. The agent implements the fixes (and a test keeps its metadata equal to this table); the
//! server validates rollouts against it.
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FixPlatform {
    Windows,
    /// Linux hosts running xrdp.
    Xrdp,
    /// The agent itself, on every platform it has releases for.
    Agent,
}

/// How much harm a fix can do if it is wrong, which decides who must agree to a rollout of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    /// Tightens or repairs a setting and is undone from its backup.
    Routine,
    /// Makes machines reachable by more people or with weaker protection (enabling RDP, opening
    /// firewall rules, lowering the security layer, changing the network category): a second
    /// person approves.
    WidensExposure,
    /// Cannot be undone (what it removes cannot be read back): a second person approves.
    Irreversible,
    /// Replaces the agent's own code, which runs with full privileges: a second person approves.
    ReplacesAgent,
}

impl Risk {
    pub fn needs_approval(self) -> bool {
        self != Risk::Routine
    }

    /// Why a rollout of `fix` needs approval, in words for the person proposing it.
    pub fn reason(self, fix: &str) -> Option<String> {
        match self {
            Risk::Routine => None,
            Risk::WidensExposure => {
                Some(format!("{fix} widens exposure (it can make machines reachable by more people or less protected)"))
            }
            Risk::Irreversible => Some(format!("{fix} cannot be undone")),
            Risk::ReplacesAgent => Some(format!("{fix} replaces the agent's code on the machines")),
        }
    }
}

/// Which machines a fix changes the right thing on: a host fix run on a client would change
/// the client's own listener (and restart its services) without touching the host at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FixTarget {
    /// Machines that accept RDP connections (role host or both).
    Hosts,
    /// Machines that connect to RDP hosts (role client or both).
    Clients,
    /// Either: the setting matters on both sides (Schannel's TLS 1.2 for server and client).
    Any,
}

impl FixTarget {
    pub fn fits(self, role: crate::enroll::MachineRole) -> bool {
        use crate::enroll::MachineRole;
        match self {
            FixTarget::Any => true,
            FixTarget::Hosts => role != MachineRole::Client,
            FixTarget::Clients => role != MachineRole::Host,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FixTarget::Hosts => "RDP hosts",
            FixTarget::Clients => "RDP clients",
            FixTarget::Any => "any machine",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FixInfo {
    pub id: &'static str,
    pub title: &'static str,
    pub platform: FixPlatform,
    pub risk: Risk,
    pub target: FixTarget,
}

impl FixInfo {
    pub fn needs_approval(&self) -> bool {
        self.risk.needs_approval()
    }
    pub fn irreversible(&self) -> bool {
        self.risk == Risk::Irreversible
    }
}

const fn fix(id: &'static str, platform: FixPlatform, risk: Risk, title: &'static str) -> FixInfo {
    // The id's prefix names the side; the exceptions are set below with `on`.
    let target = if starts_with(id, "client.") { FixTarget::Clients } else { FixTarget::Hosts };
    FixInfo { id, title, platform, risk, target }
}

const fn on(mut f: FixInfo, target: FixTarget) -> FixInfo {
    f.target = target;
    f
}

const fn starts_with(s: &str, prefix: &str) -> bool {
    let (s, p) = (s.as_bytes(), prefix.as_bytes());
    if s.len() < p.len() {
        return false;
    }
    let mut i = 0;
    while i < p.len() {
        if s[i] != p[i] {
            return false;
        }
        i += 1;
    }
    true
}

use FixPlatform::{Agent, Windows, Xrdp};
use Risk::{Irreversible, ReplacesAgent, Routine, WidensExposure};

pub static FIXES: &[FixInfo] = &[
    fix("host.rdp.enable", Windows, WidensExposure, "Allow Remote Desktop connections"),
    fix("host.nla.enable", Windows, Routine, "Require Network Level Authentication"),
    // It can set "negotiate", which lets clients fall back to the weaker RDP security layer.
    fix("host.security_layer.set", Windows, WidensExposure, "Set the RDP security layer to TLS or negotiate"),
    // Schannel's server and client settings at once: clients with TLS 1.2 off need it too.
    on(fix("host.tls12.enable", Windows, Routine, "Enable TLS 1.2 in Schannel (server and client)"), FixTarget::Any),
    fix("host.cert.regenerate", Windows, Routine, "Regenerate the self-signed RDP certificate (restarts TermService)"),
    fix(
        "host.firewall.enable",
        Windows,
        WidensExposure,
        "Enable the \"Remote Desktop\" firewall rules on the active profile",
    ),
    fix("host.network.set_private", Windows, WidensExposure, "Make the connected Public networks Private"),
    fix("client.mslicensing.clear", Windows, Routine, "Clear the MSLicensing cache"),
    fix("client.credentials.delete", Windows, Irreversible, "Delete the saved RDP credentials for a host"),
    fix("xrdp.cert.renew", Xrdp, Routine, "Renew xrdp's certificate (self-signed, for the host's names)"),
    fix("xrdp.security_layer.set", Xrdp, WidensExposure, "Set xrdp's security layer to TLS or negotiate"),
    // Carried out by the agent's updater, not its fix runner (see `release`).
    on(fix(crate::release::AGENT_UPDATE, Agent, ReplacesAgent, "Update the agent to a release"), FixTarget::Any),
];

pub fn lookup(id: &str) -> Option<&'static FixInfo> {
    FIXES.iter().find(|f| f.id == id)
}

/// The fix that does the job of `fix_id` on a machine with this OS description: the cause
/// catalogue names the Windows fix; an xrdp host gets the xrdp equivalent.
pub fn for_os(fix_id: &str, os: &str) -> Option<&'static str> {
    let linux = os.to_ascii_lowercase().starts_with("linux");
    let id = match (fix_id, linux) {
        ("host.cert.regenerate", true) => "xrdp.cert.renew",
        ("host.security_layer.set", true) => "xrdp.security_layer.set",
        (other, _) => other,
    };
    let f = lookup(id)?;
    if f.platform == Agent {
        return crate::release::Platform::of_os(os).map(|_| f.id);
    }
    (f.platform == if linux { Xrdp } else { Windows }).then_some(f.id)
}

/// Checks a rollout's parameters before any job is signed.
pub fn validate_params(fix_id: &str, params: &serde_json::Value) -> Result<(), String> {
    let obj = match params {
        serde_json::Value::Null => return if needs_params(fix_id) { Err(missing(fix_id)) } else { Ok(()) },
        serde_json::Value::Object(o) => o,
        _ => return Err("parameters must be a JSON object".into()),
    };
    let only = |allowed: &[&str]| match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!("{fix_id} does not take {k:?}")),
        None => Ok(()),
    };
    match fix_id {
        "host.security_layer.set" => {
            only(&["level"])?;
            match obj.get("level").map(|v| v.as_u64()) {
                None | Some(Some(1 | 2)) => Ok(()),
                _ => Err("level must be 1 (negotiate) or 2 (TLS)".into()),
            }
        }
        "xrdp.security_layer.set" => {
            only(&["level"])?;
            match obj.get("level").map(|v| v.as_str()) {
                None | Some(Some("tls" | "negotiate")) => Ok(()),
                _ => Err("level must be \"tls\" or \"negotiate\"".into()),
            }
        }
        "client.credentials.delete" => {
            only(&["target"])?;
            match obj.get("target").and_then(|v| v.as_str()) {
                Some(t) if !t.is_empty() && t.len() <= 253 && !t.contains(['*', '?', '/', '\\']) => Ok(()),
                _ => Err("target must be one host name, without wildcards".into()),
            }
        }
        crate::release::AGENT_UPDATE => {
            only(&["version", "health_gate_mins"])?;
            match obj.get("version").and_then(|v| v.as_str()) {
                Some(v) if is_version(v) => {}
                _ => return Err("version must be a release's version, e.g. \"0.2.0\"".into()),
            }
            match obj.get("health_gate_mins").map(|v| v.as_u64()) {
                None | Some(Some(1..=1440)) => Ok(()),
                _ => Err("health_gate_mins must be 1 to 1440".into()),
            }
        }
        id if lookup(id).is_some() => only(&[]),
        id => Err(format!("unknown fix {id:?}")),
    }
}

fn needs_params(fix_id: &str) -> bool {
    fix_id == "client.credentials.delete" || fix_id == crate::release::AGENT_UPDATE
}

/// A semantic version's characters, at most 64 of them, starting with a digit.
fn is_version(v: &str) -> bool {
    v.len() <= 64
        && v.starts_with(|c: char| c.is_ascii_digit())
        && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
}

fn missing(fix_id: &str) -> String {
    format!("{fix_id} needs parameters")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn platform_mapping_and_parameters() {
        assert_eq!(for_os("host.cert.regenerate", "linux debian 12"), Some("xrdp.cert.renew"));
        assert_eq!(for_os("host.cert.regenerate", "windows 10.0.22631"), Some("host.cert.regenerate"));
        assert_eq!(for_os("host.nla.enable", "linux debian 12"), None, "no NLA on xrdp");
        assert_eq!(for_os("xrdp.cert.renew", "windows"), None);
        assert!(validate_params("host.security_layer.set", &json!({"level": 2})).is_ok());
        assert!(validate_params("host.security_layer.set", &json!({"level": 0})).is_err());
        assert!(validate_params("host.nla.enable", &json!({"x": 1})).is_err());
        assert!(validate_params("host.nla.enable", &json!(null)).is_ok());
        assert!(validate_params("client.credentials.delete", &json!(null)).is_err());
        assert!(validate_params("client.credentials.delete", &json!({"target": "rdp01"})).is_ok());
        assert!(validate_params("rm -rf", &json!({})).is_err());
        assert!(validate_params("xrdp.security_layer.set", &json!({"level": "rdp"})).is_err());
        assert!(validate_params("agent.update", &json!({"version": "0.2.0", "health_gate_mins": 5})).is_ok());
        assert!(validate_params("agent.update", &json!(null)).is_err());
        assert!(validate_params("agent.update", &json!({"version": "../x"})).is_err());
        assert!(validate_params("agent.update", &json!({"version": "1.0.0", "health_gate_mins": 0})).is_err());
        assert_eq!(for_os("agent.update", "linux debian 12"), Some("agent.update"));
        assert_eq!(for_os("agent.update", "windows 10.0"), Some("agent.update"));
        assert_eq!(for_os("agent.update", "freebsd"), None);
    }

    #[test]
    fn each_fix_names_the_machines_it_may_change() {
        use crate::enroll::MachineRole::{Both, Client, Host};
        let target = |id: &str| lookup(id).map(|f| f.target);
        assert_eq!(target("host.cert.regenerate"), Some(FixTarget::Hosts));
        assert_eq!(target("xrdp.cert.renew"), Some(FixTarget::Hosts));
        assert_eq!(target("client.mslicensing.clear"), Some(FixTarget::Clients));
        assert_eq!(target("host.tls12.enable"), Some(FixTarget::Any));
        assert!(!FixTarget::Hosts.fits(Client) && FixTarget::Hosts.fits(Host) && FixTarget::Hosts.fits(Both));
        assert!(!FixTarget::Clients.fits(Host) && FixTarget::Clients.fits(Client) && FixTarget::Clients.fits(Both));
        assert!(FixTarget::Any.fits(Client) && FixTarget::Any.fits(Host));
    }
}
