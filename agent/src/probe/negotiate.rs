//! Layer 3: X.224 negotiation. One Connection Request per protocol set tells which security
//! protocols the server supports and which it requires, without trusting a reply that selects a
//! protocol that was not offered (the cause of nmap's false NLA reports).
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rdpfleet_proto::diagnosis::{
    Finding, Layer, LayerReport, NegotiationDetail, NegotiationExchange, NegotiationReply, Protocol,
};

use super::exchange::{ExchangeError, exchange};
use super::layers::{finding, report};
use super::x224::{Confirm, failure_name};

const SSL: u32 = 0x1;
const HYBRID: u32 = 0x2;
const RDSTLS: u32 = 0x4;
const HYBRID_EX: u32 = 0x8;
const RDSAAD: u32 = 0x10;
/// What a current Windows client (mstsc) offers.
pub const CLIENT_REQUEST: u32 = SSL | HYBRID | HYBRID_EX;

/// The requests sent, each on its own connection. HYBRID_EX is sent with HYBRID, as the
/// specification requires.
const REQUESTS: [u32; 7] = [0, SSL, HYBRID, HYBRID | HYBRID_EX, RDSTLS, RDSAAD, CLIENT_REQUEST];

pub struct Outcome {
    pub report: LayerReport,
    pub detail: NegotiationDetail,
    /// A request whose answer starts TLS, for the TLS layer; `None` when TLS cannot start.
    pub tls_request: Option<u32>,
}

pub async fn probe(addr: SocketAddr, timeout: Duration) -> Outcome {
    let started = Instant::now();
    let runs = REQUESTS.into_iter().map(|req| async move {
        let reply = tokio::task::spawn_blocking(move || exchange(addr, req, timeout).map(|(_, c)| c))
            .await
            .unwrap_or_else(|e| Err(ExchangeError::Io(std::io::Error::other(e.to_string()))));
        (req, reply)
    });
    let replies: Vec<(u32, Result<Confirm, ExchangeError>)> =
        futures::stream::iter(runs).buffered(super::MAX_PARALLEL_CONNECTIONS).collect::<Vec<_>>().await;
    analyse(&replies, started.elapsed().as_millis() as u64)
}

fn wire(reply: &Result<Confirm, ExchangeError>) -> NegotiationReply {
    match reply {
        Ok(Confirm::Selected { protocol, flags }) => NegotiationReply::Selected { protocol: *protocol, flags: *flags },
        Ok(Confirm::Failure { code }) => {
            NegotiationReply::Failure { code: *code, name: failure_name(*code).to_owned() }
        }
        Ok(Confirm::Legacy) => NegotiationReply::Legacy,
        Err(e) => NegotiationReply::Error { error: e.to_string() },
    }
}

/// Derives support, requirement and the verdict from the replies. Pure, for testing.
pub fn analyse(replies: &[(u32, Result<Confirm, ExchangeError>)], duration_ms: u64) -> Outcome {
    let reply_to = |req: u32| replies.iter().find(|(r, _)| *r == req).map(|(_, c)| c);
    let selects = |req: u32, want: u32| matches!(reply_to(req), Some(Ok(Confirm::Selected { protocol, .. })) if *protocol == want);
    let fails_with =
        |req: u32, code: u32| matches!(reply_to(req), Some(Ok(Confirm::Failure { code: c })) if *c == code);

    let mut supported = Vec::new();
    if selects(0, 0) || matches!(reply_to(0), Some(Ok(Confirm::Legacy))) {
        supported.push(Protocol::Rdp);
    }
    for (req, p) in [
        (SSL, Protocol::Tls),
        (HYBRID, Protocol::Nla),
        (RDSTLS, Protocol::Rdstls),
        (HYBRID | HYBRID_EX, Protocol::NlaEx),
        (RDSAAD, Protocol::Rdsaad),
    ] {
        if selects(req, p.bits()) {
            supported.push(p);
        }
    }
    // A server that selects NLA for the client request supports it even if it answered the
    // lone-HYBRID request differently.
    if let Some(Ok(Confirm::Selected { protocol, .. })) = reply_to(CLIENT_REQUEST) {
        if let Some(p) =
            Protocol::from_selected(*protocol).filter(|p| *protocol & CLIENT_REQUEST != 0 && !supported.contains(p))
        {
            supported.push(p);
        }
    }
    supported.sort();

    let minimum = if supported.contains(&Protocol::Rdp) {
        Some(Protocol::Rdp)
    } else if fails_with(0, 5) || fails_with(SSL, 5) {
        Some(Protocol::Nla)
    } else if fails_with(0, 1) || fails_with(0, 6) || supported.contains(&Protocol::Tls) {
        Some(Protocol::Tls)
    } else {
        supported.first().copied()
    };

    let client = reply_to(CLIENT_REQUEST);
    let mut findings: Vec<Finding> = Vec::new();
    let mut tls_request = None;
    let mut selected_for_client = None;
    let summary;
    match client {
        Some(Ok(Confirm::Selected { protocol: 0, .. })) => {
            selected_for_client = Some(Protocol::Rdp);
            findings.push(finding(
                "rdp.legacy_security_selected",
                "offered TLS, CredSSP and CredSSP-EX, the host selected standard RDP security",
            ));
            summary = "host selected legacy RDP security".to_owned();
        }
        Some(Ok(Confirm::Selected { protocol, .. }))
            if protocol & CLIENT_REQUEST == *protocol && protocol.count_ones() == 1 =>
        {
            selected_for_client = Protocol::from_selected(*protocol);
            tls_request = Some(CLIENT_REQUEST);
            summary = format!("client request → {}", protocol_name(*protocol));
        }
        Some(Ok(Confirm::Selected { protocol, .. })) => {
            selected_for_client = Protocol::from_selected(*protocol);
            findings.push(finding(
                "rdp.unrequested_protocol",
                format!("requested 0x{CLIENT_REQUEST:x}, the host selected 0x{protocol:x}"),
            ));
            summary = format!("host selected protocol 0x{protocol:x}, which was not offered");
        }
        Some(Ok(Confirm::Failure { code })) => {
            let cause = match code {
                2 => "rdp.tls_not_allowed",
                3 => "rdp.server_cert_missing",
                4 => "rdp.inconsistent_flags",
                6 => "rdp.user_auth_required",
                _ => "rdp.negotiation_refused",
            };
            findings.push(finding(
                cause,
                format!("the host answered {} ({code}) to a standard client request", failure_name(*code)),
            ));
            summary = format!("client request refused: {}", failure_name(*code));
        }
        Some(Ok(Confirm::Legacy)) => {
            findings.push(finding("rdp.legacy_security_only", "the Connection Confirm carries no negotiation data"));
            summary = "host does not negotiate (legacy server)".to_owned();
        }
        Some(Err(e)) => {
            let cause = match e {
                ExchangeError::Timeout(_) => "rdp.no_reply",
                ExchangeError::NotRdp(_) => "rdp.not_rdp",
                ExchangeError::Closed | ExchangeError::Truncated(_) | ExchangeError::Refused => "rdp.connection_reset",
                ExchangeError::Connect(_) | ExchangeError::Io(_) => "rdp.connection_reset",
            };
            findings.push(finding(cause, e.to_string()));
            summary = format!("no usable reply: {e}");
        }
        None => {
            findings.push(finding("rdp.no_reply", "the client request was not sent"));
            summary = "no reply".to_owned();
        }
    }
    if findings.is_empty() && minimum.is_some_and(|m| m < Protocol::Nla) {
        findings.push(finding(
            "rdp.nla_not_required",
            format!("the host accepts {} without NLA", minimum.map_or("?", protocol_label)),
        ));
    }
    let exchanges = replies.iter().map(|(req, c)| NegotiationExchange { requested: *req, reply: wire(c) }).collect();
    let detail = NegotiationDetail { exchanges, supported: supported.clone(), minimum, selected_for_client };
    let supported_names: Vec<&str> = supported.iter().map(|p| protocol_label(*p)).collect();
    let summary = format!(
        "{summary}; supports {}; requires {}",
        if supported_names.is_empty() { "nothing".to_owned() } else { supported_names.join(", ") },
        minimum.map_or("?", protocol_label)
    );
    Outcome { report: report(Layer::Negotiation, summary, duration_ms, findings), detail, tls_request }
}

pub fn protocol_label(p: Protocol) -> &'static str {
    match p {
        Protocol::Rdp => "RDP",
        Protocol::Tls => "TLS",
        Protocol::Nla => "CredSSP (NLA)",
        Protocol::Rdstls => "RDSTLS",
        Protocol::NlaEx => "CredSSP-EX",
        Protocol::Rdsaad => "RDSAAD",
    }
}

fn protocol_name(bits: u32) -> String {
    Protocol::from_selected(bits).map_or_else(|| format!("0x{bits:x}"), |p| protocol_label(p).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(p: u32) -> Result<Confirm, ExchangeError> {
        Ok(Confirm::Selected { protocol: p, flags: 0 })
    }
    fn fail(c: u32) -> Result<Confirm, ExchangeError> {
        Ok(Confirm::Failure { code: c })
    }

    #[test]
    fn xrdp_negotiate_is_not_reported_as_nla() {
        // xrdp security_layer=negotiate answers a lone HYBRID request by selecting RDP.
        let replies = vec![
            (0, sel(0)),
            (SSL, sel(1)),
            (HYBRID, sel(0)),
            (HYBRID | HYBRID_EX, sel(0)),
            (RDSTLS, sel(0)),
            (RDSAAD, sel(0)),
            (CLIENT_REQUEST, sel(1)),
        ];
        let o = analyse(&replies, 1);
        assert_eq!(o.detail.supported, vec![Protocol::Rdp, Protocol::Tls]);
        assert_eq!(o.detail.minimum, Some(Protocol::Rdp));
        assert_eq!(o.tls_request, Some(CLIENT_REQUEST));
        assert_eq!(o.report.findings[0].cause, "rdp.nla_not_required");
    }

    #[test]
    fn nla_required_server() {
        let replies = vec![
            (0, fail(5)),
            (SSL, fail(5)),
            (HYBRID, sel(2)),
            (HYBRID | HYBRID_EX, sel(2)),
            (RDSTLS, fail(5)),
            (RDSAAD, fail(5)),
            (CLIENT_REQUEST, sel(2)),
        ];
        let o = analyse(&replies, 1);
        assert_eq!(o.detail.supported, vec![Protocol::Nla]);
        assert_eq!(o.detail.minimum, Some(Protocol::Nla));
        assert_eq!(o.detail.selected_for_client, Some(Protocol::Nla));
        assert!(o.report.findings.is_empty());
    }

    #[test]
    fn every_failure_code_names_its_cause() {
        for (code, cause) in [
            (1, "rdp.negotiation_refused"),
            (2, "rdp.tls_not_allowed"),
            (3, "rdp.server_cert_missing"),
            (4, "rdp.inconsistent_flags"),
            (5, "rdp.negotiation_refused"),
            (6, "rdp.user_auth_required"),
            (77, "rdp.negotiation_refused"),
        ] {
            let o = analyse(&[(CLIENT_REQUEST, fail(code))], 1);
            assert_eq!(o.report.findings[0].cause, cause, "code {code}");
            assert_eq!(o.tls_request, None);
        }
    }

    #[test]
    fn unrequested_and_legacy_replies() {
        let o = analyse(&[(CLIENT_REQUEST, sel(0x4))], 1);
        assert_eq!(o.report.findings[0].cause, "rdp.unrequested_protocol");
        let o = analyse(&[(CLIENT_REQUEST, sel(0x3))], 1);
        assert_eq!(o.report.findings[0].cause, "rdp.unrequested_protocol", "two bits selected is not one protocol");
        let o = analyse(&[(0, Ok(Confirm::Legacy)), (CLIENT_REQUEST, Ok(Confirm::Legacy))], 1);
        assert_eq!(o.report.findings[0].cause, "rdp.legacy_security_only");
        assert_eq!(o.detail.supported, vec![Protocol::Rdp]);
        let o = analyse(&[(CLIENT_REQUEST, Err(ExchangeError::Timeout(500)))], 1);
        assert_eq!(o.report.findings[0].cause, "rdp.no_reply");
    }
}
