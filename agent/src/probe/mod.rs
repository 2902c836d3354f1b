//! The connection-path probe: for one RDP target, walks the layers in the order a connection
//! does — DNS, TCP, X.224 negotiation, TLS, certificate — plus the RD Gateway and the clock, and
//! names the first failing layer and its cause.
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdpfleet_proto::check::CheckStatus;
use rdpfleet_proto::diagnosis::{Diagnosis, Layer, LayerReport, LayerStatus};

pub mod cert;
pub mod clock;
pub mod dns;
pub mod exchange;
pub mod gateway;
pub mod layers;
pub mod negotiate;
pub mod render;
pub mod tcp;
pub mod tls;
pub mod tls_layer;
pub mod trust;
pub mod x224;

use layers::{finding, not_reached, report, skipped};

/// Connections a probe has open at once against one host: enough to be quick, few enough
/// not to overflow small listen backlogs or trip connection-rate limits.
pub const MAX_PARALLEL_CONNECTIONS: usize = 2;
use trust::TrustStore;

/// One connection path to diagnose.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    /// The name (or address) the client connects to; certificates are checked against it.
    pub host: String,
    pub port: u16,
    pub expected_address: Option<IpAddr>,
    /// RD Gateway name and port, when the client uses one.
    pub gateway: Option<(String, u16)>,
}

#[derive(Clone)]
pub struct ProbeOptions {
    /// Bound on every single network operation.
    pub io_timeout: Duration,
    pub tcp_attempts: u32,
    pub expiry_warn_days: i64,
    pub trust: Arc<TrustStore>,
    /// rdpfleet server URL to compare clocks with (when enrolled).
    pub clock_reference: Option<String>,
}

pub async fn diagnose(target: &ProbeTarget, opts: &ProbeOptions) -> Diagnosis {
    let started_at = time::OffsetDateTime::now_utc();
    let started = Instant::now();
    let mut d = Diagnosis {
        target: if target.host.contains(':') {
            format!("[{}]:{}", target.host, target.port)
        } else {
            format!("{}:{}", target.host, target.port)
        },
        host: target.host.clone(),
        port: target.port,
        gateway: target.gateway.as_ref().map(|(n, p)| format!("{n}:{p}")),
        started_at,
        duration_ms: 0,
        status: CheckStatus::Pass,
        first_failing_layer: None,
        cause: None,
        summary: String::new(),
        layers: Vec::new(),
        dns: None,
        tcp: None,
        negotiation: None,
        tls: None,
        certificate: None,
        gateway_detail: None,
        clock: None,
    };
    // The gateway and clock are separate paths: probe them alongside the host path.
    let gateway = async {
        match &target.gateway {
            Some((name, port)) => {
                let (r, g) = gateway::probe(name, *port, opts.io_timeout, opts.expiry_warn_days, &opts.trust).await;
                (r, Some(g))
            }
            None => (skipped(Layer::Gateway, "no RD Gateway configured"), None),
        }
    };
    let clock = async {
        match &opts.clock_reference {
            Some(url) => clock::probe(url, opts.io_timeout).await,
            None => (skipped(Layer::Clock, "not enrolled: no reference clock"), None),
        }
    };
    let (host_layers, (gw_report, gw_detail), (clock_report, clock_detail)) =
        tokio::join!(host_path(target, opts, &mut d), gateway, clock);
    d.layers = host_layers;
    d.layers.push(gw_report);
    d.layers.push(clock_report);
    d.gateway_detail = gw_detail;
    d.clock = clock_detail;
    conclude(&mut d);
    d.duration_ms = started.elapsed().as_millis() as u64;
    d
}

/// DNS → TCP → negotiation → TLS → certificate; after a failure the rest are not reached.
async fn host_path(target: &ProbeTarget, opts: &ProbeOptions, d: &mut Diagnosis) -> Vec<LayerReport> {
    let order = [Layer::Dns, Layer::Tcp, Layer::Negotiation, Layer::Tls, Layer::Certificate];
    let mut out: Vec<LayerReport> = Vec::new();
    let stop = |out: &mut Vec<LayerReport>| {
        let failed = out.last().map(|r| r.layer);
        if let Some(failed) = failed {
            for l in order.iter().skip(out.len()) {
                out.push(not_reached(*l, failed));
            }
        }
    };

    let (r, detail, addrs) = dns::probe(&target.host, target.port, target.expected_address, opts.io_timeout).await;
    let failed = r.status == LayerStatus::Fail && addrs.is_empty();
    out.push(r);
    d.dns = Some(detail);
    if failed {
        stop(&mut out);
        return out;
    }

    let (r, detail, addr) = tcp::probe(&addrs, target.port, opts.tcp_attempts, opts.io_timeout).await;
    out.push(r);
    d.tcp = Some(detail);
    let Some(addr) = addr else {
        stop(&mut out);
        return out;
    };

    let neg = negotiate::probe(addr, opts.io_timeout).await;
    out.push(neg.report);
    d.negotiation = Some(neg.detail);
    let Some(request) = neg.tls_request else {
        stop(&mut out);
        return out;
    };

    let (tls, chain, ms) = tls_layer::probe(addr, tls_layer::Start::Rdp(request), &target.host, opts.io_timeout).await;
    let r = tls_layer::host_report(&tls, ms);
    let tls_failed = r.status == LayerStatus::Fail && tls.accepted().is_empty();
    out.push(r);
    d.tls = Some(tls);
    if tls_failed {
        stop(&mut out);
        return out;
    }

    let started = Instant::now();
    let j = cert::judge(&chain, &target.host, time::OffsetDateTime::now_utc(), opts.expiry_warn_days, &opts.trust);
    let findings: Vec<_> = j.issues.iter().map(|(issue, text)| finding(issue.cause(false), text.clone())).collect();
    let summary = match &j.detail {
        Some(c) => format!(
            "{} issued by {}, valid until {} ({} days){}",
            c.subject,
            c.issuer,
            c.not_after.date(),
            c.days_left,
            if findings.is_empty() { String::new() } else { format!("; {} problem(s)", findings.len()) }
        ),
        None => "certificate unreadable".to_owned(),
    };
    out.push(report(Layer::Certificate, summary, started.elapsed().as_millis() as u64, findings));
    d.certificate = j.detail;
    out
}

/// Overall status, first failing layer and root cause.
fn conclude(d: &mut Diagnosis) {
    let first_fail = d.layers.iter().find(|l| l.status == LayerStatus::Fail);
    let first_warn = d.layers.iter().find(|l| l.status == LayerStatus::Warn);
    d.status = if first_fail.is_some() {
        CheckStatus::Fail
    } else if first_warn.is_some() {
        CheckStatus::Warn
    } else {
        CheckStatus::Pass
    };
    d.first_failing_layer = first_fail.map(|l| l.layer);
    let decisive = first_fail.or(first_warn);
    d.cause = decisive.and_then(|l| l.findings.first()).map(|f| f.cause.clone());
    d.summary = match decisive.and_then(|l| l.findings.first().map(|f| (l, f))) {
        Some((l, f)) => format!("{}: {} ({})", l.layer.title(), f.detail, f.cause),
        None => {
            let proto =
                d.negotiation.as_ref().and_then(|n| n.selected_for_client).map_or("?", negotiate::protocol_label);
            let tls = d
                .tls
                .as_ref()
                .map(|t| t.accepted().iter().map(|v| v.name()).collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            let days = d
                .certificate
                .as_ref()
                .map(|c| format!(", certificate valid {} more days", c.days_left))
                .unwrap_or_default();
            format!("healthy: {proto} over {tls}{days}")
        }
    };
}
