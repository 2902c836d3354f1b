//! `host.identity`: the names and addresses of an RDP host as the host itself knows them, so
//! the server can tell that `RDP01`, `rdp01.corp.example` and `10.0.0.5` in clients' reports are
//! this one machine. Informational: it always passes.
use async_trait::async_trait;
use serde_json::json;

use crate::config::Target;
use crate::engine::check::{Check, CheckContext, Finding, Scope};

pub struct HostIdentity;

#[async_trait]
impl Check for HostIdentity {
    fn id(&self) -> &'static str {
        "host.identity"
    }
    fn scope(&self) -> Scope {
        Scope::Machine
    }
    fn applies(&self, ctx: &CheckContext) -> bool {
        ctx.is_host()
    }
    async fn run(&self, ctx: &CheckContext, _: Option<&Target>) -> Finding {
        let name = crate::sysinfo::hostname();
        // What the name resolves to here is what clients' DNS should give them for it; the
        // loopback and link-local addresses a hosts file adds say nothing about the machine.
        let resolved = tokio::time::timeout(ctx.probe.io_timeout, crate::probe::dns::resolve(&name, 3389)).await;
        let addresses: Vec<String> = match resolved {
            Ok(Ok(a)) => a.into_iter().filter(|ip| routable(*ip)).map(|ip| ip.to_string()).collect(),
            _ => vec![],
        };
        Finding::pass(
            format!(
                "{name}: {}",
                if addresses.is_empty() { "no routable address".to_owned() } else { addresses.join(", ") }
            ),
            json!({"names": [name], "addresses": addresses}),
        )
    }
}

fn routable(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(a) => !(a.is_loopback() || a.is_link_local() || a.is_unspecified()),
        std::net::IpAddr::V6(a) => !(a.is_loopback() || a.is_unspecified() || (a.segments()[0] & 0xffc0) == 0xfe80),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_and_link_local_addresses_are_left_out() {
        for (ip, keep) in [
            ("10.0.0.5", true),
            ("127.0.1.1", false),
            ("169.254.3.4", false),
            ("fe80::1", false),
            ("2001:db8::5", true),
        ] {
            assert_eq!(super::routable(ip.parse().unwrap()), keep, "{ip}");
        }
    }
}
