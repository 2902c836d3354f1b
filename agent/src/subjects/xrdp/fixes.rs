//! Fixes for xrdp hosts: renew the certificate, set the security layer.
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, SubjectAlternativeName};
use openssl::x509::{X509, X509NameBuilder};
use serde_json::Value;

use super::checks::{self, verdict};
use super::{XrdpConfig, XrdpSettings, ini};
use crate::engine::fix::{Backup, Fix, FixError, Verdict, no_params};
use crate::platform::{Platform, ServiceState};

/// Days a renewed certificate is valid.
const RENEWED_VALIDITY_DAYS: u32 = 365;

pub fn fixes(settings: &XrdpSettings) -> Vec<Box<dyn Fix>> {
    vec![Box::new(RenewCertificate(settings.clone())), Box::new(SetSecurityLayer(settings.clone()))]
}

fn config(p: &Platform, s: &XrdpSettings) -> Result<XrdpConfig, FixError> {
    checks::load(p, s)?.ok_or_else(|| {
        FixError::Precondition(format!("{} does not exist: xrdp is not installed here", s.ini.display()))
    })
}

/// Restarts the service when systemd manages it; xrdp reads its files per connection anyway.
fn restart(p: &Platform, s: &XrdpSettings) {
    if matches!(p.services.state(&s.service), Ok(ServiceState::Running | ServiceState::Stopped)) {
        if let Err(e) = p.services.restart(&s.service) {
            tracing::warn!(error = %e, service = %s.service, "restart failed; xrdp re-reads its files per connection");
        }
    }
}

/// A new self-signed certificate for the host's names (SHA-256, RSA 2048, EKU Server
/// Authentication), replacing an expired, expiring, mismatched or missing one.
pub struct RenewCertificate(pub XrdpSettings);

impl Fix for RenewCertificate {
    fn id(&self) -> &'static str {
        "xrdp.cert.renew"
    }

    fn verify(&self, p: &Platform, params: &Value) -> Result<Verdict, FixError> {
        no_params(params)?;
        let cfg = config(p, &self.0)?;
        Ok(verdict(&checks::certificate(p, &cfg, &self.0, time::OffsetDateTime::now_utc())?))
    }

    fn backup(&self, p: &Platform, _: &Value) -> Result<Backup, FixError> {
        let cfg = config(p, &self.0)?;
        let mut b = Backup::default();
        b.file(p, &cfg.certificate)?;
        b.file(p, &cfg.key_file)?;
        Ok(b)
    }

    fn apply(&self, p: &Platform, _: &Value) -> Result<(), FixError> {
        let cfg = config(p, &self.0)?;
        let (cert, key) = self_signed(&self.0.names())
            .map_err(|e| FixError::Precondition(format!("cannot create a certificate: {e}")))?;
        p.files.write(&cfg.key_file, &key, 0o600)?;
        p.files.write(&cfg.certificate, &cert, 0o644)?;
        restart(p, &self.0);
        Ok(())
    }
}

/// PEM certificate and PKCS#8 key.
fn self_signed(names: &[String]) -> Result<(Vec<u8>, Vec<u8>), openssl::error::ErrorStack> {
    let key = PKey::from_rsa(Rsa::generate(2048)?)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("CN", names.first().map_or("localhost", String::as_str))?;
    let name = name.build();
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(64, MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(&key)?;
    // Backdated an hour so a slightly slow client clock does not see "not yet valid".
    let not_before = Asn1Time::from_unix(time::OffsetDateTime::now_utc().unix_timestamp() - 3600)?;
    let not_after = Asn1Time::days_from_now(RENEWED_VALIDITY_DAYS)?;
    b.set_not_before(&not_before)?;
    b.set_not_after(&not_after)?;
    let mut san = SubjectAlternativeName::new();
    for n in names {
        if n.parse::<std::net::IpAddr>().is_ok() {
            san.ip(n);
        } else {
            san.dns(n);
        }
    }
    let san = san.build(&b.x509v3_context(None, None))?;
    b.append_extension(san)?;
    b.append_extension(BasicConstraints::new().build()?)?;
    b.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
    b.sign(&key, MessageDigest::sha256())?;
    Ok((b.build().to_pem()?, key.private_key_to_pem_pkcs8()?))
}

/// `{"level": "tls"}` (default) or `{"level": "negotiate"}`.
pub struct SetSecurityLayer(pub XrdpSettings);

fn level(params: &Value) -> Result<&str, FixError> {
    if params.as_object().is_some_and(|m| m.keys().any(|k| k != "level")) {
        return Err(FixError::Params("only \"level\" is accepted".into()));
    }
    match params.get("level") {
        None => Ok("tls"),
        Some(Value::String(s)) if s == "tls" || s == "negotiate" => Ok(s),
        _ => Err(FixError::Params("level must be \"tls\" or \"negotiate\"".into())),
    }
}

impl Fix for SetSecurityLayer {
    fn id(&self) -> &'static str {
        "xrdp.security_layer.set"
    }

    fn verify(&self, p: &Platform, params: &Value) -> Result<Verdict, FixError> {
        let want = level(params)?;
        let cfg = config(p, &self.0)?;
        let ok = cfg.security_layer == want;
        Ok(Verdict { ok, detail: format!("security_layer={}", cfg.security_layer) })
    }

    fn backup(&self, p: &Platform, _: &Value) -> Result<Backup, FixError> {
        let mut b = Backup::default();
        b.file(p, &self.0.ini)?;
        Ok(b)
    }

    fn apply(&self, p: &Platform, params: &Value) -> Result<(), FixError> {
        let want = level(params)?;
        let text = p.files.read(&self.0.ini)?.ok_or_else(|| FixError::Precondition("xrdp.ini vanished".into()))?;
        let edited = ini::set(&String::from_utf8_lossy(&text), "Globals", "security_layer", want);
        p.files.write(&self.0.ini, edited.as_bytes(), 0o644)?;
        restart(p, &self.0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fix::{FixOutcome, run};
    use crate::platform::memory::MemoryPlatform;
    use serde_json::json;
    use std::path::PathBuf;

    fn host(cert: Option<(Vec<u8>, Vec<u8>)>) -> (MemoryPlatform, XrdpSettings) {
        let m = MemoryPlatform::new();
        let s = XrdpSettings {
            ini: "/etc/xrdp/xrdp.ini".into(),
            names: vec!["rdp01.corp.example".into()],
            ..XrdpSettings::default()
        };
        let p = m.platform();
        p.files.write(&s.ini, b"[Globals]\nsecurity_layer=rdp\ncertificate=/etc/xrdp/c.pem\nkey_file=/etc/xrdp/k.pem\n[Xorg]\nport=-1\n", 0o644).unwrap();
        if let Some((c, k)) = cert {
            p.files.write(&PathBuf::from("/etc/xrdp/c.pem"), &c, 0o644).unwrap();
            p.files.write(&PathBuf::from("/etc/xrdp/k.pem"), &k, 0o600).unwrap();
        }
        m.services.states.lock().unwrap().insert("xrdp".into(), ServiceState::Running);
        (m, s)
    }

    #[test]
    fn renew_replaces_a_wrong_name_certificate_and_restarts() {
        let wrong = self_signed(&["other.example".into()]).unwrap();
        let (m, s) = host(Some(wrong));
        let p = m.platform();
        let fix = RenewCertificate(s.clone());
        let before = fix.verify(&p, &json!({})).unwrap();
        assert!(!before.ok && before.detail.contains("cert.name_mismatch"), "{before:?}");
        let r = run(&fix, &p, &json!({}), false);
        assert_eq!(r.outcome, FixOutcome::Succeeded, "{r:?}");
        assert_eq!(*m.services.restarts.lock().unwrap(), vec!["xrdp".to_owned()]);
        assert_eq!(run(&fix, &p, &json!({}), false).outcome, FixOutcome::AlreadyCompliant);
        // The backup restores the old certificate exactly.
        r.backup.restore(&p).unwrap();
        assert!(!fix.verify(&p, &json!({})).unwrap().ok);
    }

    #[test]
    fn renew_creates_a_missing_certificate_and_rollback_removes_it() {
        let (m, s) = host(None);
        let p = m.platform();
        let fix = RenewCertificate(s);
        assert!(fix.verify(&p, &json!({})).unwrap().detail.contains("rdp.server_cert_missing"));
        let backup = fix.backup(&p, &json!({})).unwrap();
        fix.apply(&p, &json!({})).unwrap();
        assert!(fix.verify(&p, &json!({})).unwrap().ok);
        backup.restore(&p).unwrap();
        assert!(p.files.read(&PathBuf::from("/etc/xrdp/c.pem")).unwrap().is_none(), "did not exist: removed again");
    }

    #[test]
    fn a_symlinked_certificate_is_restored_as_a_link() {
        let (m, s) = host(None);
        let p = m.platform();
        let shared = self_signed(&["snakeoil".into()]).unwrap();
        p.files.write(&PathBuf::from("/etc/ssl/snakeoil.pem"), &shared.0, 0o644).unwrap();
        p.files.symlink(&PathBuf::from("/etc/ssl/snakeoil.pem"), &PathBuf::from("/etc/xrdp/c.pem")).unwrap();
        p.files.write(&PathBuf::from("/etc/xrdp/k.pem"), &shared.1, 0o600).unwrap();
        let fix = RenewCertificate(s);
        let backup = fix.backup(&p, &json!({})).unwrap();
        fix.apply(&p, &json!({})).unwrap();
        assert_eq!(
            p.files.read(&PathBuf::from("/etc/ssl/snakeoil.pem")).unwrap().unwrap(),
            shared.0,
            "the shared file is untouched"
        );
        backup.restore(&p).unwrap();
        assert_eq!(
            p.files.read_link(&PathBuf::from("/etc/xrdp/c.pem")).unwrap(),
            Some(PathBuf::from("/etc/ssl/snakeoil.pem"))
        );
    }

    #[test]
    fn security_layer_is_set_and_the_rest_of_the_file_kept() {
        let (m, s) = host(None);
        let p = m.platform();
        let fix = SetSecurityLayer(s.clone());
        assert_eq!(
            run(&fix, &p, &json!({"level": "rdp"}), false).outcome,
            FixOutcome::Failed,
            "rdp is what is being fixed"
        );
        let r = run(&fix, &p, &json!({}), false);
        assert_eq!(r.outcome, FixOutcome::Succeeded, "{r:?}");
        let text = String::from_utf8(p.files.read(&s.ini).unwrap().unwrap()).unwrap();
        assert_eq!(
            text,
            "[Globals]\nsecurity_layer=tls\ncertificate=/etc/xrdp/c.pem\nkey_file=/etc/xrdp/k.pem\n[Xorg]\nport=-1\n"
        );
        r.backup.restore(&p).unwrap();
        assert!(String::from_utf8(p.files.read(&s.ini).unwrap().unwrap()).unwrap().contains("security_layer=rdp"));
    }

    #[test]
    fn checks_name_problems_with_probe_causes() {
        let cfg = XrdpConfig {
            security_layer: "rdp".into(),
            certificate: "/c".into(),
            key_file: "/k".into(),
            ssl_protocols: vec!["TLSv1".into(), "TLSv1.1".into()],
        };
        assert_eq!(checks::security_layer(&cfg)[0].0, "rdp.legacy_security_selected");
        assert_eq!(checks::tls_protocols(&cfg)[0].0, "tls.legacy_only");
        let ok =
            XrdpConfig { security_layer: "tls".into(), ssl_protocols: vec!["TLSv1.2".into(), "TLSv1.3".into()], ..cfg };
        assert!(checks::security_layer(&ok).is_empty() && checks::tls_protocols(&ok).is_empty());
    }
}
