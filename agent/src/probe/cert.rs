//! Judging a certificate chain: validity, name, self-signature, EKU, key and signature
//! strength, trust. Reads the certificate even when it is invalid — that is the point.
use std::net::IpAddr;

use ::time::OffsetDateTime;
use openssl::x509::X509;
use rdpfleet_proto::diagnosis::CertDetail;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use super::trust::TrustStore;

/// A problem with a certificate, independent of whose certificate it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertIssue {
    Expired,
    NotYetValid,
    ExpiringSoon,
    NameMismatch,
    SelfSigned,
    Untrusted,
    NoServerAuthEku,
    WeakKey,
    WeakSignature,
    Corrupt,
}

impl CertIssue {
    /// The cause id for a host's RDP certificate or an RD Gateway's.
    pub fn cause(self, gateway: bool) -> &'static str {
        match (self, gateway) {
            (CertIssue::Expired, false) => "cert.expired",
            (CertIssue::NotYetValid, false) => "cert.not_yet_valid",
            (CertIssue::ExpiringSoon, false) => "cert.expiring_soon",
            (CertIssue::NameMismatch, false) => "cert.name_mismatch",
            (CertIssue::SelfSigned, false) => "cert.self_signed",
            (CertIssue::Untrusted, false) => "cert.untrusted",
            (CertIssue::NoServerAuthEku, false) => "cert.no_server_auth_eku",
            (CertIssue::WeakKey, false) => "cert.weak_key",
            (CertIssue::WeakSignature, false) => "cert.weak_signature",
            (CertIssue::Corrupt, false) => "cert.corrupt",
            (CertIssue::Expired, true) => "gateway.cert_expired",
            (CertIssue::NotYetValid, true) => "gateway.cert_not_yet_valid",
            (CertIssue::ExpiringSoon, true) => "gateway.cert_expiring_soon",
            (CertIssue::NameMismatch, true) => "gateway.cert_name_mismatch",
            (CertIssue::SelfSigned, true) => "gateway.cert_self_signed",
            (CertIssue::Untrusted, true) => "gateway.cert_untrusted",
            (CertIssue::NoServerAuthEku, true) => "gateway.cert_no_server_auth_eku",
            (CertIssue::WeakKey, true) => "gateway.cert_weak_key",
            (CertIssue::WeakSignature, true) => "gateway.cert_weak_signature",
            (CertIssue::Corrupt, true) => "gateway.cert_corrupt",
        }
    }
}

const OID_SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";
/// Remote Desktop Authentication, accepted by Windows for RDP listeners.
const OID_RDP_AUTH: &str = "1.3.6.1.4.1.311.54.1.2";
const OID_ANY_EKU: &str = "2.5.29.37.0";
/// md2, md5, sha1 with RSA; ecdsa-with-SHA1; dsa-with-sha1.
const WEAK_SIGNATURES: [(&str, &str); 5] = [
    ("1.2.840.113549.1.1.2", "md2WithRSAEncryption"),
    ("1.2.840.113549.1.1.4", "md5WithRSAEncryption"),
    ("1.2.840.113549.1.1.5", "sha1WithRSAEncryption"),
    ("1.2.840.10045.4.1", "ecdsa-with-SHA1"),
    ("1.2.840.10040.4.3", "dsa-with-sha1"),
];

pub struct Judgement {
    pub detail: Option<CertDetail>,
    pub issues: Vec<(CertIssue, String)>,
}

/// Judges `chain` (leaf first, DER) as presented for `name`, at `now`.
pub fn judge(chain: &[Vec<u8>], name: &str, now: OffsetDateTime, warn_days: i64, trust: &TrustStore) -> Judgement {
    let Some(leaf_der) = chain.first() else {
        return Judgement { detail: None, issues: vec![(CertIssue::Corrupt, "the server sent no certificate".into())] };
    };
    let cert = match X509Certificate::from_der(leaf_der) {
        Ok((_, c)) => c,
        Err(e) => {
            return Judgement { detail: None, issues: vec![(CertIssue::Corrupt, format!("does not parse: {e}"))] };
        }
    };
    let mut issues = Vec::new();

    let not_before = OffsetDateTime::from_unix_timestamp(cert.validity().not_before.timestamp())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let not_after = OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let days_left = (not_after - now).whole_days();
    if now > not_after {
        issues.push((CertIssue::Expired, format!("expired on {} ({} days ago)", date(not_after), -days_left)));
    } else if now < not_before {
        issues.push((CertIssue::NotYetValid, format!("valid only from {}", date(not_before))));
    } else if days_left < warn_days {
        issues.push((CertIssue::ExpiringSoon, format!("expires on {} (in {days_left} days)", date(not_after))));
    }

    let common_names: Vec<String> =
        cert.subject().iter_common_name().filter_map(|cn| cn.as_str().ok()).map(str::to_owned).collect();
    let (mut dns_names, mut ip_addresses) = (Vec::new(), Vec::new());
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for gn in &san.value.general_names {
            match gn {
                GeneralName::DNSName(d) => dns_names.push((*d).to_owned()),
                GeneralName::IPAddress(b) => {
                    if let Some(ip) = ip_from_bytes(b) {
                        ip_addresses.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    let name_matches = name_matches(name, &dns_names, &ip_addresses, &common_names);
    if !name_matches {
        let presented: Vec<&str> =
            dns_names.iter().chain(ip_addresses.iter()).chain(common_names.iter()).map(String::as_str).collect();
        issues.push((
            CertIssue::NameMismatch,
            format!("issued to {} but the client connects to {name}", presented.join(", ")),
        ));
    }

    let self_signed = cert.subject().as_raw() == cert.issuer().as_raw()
        && X509::from_der(leaf_der)
            .ok()
            .and_then(|x| x.public_key().ok().map(|k| (x, k)))
            .is_some_and(|(x, k)| x.verify(&k).unwrap_or(false));

    let mut extended_key_usage = Vec::new();
    if let Ok(Some(eku)) = cert.extended_key_usage() {
        let e = &eku.value;
        let named = [
            (e.any, "any"),
            (e.server_auth, "serverAuth"),
            (e.client_auth, "clientAuth"),
            (e.code_signing, "codeSigning"),
            (e.email_protection, "emailProtection"),
            (e.time_stamping, "timeStamping"),
            (e.ocsp_signing, "OCSPSigning"),
        ];
        extended_key_usage.extend(named.iter().filter(|(on, _)| *on).map(|(_, n)| (*n).to_owned()));
        extended_key_usage.extend(e.other.iter().map(|o| o.to_id_string()));
        let ok = e.any
            || e.server_auth
            || e.other
                .iter()
                .any(|o| [OID_RDP_AUTH, OID_SERVER_AUTH, OID_ANY_EKU].contains(&o.to_id_string().as_str()));
        if !ok {
            issues
                .push((CertIssue::NoServerAuthEku, format!("extended key usage is {}", extended_key_usage.join(", "))));
        }
    }

    let (key_algorithm, key_bits) = match cert.public_key().parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => ("RSA".to_owned(), Some(rsa.key_size() as u32)),
        Ok(x509_parser::public_key::PublicKey::EC(ec)) => ("EC".to_owned(), Some(ec.key_size() as u32)),
        Ok(x509_parser::public_key::PublicKey::DSA(_)) => ("DSA".to_owned(), None),
        _ => (cert.public_key().algorithm.algorithm.to_id_string(), None),
    };
    let weak_key = match (key_algorithm.as_str(), key_bits) {
        ("RSA", Some(b)) => b < 2048,
        ("EC", Some(b)) => b < 256,
        ("DSA", _) => true,
        _ => false,
    };
    if weak_key {
        issues.push((
            CertIssue::WeakKey,
            format!("{key_algorithm} key of {} bits", key_bits.map_or("?".into(), |b| b.to_string())),
        ));
    }

    let sig_oid = cert.signature_algorithm.algorithm.to_id_string();
    let weak_sig = WEAK_SIGNATURES.iter().find(|(oid, _)| *oid == sig_oid);
    let signature_algorithm = weak_sig.map_or_else(|| signature_name(&sig_oid), |(_, n)| (*n).to_owned());
    if let Some((_, n)) = weak_sig {
        issues.push((CertIssue::WeakSignature, format!("signed with {n}")));
    }

    let trust_result = trust.verify(chain);
    let chain_trusted = trust_result.is_ok();
    if let Err(reason) = &trust_result {
        if self_signed {
            issues.push((CertIssue::SelfSigned, "self-signed and not in this machine's trusted roots".into()));
        } else {
            issues.push((CertIssue::Untrusted, format!("chain does not verify: {reason}")));
        }
    }

    let detail = CertDetail {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        common_names,
        dns_names,
        ip_addresses,
        not_before,
        not_after,
        days_left,
        self_signed,
        extended_key_usage,
        key_algorithm,
        key_bits,
        signature_algorithm,
        checked_name: name.to_owned(),
        name_matches,
        chain_trusted,
        chain_error: trust_result.err(),
        sha1_thumbprint: hex_upper(&openssl::sha::sha1(leaf_der)),
        sha256_fingerprint: hex_upper(&openssl::sha::sha256(leaf_der)),
        chain_length: chain.len(),
    };
    Judgement { detail: Some(detail), issues }
}

fn date(t: OffsetDateTime) -> String {
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn signature_name(oid: &str) -> String {
    match oid {
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "rsassaPss",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.3.101.112" => "ed25519",
        other => other,
    }
    .to_owned()
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
        _ => None,
    }
}

/// RFC 6125 matching as Schannel does it: an IP address matches IP SANs; a DNS name matches
/// DNS SANs (a wildcard covers exactly one left-most label), and the common name only when the
/// certificate has no DNS SAN. Case-insensitive; a trailing dot is ignored.
pub fn name_matches(name: &str, dns_names: &[String], ip_addresses: &[String], common_names: &[String]) -> bool {
    if let Ok(ip) = name.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return ip_addresses.iter().any(|a| a.parse::<IpAddr>().is_ok_and(|a| a == ip));
    }
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let candidates: &[String] = if dns_names.is_empty() { common_names } else { dns_names };
    candidates.iter().any(|pattern| dns_pattern_matches(&pattern.trim_end_matches('.').to_ascii_lowercase(), &name))
}

fn dns_pattern_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            // The wildcard stands for one whole, non-empty label, and never for a bare suffix
            // with fewer than two labels (no `*.com`).
            suffix.contains('.')
                && name.split_once('.').is_some_and(|(first, rest)| !first.is_empty() && rest == suffix)
        }
        None => pattern == name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn name_matching_follows_rfc_6125() {
        let dns = s(&["rdp01.corp.example", "*.hosts.corp.example"]);
        assert!(name_matches("rdp01.corp.example", &dns, &[], &[]));
        assert!(name_matches("RDP01.Corp.Example.", &dns, &[], &[]));
        assert!(name_matches("h7.hosts.corp.example", &dns, &[], &[]));
        assert!(!name_matches("a.h7.hosts.corp.example", &dns, &[], &[]), "wildcards cover one label");
        assert!(!name_matches("hosts.corp.example", &dns, &[], &[]));
        assert!(!name_matches("rdp01", &dns, &[], &[]), "a short name is not the FQDN");
        assert!(
            !name_matches("rdp02.corp.example", &dns, &[], &s(&["rdp02.corp.example"])),
            "CN ignored when SANs exist"
        );
        assert!(name_matches("rdp02.corp.example", &[], &[], &s(&["rdp02.corp.example"])), "CN used without SANs");
        assert!(!name_matches("x.com", &s(&["*.com"]), &[], &[]));
        assert!(name_matches("10.0.0.5", &[], &s(&["10.0.0.5"]), &[]));
        assert!(!name_matches("10.0.0.5", &s(&["10.0.0.5"]), &[], &s(&["10.0.0.5"])), "IPs match IP SANs only");
        assert!(name_matches("::1", &[], &s(&["::1"]), &[]));
    }

    #[test]
    fn causes_differ_for_host_and_gateway() {
        assert_eq!(CertIssue::Expired.cause(false), "cert.expired");
        assert_eq!(CertIssue::Expired.cause(true), "gateway.cert_expired");
        for issue in [
            CertIssue::Expired,
            CertIssue::NotYetValid,
            CertIssue::ExpiringSoon,
            CertIssue::NameMismatch,
            CertIssue::SelfSigned,
            CertIssue::Untrusted,
            CertIssue::NoServerAuthEku,
            CertIssue::WeakKey,
            CertIssue::WeakSignature,
            CertIssue::Corrupt,
        ] {
            for gw in [false, true] {
                assert!(
                    rdpfleet_proto::causes::lookup(issue.cause(gw)).is_some(),
                    "{issue:?} {gw} is in the catalogue"
                );
            }
        }
    }

    #[test]
    fn garbage_and_empty_chains_are_corrupt_not_panics() {
        let trust = TrustStore::load(None, false).unwrap();
        let j = judge(&[], "h", OffsetDateTime::now_utc(), 30, &trust);
        assert_eq!(j.issues[0].0, CertIssue::Corrupt);
        let j = judge(&[vec![0x30, 0x82, 0xff]], "h", OffsetDateTime::now_utc(), 30, &trust);
        assert_eq!(j.issues[0].0, CertIssue::Corrupt);
        assert!(j.detail.is_none());
    }
}
