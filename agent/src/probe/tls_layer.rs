//! Layer 4: which TLS versions complete a handshake, and with which cipher. Also used for the
//! RD Gateway's HTTPS (no X.224 first).
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rdpfleet_proto::diagnosis::{Finding, Layer, LayerReport, TlsAttempt, TlsDetail, TlsVersion};

use super::exchange::exchange;
use super::layers::{finding, report};
use super::tls::{Handshake, handshake};
use super::x224::Confirm;

/// How TLS starts on a fresh connection.
#[derive(Debug, Clone, Copy)]
pub enum Start {
    /// After an X.224 exchange with this requestedProtocols (an RDP host).
    Rdp(u32),
    /// At once (an HTTPS server such as an RD Gateway).
    Direct,
}

fn attempt(addr: SocketAddr, start: Start, version: TlsVersion, sni: &str, timeout: Duration) -> Handshake {
    let failed = |error: String| Handshake {
        attempt: TlsAttempt { version, accepted: false, cipher: None, error: Some(error) },
        chain: vec![],
    };
    let stream = match start {
        Start::Rdp(requested) => match exchange(addr, requested, timeout) {
            Ok((s, Confirm::Selected { protocol, .. })) if protocol != 0 => s,
            Ok((_, other)) => return failed(format!("negotiation did not start TLS: {other:?}")),
            Err(e) => return failed(e.to_string()),
        },
        Start::Direct => match TcpStream::connect_timeout(&addr, super::tcp::connect_timeout(timeout)) {
            Ok(s) => s,
            Err(e) => return failed(format!("connect failed: {e}")),
        },
    };
    if stream.set_read_timeout(Some(timeout)).and_then(|()| stream.set_write_timeout(Some(timeout))).is_err() {
        return failed("cannot set socket timeouts".into());
    }
    handshake(stream, version, sni)
}

/// Tries every version concurrently. Returns the chain from the highest accepted version.
pub async fn probe(addr: SocketAddr, start: Start, sni: &str, timeout: Duration) -> (TlsDetail, Vec<Vec<u8>>, u64) {
    let started = Instant::now();
    let runs = TlsVersion::ALL.into_iter().map(|v| {
        let sni = sni.to_owned();
        async move {
            tokio::task::spawn_blocking(move || attempt(addr, start, v, &sni, timeout)).await.unwrap_or_else(|e| {
                Handshake {
                    attempt: TlsAttempt { version: v, accepted: false, cipher: None, error: Some(e.to_string()) },
                    chain: vec![],
                }
            })
        }
    });
    let handshakes = futures::stream::iter(runs).buffered(super::MAX_PARALLEL_CONNECTIONS).collect::<Vec<_>>().await;
    let chain = handshakes
        .iter()
        .rev()
        .find(|h| h.attempt.accepted && !h.chain.is_empty())
        .map(|h| h.chain.clone())
        .unwrap_or_default();
    let requested = match start {
        Start::Rdp(r) => r,
        Start::Direct => 0,
    };
    let detail = TlsDetail { requested, attempts: handshakes.into_iter().map(|h| h.attempt).collect() };
    (detail, chain, started.elapsed().as_millis() as u64)
}

fn is_weak_cipher(name: &str) -> bool {
    ["RC4", "DES-CBC3", "3DES", "NULL", "EXP", "DES-CBC-", "ADH", "AECDH"].iter().any(|w| name.contains(w))
}

/// Judges a host's TLS results.
pub fn host_report(detail: &TlsDetail, duration_ms: u64) -> LayerReport {
    let accepted = detail.accepted();
    let names: Vec<&str> = accepted.iter().map(|v| v.name()).collect();
    let mut findings: Vec<Finding> = vec![];
    if accepted.is_empty() {
        let why = detail
            .attempts
            .iter()
            .filter_map(|a| a.error.as_deref().map(|e| format!("{}: {e}", a.version.name())))
            .collect::<Vec<_>>()
            .join("; ");
        findings.push(finding("tls.handshake_failed", why));
        return report(Layer::Tls, "no TLS version completes a handshake", duration_ms, findings);
    }
    let modern = accepted.iter().any(|v| *v >= TlsVersion::Tls12);
    let legacy: Vec<&str> = accepted.iter().filter(|v| **v < TlsVersion::Tls12).map(|v| v.name()).collect();
    if !modern {
        findings.push(finding("tls.legacy_only", format!("only {} accepted", legacy.join(", "))));
    } else if !legacy.is_empty() {
        findings.push(finding("tls.legacy_enabled", format!("{} still accepted", legacy.join(", "))));
    }
    for a in detail.attempts.iter().filter(|a| a.accepted) {
        if let Some(c) = a.cipher.as_deref().filter(|c| is_weak_cipher(c)) {
            findings.push(finding("tls.weak_cipher", format!("{} negotiated {c}", a.version.name())));
        }
    }
    let best = detail.attempts.iter().rev().find(|a| a.accepted);
    let summary = format!(
        "{} accepted; {} with {}",
        names.join(", "),
        best.map_or("?", |a| a.version.name()),
        best.and_then(|a| a.cipher.as_deref()).unwrap_or("?")
    );
    report(Layer::Tls, summary, duration_ms, findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(accepted: &[(TlsVersion, &str)]) -> TlsDetail {
        TlsDetail {
            requested: 1,
            attempts: TlsVersion::ALL
                .into_iter()
                .map(|v| {
                    let hit = accepted.iter().find(|(a, _)| *a == v);
                    TlsAttempt {
                        version: v,
                        accepted: hit.is_some(),
                        cipher: hit.map(|(_, c)| (*c).to_owned()),
                        error: hit.is_none().then(|| "refused".to_owned()),
                    }
                })
                .collect(),
        }
    }

    #[test]
    fn judges_versions_and_ciphers() {
        let r = host_report(
            &detail(&[
                (TlsVersion::Tls12, "ECDHE-RSA-AES256-GCM-SHA384"),
                (TlsVersion::Tls13, "TLS_AES_256_GCM_SHA384"),
            ]),
            1,
        );
        assert!(r.findings.is_empty());
        let r = host_report(&detail(&[(TlsVersion::Tls10, "AES256-SHA")]), 1);
        assert_eq!(r.findings[0].cause, "tls.legacy_only");
        let r = host_report(&detail(&[(TlsVersion::Tls10, "AES256-SHA"), (TlsVersion::Tls12, "DES-CBC3-SHA")]), 1);
        let causes: Vec<&str> = r.findings.iter().map(|f| f.cause.as_str()).collect();
        assert!(causes.contains(&"tls.legacy_enabled") && causes.contains(&"tls.weak_cipher"), "{causes:?}");
        let r = host_report(&detail(&[]), 1);
        assert_eq!(r.findings[0].cause, "tls.handshake_failed");
    }
}
