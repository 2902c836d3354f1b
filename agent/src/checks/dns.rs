//! `net.dns`: the target's name resolves (to the expected address, when one is configured).
use std::net::IpAddr;
use std::time::Instant;

use async_trait::async_trait;
use serde_json::json;

use super::{Check, CheckContext, Finding, Scope};
use crate::config::Target;

pub struct DnsResolution;

/// Resolves a target's host to its distinct addresses, in resolver order.
pub async fn resolve(target: &Target) -> std::io::Result<Vec<IpAddr>> {
    let mut out: Vec<IpAddr> = Vec::new();
    for addr in tokio::net::lookup_host((target.host.as_str(), target.port)).await? {
        if !out.contains(&addr.ip()) {
            out.push(addr.ip());
        }
    }
    Ok(out)
}

#[async_trait]
impl Check for DnsResolution {
    fn id(&self) -> &'static str {
        "net.dns"
    }

    fn scope(&self) -> Scope {
        Scope::Target
    }

    async fn run(&self, ctx: &CheckContext, target: Option<&Target>) -> Finding {
        let Some(target) = target else {
            return Finding::error("net.dns needs a target");
        };
        let started = Instant::now();
        let result = tokio::time::timeout(ctx.io_timeout, resolve(target)).await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let addrs = match result {
            Err(_) => {
                return Finding::fail(
                    "net.dns_timeout",
                    format!("resolving {} timed out after {} ms", target.host, ctx.io_timeout.as_millis()),
                    json!({"elapsed_ms": elapsed_ms}),
                );
            }
            Ok(Err(e)) => {
                return Finding::fail(
                    "net.dns_unresolved",
                    format!("{} does not resolve: {e}", target.host),
                    json!({"elapsed_ms": elapsed_ms, "error": e.to_string()}),
                );
            }
            Ok(Ok(a)) if a.is_empty() => {
                return Finding::fail(
                    "net.dns_unresolved",
                    format!("{} has no addresses", target.host),
                    json!({"elapsed_ms": elapsed_ms}),
                );
            }
            Ok(Ok(a)) => a,
        };
        let listed = addrs.iter().map(ToString::to_string).collect::<Vec<_>>();
        let evidence = json!({"addresses": listed, "elapsed_ms": elapsed_ms, "expected": target.expected_address});
        match target.expected_address {
            Some(expected) if !addrs.contains(&expected) => Finding::fail(
                "net.dns_unexpected_address",
                format!("{} resolves to {} but {expected} was expected", target.host, listed.join(", ")),
                evidence,
            ),
            _ => {
                Finding::pass(format!("{} resolves to {} ({elapsed_ms} ms)", target.host, listed.join(", ")), evidence)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdpfleet_proto::check::CheckStatus;
    use std::time::Duration;

    fn ctx() -> CheckContext {
        CheckContext { targets: vec![], io_timeout: Duration::from_secs(5) }
    }

    #[tokio::test]
    async fn literal_address_resolves_and_expected_address_is_enforced() {
        let mut t = Target { host: "127.0.0.1".into(), port: 3389, expected_address: None };
        let f = DnsResolution.run(&ctx(), Some(&t)).await;
        assert_eq!(f.status, CheckStatus::Pass, "{f:?}");
        assert_eq!(f.evidence["addresses"][0], "127.0.0.1");
        t.expected_address = Some("10.0.0.1".parse().unwrap());
        let f = DnsResolution.run(&ctx(), Some(&t)).await;
        assert_eq!(f.status, CheckStatus::Fail);
        assert_eq!(f.cause, Some("net.dns_unexpected_address"));
    }

    #[tokio::test]
    async fn unknown_name_fails_with_its_cause() {
        // RFC 6761: .invalid never resolves.
        let t = Target { host: "no-such-host.invalid".into(), port: 3389, expected_address: None };
        let f = DnsResolution.run(&ctx(), Some(&t)).await;
        assert_eq!(f.status, CheckStatus::Fail);
        assert!(matches!(f.cause, Some("net.dns_unresolved") | Some("net.dns_timeout")), "{f:?}");
    }
}
