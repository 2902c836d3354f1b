//! What is wrong with an xrdp host's configuration, named with the same causes the network
//! probe uses, so a host's own report and its clients' observations correlate.
use crate::engine::check::problem;
use rdpfleet_proto::causes::Severity;
use rdpfleet_proto::check::CheckStatus;

use super::{XrdpConfig, XrdpSettings};
use crate::engine::fix::Verdict;
use crate::platform::{Platform, PlatformResult};
use crate::probe::cert::{CertIssue, judge};
use crate::probe::layers::verdict_for;
use crate::probe::trust::TrustStore;

/// One problem: its cause id, severity and detail.
pub type Problem = (&'static str, Severity, String);

pub fn load(p: &Platform, s: &XrdpSettings) -> PlatformResult<Option<XrdpConfig>> {
    Ok(p.files.read(&s.ini)?.map(|b| XrdpConfig::parse(&String::from_utf8_lossy(&b), &s.ini)))
}

pub fn security_layer(cfg: &XrdpConfig) -> Vec<Problem> {
    match cfg.security_layer.as_str() {
        "rdp" => vec![problem(
            "rdp.legacy_security_selected",
            "security_layer=rdp: xrdp selects legacy RDP security even when clients offer TLS".into(),
        )],
        "tls" | "negotiate" | "hybrid" => vec![],
        other => vec![problem("rdp.negotiation_refused", format!("security_layer={other} is not a value xrdp knows"))],
    }
}

pub fn tls_protocols(cfg: &XrdpConfig) -> Vec<Problem> {
    if cfg.ssl_protocols.is_empty() {
        return vec![];
    }
    let has = |v: &str| cfg.ssl_protocols.iter().any(|p| p.eq_ignore_ascii_case(v));
    if !has("TLSv1.2") && !has("TLSv1.3") {
        return vec![problem(
            "tls.legacy_only",
            format!("ssl_protocols={} offers neither TLS 1.2 nor 1.3", cfg.ssl_protocols.join(", ")),
        )];
    }
    if has("TLSv1") || has("TLSv1.1") {
        return vec![problem(
            "tls.legacy_enabled",
            format!("ssl_protocols={} still includes TLS 1.0/1.1", cfg.ssl_protocols.join(", ")),
        )];
    }
    vec![]
}

/// The certificate xrdp serves: present with its key, valid, not expiring, issued for one of
/// the host's names. Trust is not judged: xrdp certificates are usually self-signed.
pub fn certificate(
    p: &Platform,
    cfg: &XrdpConfig,
    s: &XrdpSettings,
    now: time::OffsetDateTime,
) -> PlatformResult<Vec<Problem>> {
    let Some(pem) = p.files.read(&cfg.certificate)? else {
        return Ok(vec![problem("rdp.server_cert_missing", format!("{} does not exist", cfg.certificate.display()))]);
    };
    if p.files.read(&cfg.key_file)?.is_none() {
        return Ok(vec![problem("rdp.server_cert_missing", format!("{} does not exist", cfg.key_file.display()))]);
    }
    let chain: Vec<Vec<u8>> = openssl::x509::X509::stack_from_pem(&pem)
        .ok()
        .unwrap_or_default()
        .iter()
        .filter_map(|x| x.to_der().ok())
        .collect();
    if chain.is_empty() {
        return Ok(vec![problem("cert.corrupt", format!("{} holds no PEM certificate", cfg.certificate.display()))]);
    }
    let Ok(trust) = TrustStore::load(None, false) else {
        return Ok(vec![]);
    };
    let names = s.names();
    // The certificate must suit at least one of the host's names; report the others only when none does.
    let judgements: Vec<_> = names.iter().map(|n| judge(&chain, n, now, s.expiry_warn_days, &trust)).collect();
    let best = judgements
        .iter()
        .min_by_key(|j| j.issues.iter().filter(|(i, _)| *i == CertIssue::NameMismatch).count())
        .map(|j| &j.issues);
    Ok(best
        .into_iter()
        .flatten()
        .filter(|(i, _)| !matches!(i, CertIssue::SelfSigned | CertIssue::Untrusted))
        .map(|(i, text)| {
            let cause = i.cause(false);
            let sev = rdpfleet_proto::causes::lookup(cause).map_or(Severity::High, |c| c.severity);
            (cause, sev, text.clone())
        })
        .collect())
}

/// A problem that would make the check warn or fail also fails the fix's verification.
pub fn verdict(problems: &[Problem]) -> Verdict {
    let serious: Vec<String> = problems
        .iter()
        .filter(|(_, s, _)| verdict_for(Some(*s)) != CheckStatus::Pass)
        .map(|(c, _, d)| format!("{c}: {d}"))
        .collect();
    Verdict { ok: serious.is_empty(), detail: if serious.is_empty() { "compliant".into() } else { serious.join("; ") } }
}
