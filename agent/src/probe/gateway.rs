//! Layer 6: the RD Gateway the client uses — DNS, TCP 443, TLS, and its certificate against the
//! gateway's name. Every certificate problem here is fatal: clients refuse an untrusted gateway.
use std::time::{Duration, Instant};

use rdpfleet_proto::diagnosis::{GatewayDetail, Layer, LayerReport};

use super::cert::judge;
use super::layers::{finding, report};
use super::tls_layer::{self, Start};
use super::trust::TrustStore;

pub async fn probe(
    name: &str,
    port: u16,
    timeout: Duration,
    warn_days: i64,
    trust: &TrustStore,
) -> (LayerReport, GatewayDetail) {
    let started = Instant::now();
    let ms = |s: &Instant| s.elapsed().as_millis() as u64;
    let mut detail =
        GatewayDetail { name: name.to_owned(), port, addresses: vec![], tcp_ok: false, tls: None, certificate: None };
    let addrs = match tokio::time::timeout(timeout, super::dns::resolve(name, port)).await {
        Ok(Ok(a)) if !a.is_empty() => a,
        Ok(Ok(_)) | Ok(Err(_)) | Err(_) => {
            let f = finding("gateway.dns_unresolved", format!("{name} does not resolve"));
            return (report(Layer::Gateway, format!("{name} does not resolve"), ms(&started), vec![f]), detail);
        }
    };
    detail.addresses = addrs.iter().map(ToString::to_string).collect();
    let chosen = super::tcp::first_accepting(&addrs, port, timeout).await.ok();
    let Some(addr) = chosen else {
        let f = finding("gateway.unreachable", format!("no address of {name} accepts TCP {port}"));
        return (report(Layer::Gateway, format!("{name}:{port} unreachable"), ms(&started), vec![f]), detail);
    };
    detail.tcp_ok = true;
    let (tls, chain, _) = tls_layer::probe(addr, Start::Direct, name, timeout).await;
    let accepted: Vec<&str> = tls.accepted().iter().map(|v| v.name()).collect::<Vec<_>>();
    detail.tls = Some(tls.clone());
    if accepted.is_empty() {
        let f = finding("gateway.tls_failed", format!("no TLS handshake with {addr} completed"));
        return (report(Layer::Gateway, format!("{name}: TLS fails"), ms(&started), vec![f]), detail);
    }
    let j = judge(&chain, name, time::OffsetDateTime::now_utc(), warn_days, trust);
    let findings = j.issues.iter().map(|(issue, text)| finding(issue.cause(true), text.clone())).collect();
    detail.certificate = j.detail;
    let summary = format!("{name} ({addr}): {}", accepted.join(", "));
    (report(Layer::Gateway, summary, ms(&started), findings), detail)
}
