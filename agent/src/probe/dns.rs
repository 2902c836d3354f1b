//! Layer 1: the target's name resolves, to every address, in bounded time.
use std::net::IpAddr;
use std::time::{Duration, Instant};

use rdpfleet_proto::diagnosis::{DnsDetail, Layer, LayerReport};

use super::layers::{finding, report};

/// Distinct addresses of `host`, in resolver order.
pub async fn resolve(host: &str, port: u16) -> std::io::Result<Vec<IpAddr>> {
    let mut out: Vec<IpAddr> = Vec::new();
    for addr in tokio::net::lookup_host((host.trim_start_matches('[').trim_end_matches(']'), port)).await? {
        if !out.contains(&addr.ip()) {
            out.push(addr.ip());
        }
    }
    Ok(out)
}

pub async fn probe(
    host: &str,
    port: u16,
    expected: Option<IpAddr>,
    timeout: Duration,
) -> (LayerReport, DnsDetail, Vec<IpAddr>) {
    let started = Instant::now();
    let result = tokio::time::timeout(timeout, resolve(host, port)).await;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let mut detail = DnsDetail { addresses: vec![], elapsed_ms, expected_address: expected.map(|e| e.to_string()) };
    let addrs = match result {
        Err(_) => {
            let f = finding("net.dns_timeout", format!("no answer for {host} within {} ms", timeout.as_millis()));
            return (report(Layer::Dns, format!("{host}: lookup timed out"), elapsed_ms, vec![f]), detail, vec![]);
        }
        Ok(Err(e)) => {
            let f = finding("net.dns_unresolved", format!("{host}: {e}"));
            return (report(Layer::Dns, format!("{host} does not resolve"), elapsed_ms, vec![f]), detail, vec![]);
        }
        Ok(Ok(a)) => a,
    };
    if addrs.is_empty() {
        let f = finding("net.dns_unresolved", format!("{host} has no addresses"));
        return (report(Layer::Dns, format!("{host} has no addresses"), elapsed_ms, vec![f]), detail, vec![]);
    }
    detail.addresses = addrs.iter().map(ToString::to_string).collect();
    let listed = detail.addresses.join(", ");
    let mut findings = vec![];
    if let Some(e) = expected {
        if !addrs.contains(&e) {
            findings.push(finding("net.dns_unexpected_address", format!("{host} resolves to {listed}, expected {e}")));
        }
    }
    (report(Layer::Dns, format!("{host} → {listed} ({elapsed_ms} ms)"), elapsed_ms, findings), detail, addrs)
}
