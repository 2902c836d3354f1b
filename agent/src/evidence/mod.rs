//! Event-log evidence: Windows events that explain RDP failures, turned into findings named
//! from the cause catalogue. The events come from the live log (Windows) or from exported
//! `.evtx` files (`evtx_file`), so a machine without an agent can be diagnosed too.
use std::collections::BTreeMap;

use rdpfleet_proto::causes::{self, Severity};
use rdpfleet_proto::diagnosis::Finding;
use serde::Serialize;

pub mod event_xml;
pub mod evtx_file;

/// One event, reduced to what the evidence needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub provider: String,
    pub id: u32,
    pub time: Option<String>,
    pub computer: Option<String>,
    /// EventData / UserData fields by name.
    pub data: BTreeMap<String, String>,
}

const SCHANNEL: &str = "Schannel";
const RDPCORETS: &str = "Microsoft-Windows-RemoteDesktopServices-RdpCoreTS";
const RCM: &str = "Microsoft-Windows-TerminalServices-RemoteConnectionManager";
const CLIENT_AX: &str = "Microsoft-Windows-TerminalServices-ClientActiveXCore";

/// Failed logons from one address before it counts as a finding.
const LOGON_FAILURE_THRESHOLD: usize = 3;

/// TLS alert descriptions (RFC 5246 7.2) as Schannel logs them in 36887/36888.
pub fn alert_name(code: u32) -> &'static str {
    match code {
        10 => "unexpected_message",
        20 => "bad_record_mac",
        40 => "handshake_failure",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        90 => "user_canceled",
        _ => "unknown_alert",
    }
}

fn alert_cause(code: u32) -> &'static str {
    match code {
        45 => "cert.expired",
        42 | 43 | 44 | 46 | 48 => "cert.untrusted",
        70 | 71 => "tls.legacy_only",
        _ => "tls.handshake_failed",
    }
}

/// Counts of what the events show, and the findings they support.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Evidence {
    pub events_read: usize,
    /// Events by "provider/id".
    pub counts: BTreeMap<String, usize>,
    /// Client addresses of accepted connections (RdpCoreTS 131, RCM 1149).
    pub connections_from: BTreeMap<String, usize>,
    /// Addresses with failed logons (RdpCoreTS 140).
    pub logon_failures_from: BTreeMap<String, usize>,
    pub successful_logons: Vec<String>,
    pub findings: Vec<Finding>,
}

fn finding(cause: &'static str, detail: String) -> Finding {
    let severity = causes::lookup(cause).map_or(Severity::High, |c| c.severity);
    Finding { cause: cause.to_owned(), severity, detail }
}

fn short_provider(p: &str) -> &str {
    p.rsplit('-').next().unwrap_or(p)
}

type Grouped = BTreeMap<(&'static str, String), (usize, Option<String>)>;

/// Counts one occurrence of a finding and remembers when it first happened.
fn note(grouped: &mut Grouped, cause: &'static str, what: String, at: Option<String>) {
    let g = grouped.entry((cause, what)).or_default();
    g.0 += 1;
    g.1.get_or_insert(at.unwrap_or_default());
}

pub fn analyse(events: &[Event]) -> Evidence {
    let mut ev = Evidence { events_read: events.len(), ..Evidence::default() };
    // (cause, detail key) → (count, first detail), so repeated events become one finding.
    let mut grouped = Grouped::new();
    for e in events {
        *ev.counts.entry(format!("{}/{}", short_provider(&e.provider), e.id)).or_default() += 1;
        let field = |k: &str| e.data.get(k).cloned();
        let at = e.time.clone();
        match (e.provider.as_str(), e.id) {
            (p, 36874) if p.eq_ignore_ascii_case(SCHANNEL) => {
                note(&mut grouped, "tls.handshake_failed", "no common cipher suite (Schannel 36874)".into(), at);
            }
            (p, 36881) if p.eq_ignore_ascii_case(SCHANNEL) => {
                note(
                    &mut grouped,
                    "cert.expired",
                    "certificate outside its validity period (Schannel 36881)".into(),
                    at,
                );
            }
            (p, id @ (36887 | 36888)) if p.eq_ignore_ascii_case(SCHANNEL) => {
                let code: u32 = field("AlertDesc").and_then(|a| a.parse().ok()).unwrap_or(0);
                let dir = if id == 36887 { "received" } else { "generated" };
                note(
                    &mut grouped,
                    alert_cause(code),
                    format!("fatal TLS alert {code} ({}) {dir} (Schannel {id})", alert_name(code)),
                    at,
                );
            }
            (RDPCORETS, 131) => {
                let ip = field("ClientIP").unwrap_or_else(|| "?".into());
                let ip = ip.rsplit_once(':').map_or(ip.clone(), |(h, _)| h.to_owned());
                *ev.connections_from.entry(ip).or_default() += 1;
            }
            (RDPCORETS, 140) => {
                *ev.logon_failures_from.entry(field("IPString").unwrap_or_else(|| "?".into())).or_default() += 1;
            }
            (RCM, 1149) => {
                let user = field("Param1").unwrap_or_default();
                let domain = field("Param2").unwrap_or_default();
                let ip = field("Param3").unwrap_or_default();
                *ev.connections_from.entry(ip.clone()).or_default() += 1;
                ev.successful_logons.push(format!("{domain}\\{user} from {ip} at {}", at.unwrap_or_default()));
            }
            (CLIENT_AX, 1026) if field("Value").or_else(|| field("DisconnectReason")).is_some_and(|v| v == "2308") => {
                note(
                    &mut grouped,
                    "client.disconnect_0x904",
                    "the RDP client disconnected with reason 2308 (0x904)".into(),
                    at,
                );
            }
            _ => {}
        }
    }
    for ((cause, what), (count, first)) in grouped {
        ev.findings.push(finding(cause, format!("{what}: {count} time(s), first at {}", first.unwrap_or_default())));
    }
    for (ip, n) in &ev.logon_failures_from {
        if *n >= LOGON_FAILURE_THRESHOLD {
            ev.findings
                .push(finding("host.logon_failures", format!("{n} failed RDP logons from {ip} (RdpCoreTS 140)")));
        }
    }
    ev.findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    ev
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(provider: &str, id: u32, data: &[(&str, &str)]) -> Event {
        Event {
            provider: provider.into(),
            id,
            time: Some("2026-11-23T08:00:00Z".into()),
            computer: None,
            data: data.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        }
    }

    #[test]
    fn schannel_alerts_are_decoded_and_grouped() {
        let events = vec![
            event("Schannel", 36887, &[("AlertDesc", "45")]),
            event("Schannel", 36887, &[("AlertDesc", "45")]),
            event("Schannel", 36888, &[("AlertDesc", "70"), ("ErrorState", "1")]),
            event("Schannel", 36874, &[]),
            event("Schannel", 36888, &[("AlertDesc", "48")]),
        ];
        let ev = analyse(&events);
        let causes: Vec<(&str, &str)> = ev.findings.iter().map(|f| (f.cause.as_str(), f.detail.as_str())).collect();
        assert!(
            causes.iter().any(|(c, d)| *c == "cert.expired"
                && d.contains("45 (certificate_expired) received")
                && d.contains("2 time(s)")),
            "{causes:?}"
        );
        assert!(causes.iter().any(|(c, d)| *c == "tls.legacy_only" && d.contains("protocol_version")));
        assert!(causes.iter().any(|(c, _)| *c == "tls.handshake_failed"));
        assert!(causes.iter().any(|(c, d)| *c == "cert.untrusted" && d.contains("unknown_ca")));
        assert_eq!(ev.counts["Schannel/36887"], 2);
    }

    #[test]
    fn logon_failures_and_client_disconnects() {
        let mut events = vec![event(RDPCORETS, 140, &[("IPString", "10.0.0.9")]); 3];
        events.push(event(RDPCORETS, 140, &[("IPString", "10.0.0.8")]));
        events.push(event(CLIENT_AX, 1026, &[("Value", "2308")]));
        events.push(event(CLIENT_AX, 1026, &[("Value", "1")]));
        let ev = analyse(&events);
        let causes: Vec<&str> = ev.findings.iter().map(|f| f.cause.as_str()).collect();
        assert_eq!(causes, vec!["client.disconnect_0x904", "host.logon_failures"]);
        assert!(ev.findings[1].detail.contains("3 failed RDP logons from 10.0.0.9"));
        assert!(analyse(&[]).findings.is_empty());
    }
}
