//! The probe against real RDP servers on loopback: xrdp in each security layer and with broken
//! certificates, FreeRDP's shadow server with NLA required and with RDP security only. Each
//! test asserts the full verdict through the real `rdpfleet-agent diagnose --json`.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use rdpfleet_e2e::certs::TestCa;
use rdpfleet_e2e::procs::bin;
use rdpfleet_e2e::rdp_servers::{XrdpCert, available, shadow, xrdp};
use rdpfleet_proto::check::CheckStatus;
use rdpfleet_proto::diagnosis::{Diagnosis, Layer, LayerStatus, NegotiationReply, Protocol, TlsVersion};

fn diagnose(target: &str, ca_bundle: &Path, dir: &Path) -> (Diagnosis, i32) {
    let out = std::process::Command::new(bin("rdpfleet-agent"))
        .arg("--state-dir")
        .arg(dir.join("agent-state"))
        .args(["diagnose", target, "--json", "--ca-bundle"])
        .arg(ca_bundle)
        .output()
        .unwrap();
    let d: Diagnosis = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    (d, out.status.code().unwrap_or(-1))
}

fn tls_accepted(d: &Diagnosis) -> Vec<TlsVersion> {
    d.tls.as_ref().map(|t| t.accepted()).unwrap_or_default()
}

fn layer(d: &Diagnosis, l: Layer) -> LayerStatus {
    d.layer(l).unwrap().status
}

fn cert_causes(d: &Diagnosis) -> Vec<String> {
    d.layer(Layer::Certificate).unwrap().findings.iter().map(|f| f.cause.clone()).collect()
}

struct Setup {
    dir: tempfile::TempDir,
    ca: TestCa,
    bundle: std::path::PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let bundle = ca.write_bundle(dir.path());
    Setup { dir, ca, bundle }
}

#[test]
fn xrdp_tls_with_a_good_certificate_is_healthy() {
    if !available("xrdp") {
        return;
    }
    let s = setup();
    let cert = s.ca.issue(s.dir.path(), "good", &["localhost", "127.0.0.1"], -1, 365);
    let server = xrdp(s.dir.path(), "tls", XrdpCert::Files(&cert));
    let (d, code) = diagnose(&format!("localhost:{}", server.port), &s.bundle, s.dir.path());
    assert_eq!((d.status, code), (CheckStatus::Pass, 0), "{d:#?}");
    let n = d.negotiation.as_ref().unwrap();
    assert_eq!(n.supported, vec![Protocol::Tls]);
    assert_eq!(n.minimum, Some(Protocol::Tls), "TLS is required");
    assert_eq!(n.selected_for_client, Some(Protocol::Tls));
    assert!(
        n.exchanges.iter().any(|e| e.requested == 0 && matches!(&e.reply, NegotiationReply::Failure { code: 1, .. })),
        "failure 1 for plain RDP"
    );
    assert_eq!(tls_accepted(&d), vec![TlsVersion::Tls12, TlsVersion::Tls13]);
    let c = d.certificate.as_ref().unwrap();
    assert!(c.name_matches && c.chain_trusted && !c.self_signed, "{c:#?}");
    assert!(cert_causes(&d).is_empty());
    assert_eq!(d.cause, None);
    assert!(d.has_cause("rdp.nla_not_required"), "xrdp never offers NLA: noted, not failed");
    assert_eq!(d.first_failing_layer, None);
}

#[test]
fn xrdp_negotiate_is_not_reported_as_supporting_nla() {
    if !available("xrdp") {
        return;
    }
    let s = setup();
    let cert = s.ca.issue(s.dir.path(), "good", &["127.0.0.1"], -1, 365);
    let server = xrdp(s.dir.path(), "negotiate", XrdpCert::Files(&cert));
    let (d, code) = diagnose(&format!("127.0.0.1:{}", server.port), &s.bundle, s.dir.path());
    assert_eq!((d.status, code), (CheckStatus::Pass, 0), "{d:#?}");
    let n = d.negotiation.as_ref().unwrap();
    assert_eq!(n.supported, vec![Protocol::Rdp, Protocol::Tls]);
    assert!(!n.supported.contains(&Protocol::Nla) && !n.supported.contains(&Protocol::NlaEx), "no false NLA");
    // xrdp answers a CredSSP-only request by selecting RDP — a protocol that was not requested.
    assert!(
        n.exchanges.iter().any(|e| e.requested == 2 && e.reply == NegotiationReply::Selected { protocol: 0, flags: 1 })
    );
    assert_eq!(n.minimum, Some(Protocol::Rdp));
    assert_eq!(n.selected_for_client, Some(Protocol::Tls));
    assert_eq!(tls_accepted(&d), vec![TlsVersion::Tls12, TlsVersion::Tls13]);
    assert!(cert_causes(&d).is_empty());
}

#[test]
fn xrdp_rdp_security_layer_fails_at_negotiation() {
    if !available("xrdp") {
        return;
    }
    let s = setup();
    let cert = s.ca.issue(s.dir.path(), "good", &["127.0.0.1"], -1, 365);
    let server = xrdp(s.dir.path(), "rdp", XrdpCert::Files(&cert));
    let (d, code) = diagnose(&format!("127.0.0.1:{}", server.port), &s.bundle, s.dir.path());
    assert_eq!((d.status, code), (CheckStatus::Fail, 1));
    assert_eq!(d.first_failing_layer, Some(Layer::Negotiation));
    assert_eq!(d.cause.as_deref(), Some("rdp.legacy_security_selected"));
    let n = d.negotiation.as_ref().unwrap();
    assert_eq!(n.supported, vec![Protocol::Rdp]);
    assert_eq!(n.minimum, Some(Protocol::Rdp));
    assert_eq!(n.selected_for_client, Some(Protocol::Rdp));
    assert_eq!(layer(&d, Layer::Tls), LayerStatus::NotReached);
    assert_eq!(layer(&d, Layer::Certificate), LayerStatus::NotReached);
}

#[test]
fn xrdp_with_an_expired_certificate() {
    if !available("xrdp") {
        return;
    }
    let s = setup();
    let cert = s.ca.issue(s.dir.path(), "expired", &["localhost", "127.0.0.1"], -400, -30);
    let server = xrdp(s.dir.path(), "tls", XrdpCert::Files(&cert));
    let (d, code) = diagnose(&format!("localhost:{}", server.port), &s.bundle, s.dir.path());
    assert_eq!((d.status, code), (CheckStatus::Fail, 1));
    assert_eq!(d.first_failing_layer, Some(Layer::Certificate));
    assert_eq!(d.cause.as_deref(), Some("cert.expired"));
    assert_eq!(cert_causes(&d), vec!["cert.expired"]);
    let c = d.certificate.as_ref().unwrap();
    assert!(c.days_left <= -29 && c.name_matches && c.chain_trusted, "read even though invalid: {c:#?}");
    assert_eq!(tls_accepted(&d), vec![TlsVersion::Tls12, TlsVersion::Tls13]);
    assert_eq!(d.negotiation.as_ref().unwrap().supported, vec![Protocol::Tls]);
}

#[test]
fn xrdp_with_a_certificate_for_the_wrong_name() {
    if !available("xrdp") {
        return;
    }
    let s = setup();
    let cert = s.ca.issue(s.dir.path(), "wrong", &["wrong.example"], -1, 365);
    let server = xrdp(s.dir.path(), "tls", XrdpCert::Files(&cert));
    let (d, code) = diagnose(&format!("localhost:{}", server.port), &s.bundle, s.dir.path());
    assert_eq!((d.status, code), (CheckStatus::Fail, 1));
    assert_eq!(d.cause.as_deref(), Some("cert.name_mismatch"));
    assert_eq!(cert_causes(&d), vec!["cert.name_mismatch"]);
    let c = d.certificate.as_ref().unwrap();
    assert_eq!(
        (c.dns_names.clone(), c.checked_name.as_str(), c.name_matches),
        (vec!["wrong.example".to_owned()], "localhost", false)
    );
    assert_eq!(tls_accepted(&d), vec![TlsVersion::Tls12, TlsVersion::Tls13]);
}

#[test]
fn xrdp_tls_without_a_certificate_answers_failure_3() {
    if !available("xrdp") {
        return;
    }
    let s = setup();
    let server = xrdp(s.dir.path(), "tls", XrdpCert::Missing);
    let (d, code) = diagnose(&format!("127.0.0.1:{}", server.port), &s.bundle, s.dir.path());
    assert_eq!((d.status, code), (CheckStatus::Fail, 1));
    assert_eq!(d.first_failing_layer, Some(Layer::Negotiation));
    assert_eq!(d.cause.as_deref(), Some("rdp.server_cert_missing"));
    let n = d.negotiation.as_ref().unwrap();
    assert!(
        n.exchanges.iter().any(|e| e.requested == 0xB && matches!(&e.reply, NegotiationReply::Failure { code: 3, .. }))
    );
    assert!(n.supported.is_empty(), "{n:#?}");
    assert_eq!(layer(&d, Layer::Tls), LayerStatus::NotReached);
}

#[test]
fn shadow_server_requiring_nla() {
    if !available("freerdp-shadow-cli") || !available("Xvfb") || !available("winpr-hash") {
        return;
    }
    let s = setup();
    let cert = s.ca.issue(s.dir.path(), "shadow", &["localhost", "127.0.0.1"], -1, 365);
    let server = shadow(s.dir.path(), "nla", &cert);
    let (d, code) = diagnose(&format!("localhost:{}", server.port), &s.bundle, s.dir.path());
    assert_eq!((d.status, code), (CheckStatus::Pass, 0), "{d:#?}");
    let n = d.negotiation.as_ref().unwrap();
    assert!(
        n.exchanges.iter().any(|e| e.requested == 0 && matches!(&e.reply, NegotiationReply::Failure { code: 5, .. })),
        "failure 5 without HYBRID"
    );
    assert!(
        n.supported.contains(&Protocol::Nla)
            && !n.supported.contains(&Protocol::Rdp)
            && !n.supported.contains(&Protocol::Tls),
        "{n:#?}"
    );
    assert_eq!(n.minimum, Some(Protocol::Nla));
    assert!(matches!(n.selected_for_client, Some(Protocol::Nla | Protocol::NlaEx)));
    assert!(tls_accepted(&d).contains(&TlsVersion::Tls12));
    assert!(!tls_accepted(&d).contains(&TlsVersion::Tls10));
    assert!(cert_causes(&d).is_empty(), "the certificate is read from an NLA-only server without credentials");
    assert!(!d.has_cause("rdp.nla_not_required"));
}

#[test]
fn shadow_server_with_rdp_security_only_refuses_tls() {
    if !available("freerdp-shadow-cli") || !available("Xvfb") || !available("winpr-hash") {
        return;
    }
    let s = setup();
    let cert = s.ca.issue(s.dir.path(), "shadow", &["localhost", "127.0.0.1"], -1, 365);
    let server = shadow(s.dir.path(), "rdp", &cert);
    let (d, code) = diagnose(&format!("localhost:{}", server.port), &s.bundle, s.dir.path());
    assert_eq!((d.status, code), (CheckStatus::Fail, 1));
    assert_eq!(d.first_failing_layer, Some(Layer::Negotiation));
    assert_eq!(d.cause.as_deref(), Some("rdp.tls_not_allowed"));
    let n = d.negotiation.as_ref().unwrap();
    assert!(
        n.exchanges.iter().any(|e| e.requested == 1 && matches!(&e.reply, NegotiationReply::Failure { code: 2, .. })),
        "failure 2 for SSL"
    );
    assert_eq!(n.supported, vec![Protocol::Rdp]);
    assert_eq!(n.minimum, Some(Protocol::Rdp));
    assert_eq!(layer(&d, Layer::Tls), LayerStatus::NotReached);
}
