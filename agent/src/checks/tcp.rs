//! `net.tcp`: the RDP port accepts TCP connections on the target's addresses.
use std::net::SocketAddr;
use std::time::Instant;

use async_trait::async_trait;
use rdpfleet_proto::check::CheckStatus;
use serde_json::json;

use super::dns::resolve;
use super::{Check, CheckContext, Finding, Scope};
use crate::config::Target;

pub struct TcpReachability;

/// At most this many of a name's addresses are tried.
const MAX_ADDRESSES: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Refused,
    TimedOut,
    Unreachable,
}

impl Failure {
    fn cause(self) -> &'static str {
        match self {
            Failure::Refused => "net.port_closed",
            Failure::TimedOut => "net.port_filtered",
            Failure::Unreachable => "net.host_unreachable",
        }
    }
    fn words(self) -> &'static str {
        match self {
            Failure::Refused => "refused (nothing listens, or a firewall rejects)",
            Failure::TimedOut => "timed out (a firewall drops packets, or the host is down)",
            Failure::Unreachable => "unreachable (no route)",
        }
    }
}

#[async_trait]
impl Check for TcpReachability {
    fn id(&self) -> &'static str {
        "net.tcp"
    }

    fn scope(&self) -> Scope {
        Scope::Target
    }

    async fn run(&self, ctx: &CheckContext, target: Option<&Target>) -> Finding {
        let Some(target) = target else {
            return Finding::error("net.tcp needs a target");
        };
        let addrs = match tokio::time::timeout(ctx.io_timeout, resolve(target)).await {
            Ok(Ok(a)) if !a.is_empty() => a,
            _ => return Finding::skipped(format!("not reached: {} does not resolve", target.host)),
        };
        let mut attempts = Vec::new();
        let mut first_failure = None;
        let mut connected = 0usize;
        for ip in addrs.into_iter().take(MAX_ADDRESSES) {
            let addr = SocketAddr::new(ip, target.port);
            let started = Instant::now();
            let outcome = match tokio::time::timeout(ctx.io_timeout, tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(_stream)) => Ok(()),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Err(Failure::Refused),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => Err(Failure::TimedOut),
                Ok(Err(_)) => Err(Failure::Unreachable),
                Err(_) => Err(Failure::TimedOut),
            };
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            match outcome {
                Ok(()) => connected += 1,
                Err(f) => {
                    first_failure.get_or_insert(f);
                }
            }
            attempts.push(
                json!({"address": addr.to_string(), "ok": outcome.is_ok(), "latency_ms": (ms * 10.0).round() / 10.0,
                                 "error": outcome.err().map(Failure::cause)}),
            );
        }
        let tried = attempts.len();
        let evidence = json!({"attempts": attempts});
        match first_failure {
            None => {
                Finding::pass(format!("port {} accepts connections on {connected} address(es)", target.port), evidence)
            }
            Some(f) if connected == 0 => Finding::fail(
                f.cause(),
                format!("port {} on {}: connection {}", target.port, target.host, f.words()),
                evidence,
            ),
            Some(f) => Finding {
                status: CheckStatus::Warn,
                summary: format!(
                    "port {} answers on {connected} of {tried} addresses; others: {}",
                    target.port,
                    f.words()
                ),
                cause: Some(f.cause()),
                evidence,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ctx() -> CheckContext {
        CheckContext { targets: vec![], io_timeout: Duration::from_secs(2) }
    }

    #[tokio::test]
    async fn open_port_passes_and_closed_port_is_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let t = Target { host: "127.0.0.1".into(), port, expected_address: None };
        let f = TcpReachability.run(&ctx(), Some(&t)).await;
        assert_eq!(f.status, CheckStatus::Pass, "{f:?}");
        assert_eq!(f.evidence["attempts"][0]["ok"], true);
        drop(listener);
        let f = TcpReachability.run(&ctx(), Some(&t)).await;
        assert_eq!(f.status, CheckStatus::Fail, "{f:?}");
        assert_eq!(f.cause, Some("net.port_closed"));
    }

    #[tokio::test]
    async fn unresolvable_target_is_not_reached() {
        let t = Target { host: "no-such-host.invalid".into(), port: 3389, expected_address: None };
        assert_eq!(TcpReachability.run(&ctx(), Some(&t)).await.status, CheckStatus::Skipped);
    }
}
