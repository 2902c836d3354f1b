//! The RDP listener's certificate on a Windows host: which one is in force (the certificate bound
//! by `SSLCertificateSHA1Hash` in LocalMachine\My, else the self-signed one in the "Remote
//! Desktop" store), what is wrong with it, and the fix that regenerates the self-signed one:
//! delete it, restart TermService (which creates a new one), verify.
use crate::engine::check::problem;
use std::time::{Duration, Instant};

use rdpfleet_proto::causes::Severity;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::engine::fix::{Backup, Fix, FixError, Verdict, no_params};
use crate::platform::certstore::{PERSONAL_STORE, REMOTE_DESKTOP_STORE, StoredCert};
use crate::platform::{Platform, PlatformError, PlatformResult, RegValue, ServiceState};

use crate::subjects::registry_fixes::RDP_TCP_KEY;

pub const TERMSERVICE: &str = "TermService";
/// Certificates expiring within this many days count as expiring (the check's default).
pub const DEFAULT_WARN_DAYS: i64 = 30;
/// How long the fix waits for TermService to create the new certificate.
const REGENERATE_WAIT: Duration = Duration::from_secs(30);

pub type Problem = (&'static str, Severity, String);

/// Where the listener's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `SSLCertificateSHA1Hash` names a certificate in LocalMachine\My.
    Bound(String),
    SelfSigned,
}

/// The bound thumbprint, if any (REG_BINARY, or a hex string as some scripts write it).
pub fn bound_thumbprint(p: &Platform) -> PlatformResult<Option<String>> {
    Ok(match p.registry.get(RDP_TCP_KEY, "SSLCertificateSHA1Hash")? {
        Some(RegValue::Binary(b)) if !b.is_empty() => Some(b.iter().map(|x| format!("{x:02X}")).collect()),
        Some(RegValue::String(s)) if !s.trim().is_empty() => Some(crate::platform::certstore::normalise_thumbprint(&s)),
        _ => None,
    })
}

/// What is wrong with one certificate, judged at `now`.
pub fn judge(c: &StoredCert, now: OffsetDateTime, warn_days: i64) -> (Vec<Problem>, Value) {
    let mut problems = Vec::new();
    let parsed = x509_parser::parse_x509_certificate(&c.der);
    let Ok((_, x)) = parsed else {
        let detail = format!("certificate {} cannot be parsed", c.thumbprint);
        return (vec![("cert.corrupt", Severity::Critical, detail)], json!({"thumbprint": c.thumbprint}));
    };
    let (nb, na) = (x.validity().not_before.to_datetime(), x.validity().not_after.to_datetime());
    let subject = x.subject().to_string();
    if now > na {
        problems.push(problem("host.listener_cert_expired", format!("{subject} expired on {}", na.date())));
    } else if now < nb {
        problems.push(problem("host.listener_cert_expired", format!("{subject} is not valid before {}", nb.date())));
    } else if na - now < time::Duration::days(warn_days) {
        let days = (na - now).whole_days();
        problems.push(problem(
            "host.listener_cert_expiring",
            format!("{subject} expires in {days} day(s), on {}", na.date()),
        ));
    }
    if !c.has_private_key {
        problems.push(problem(
            "host.listener_cert_no_key",
            format!("{subject} ({}) has no usable private key", c.thumbprint),
        ));
    }
    let evidence = json!({
        "thumbprint": c.thumbprint,
        "subject": subject,
        "not_before": nb.unix_timestamp(),
        "not_after": na.unix_timestamp(),
        "has_private_key": c.has_private_key,
    });
    (problems, evidence)
}

fn not_after(c: &StoredCert) -> i64 {
    x509_parser::parse_x509_certificate(&c.der).map_or(i64::MIN, |(_, x)| x.validity().not_after.timestamp())
}

/// The listener certificate's problems and evidence.
pub fn evaluate(p: &Platform, now: OffsetDateTime, warn_days: i64) -> PlatformResult<(Source, Vec<Problem>, Value)> {
    if let Some(tp) = bound_thumbprint(p)? {
        let source = Source::Bound(tp.clone());
        return Ok(match p.certs.list(PERSONAL_STORE)?.into_iter().find(|c| c.thumbprint == tp) {
            Some(c) => {
                let (problems, mut ev) = judge(&c, now, warn_days);
                ev["source"] = json!("bound");
                (source, problems, ev)
            }
            None => (
                source,
                vec![problem(
                    "host.listener_cert_missing",
                    format!("SSLCertificateSHA1Hash names {tp}, which is not in LocalMachine\\My"),
                )],
                json!({"source": "bound", "thumbprint": tp}),
            ),
        });
    }
    // TermService uses the newest certificate of the store.
    let newest = p.certs.list(REMOTE_DESKTOP_STORE)?.into_iter().max_by_key(not_after);
    Ok(match newest {
        Some(c) => {
            let (problems, mut ev) = judge(&c, now, warn_days);
            ev["source"] = json!("self_signed");
            (Source::SelfSigned, problems, ev)
        }
        None => (
            Source::SelfSigned,
            vec![problem(
                "host.listener_cert_missing",
                "the Remote Desktop certificate store holds no certificate".to_owned(),
            )],
            json!({"source": "self_signed"}),
        ),
    })
}

/// Regenerates the self-signed listener certificate. Restarting TermService disconnects the
/// sessions on the host.
pub struct RegenerateSelfSigned;

impl Fix for RegenerateSelfSigned {
    fn id(&self) -> &'static str {
        "host.cert.regenerate"
    }

    fn verify(&self, p: &Platform, params: &Value) -> Result<Verdict, FixError> {
        no_params(params)?;
        let (source, problems, _) = evaluate(p, OffsetDateTime::now_utc(), DEFAULT_WARN_DAYS)?;
        let ok = problems.is_empty() && source == Source::SelfSigned;
        let detail = match (&source, problems.is_empty()) {
            (Source::Bound(tp), _) => format!("the listener uses the bound certificate {tp}"),
            (Source::SelfSigned, true) => "the self-signed certificate is valid".to_owned(),
            (Source::SelfSigned, false) => problems.iter().map(|p| p.2.as_str()).collect::<Vec<_>>().join("; "),
        };
        Ok(Verdict { ok, detail })
    }

    fn precondition(&self, p: &Platform, _: &Value) -> Result<(), FixError> {
        if let Some(tp) = bound_thumbprint(p)? {
            return Err(FixError::Precondition(format!(
                "the listener is bound to certificate {tp} (SSLCertificateSHA1Hash); renew or rebind that one"
            )));
        }
        if p.services.state(TERMSERVICE)? == ServiceState::NotInstalled {
            return Err(FixError::Precondition("TermService is not installed".into()));
        }
        Ok(())
    }

    fn backup(&self, p: &Platform, _: &Value) -> Result<Backup, FixError> {
        let mut b = Backup::default();
        b.cert_store(p, REMOTE_DESKTOP_STORE)?;
        Ok(b)
    }

    fn apply(&self, p: &Platform, _: &Value) -> Result<(), FixError> {
        let old: Vec<String> = p.certs.list(REMOTE_DESKTOP_STORE)?.into_iter().map(|c| c.thumbprint).collect();
        for tp in &old {
            p.certs.delete(REMOTE_DESKTOP_STORE, tp)?;
        }
        p.services.restart(TERMSERVICE)?;
        let deadline = Instant::now() + REGENERATE_WAIT;
        loop {
            if p.certs.list(REMOTE_DESKTOP_STORE)?.iter().any(|c| !old.contains(&c.thumbprint)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(FixError::Platform(PlatformError::Io(format!(
                    "TermService did not create a new certificate within {REGENERATE_WAIT:?}"
                ))));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::engine::fix::{FixOutcome, run};
    use crate::platform::memory::MemoryPlatform;

    /// A self-signed certificate valid from `from` to `to` (days relative to now).
    pub(crate) fn cert(cn: &str, from: i64, to: i64) -> Vec<u8> {
        use openssl::asn1::Asn1Time;
        use openssl::pkey::PKey;
        use openssl::x509::{X509, X509NameBuilder};
        let key = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        b.set_not_before(&Asn1Time::from_unix(now + from * 86400).unwrap()).unwrap();
        b.set_not_after(&Asn1Time::from_unix(now + to * 86400).unwrap()).unwrap();
        b.sign(&key, openssl::hash::MessageDigest::sha256()).unwrap();
        b.build().to_der().unwrap()
    }

    fn host(regenerates: bool) -> MemoryPlatform {
        let m = MemoryPlatform::new();
        m.services.set(TERMSERVICE, ServiceState::Running);
        if regenerates {
            let certs = m.certs.clone();
            m.services.on_start.lock().unwrap().insert(
                TERMSERVICE.to_lowercase(),
                Box::new(move || {
                    certs.add(REMOTE_DESKTOP_STORE, cert("H.corp.example", -1, 180), true);
                }),
            );
        }
        m
    }

    fn causes(p: &Platform) -> Vec<&'static str> {
        evaluate(p, OffsetDateTime::now_utc(), 30).unwrap().1.into_iter().map(|p| p.0).collect()
    }

    #[test]
    fn each_listener_problem_is_named() {
        let m = host(false);
        let p = m.platform();
        assert_eq!(causes(&p), vec!["host.listener_cert_missing"], "empty store");
        m.certs.add(REMOTE_DESKTOP_STORE, cert("H", -400, -10), true);
        assert_eq!(causes(&p), vec!["host.listener_cert_expired"]);
        m.certs.add(REMOTE_DESKTOP_STORE, cert("H", -170, 10), false);
        assert_eq!(
            causes(&p),
            vec!["host.listener_cert_expiring", "host.listener_cert_no_key"],
            "the newest certificate is the one in force"
        );
        // A bound certificate takes precedence, and must be in My.
        let bound = m.certs.add(PERSONAL_STORE, cert("H", -1, 365), true);
        let raw: Vec<u8> = (0..20).map(|i| u8::from_str_radix(&bound[i * 2..i * 2 + 2], 16).unwrap()).collect();
        p.registry.set(RDP_TCP_KEY, "SSLCertificateSHA1Hash", &RegValue::Binary(raw)).unwrap();
        assert_eq!(causes(&p), Vec::<&str>::new());
        p.registry.set(RDP_TCP_KEY, "SSLCertificateSHA1Hash", &RegValue::String("00 11".into())).unwrap();
        assert_eq!(causes(&p), vec!["host.listener_cert_missing"]);
        m.certs.add(REMOTE_DESKTOP_STORE, b"garbage".to_vec(), true);
        p.registry.delete_value(RDP_TCP_KEY, "SSLCertificateSHA1Hash").unwrap();
        let (_, problems, _) = evaluate(&p, OffsetDateTime::now_utc(), 30).unwrap();
        assert!(!problems.is_empty());
    }

    #[test]
    fn regenerate_replaces_an_expired_certificate_and_is_idempotent() {
        let m = host(true);
        let p = m.platform();
        let old = m.certs.add(REMOTE_DESKTOP_STORE, cert("H", -400, -10), true);
        let r = run(&RegenerateSelfSigned, &p, &json!({}), false);
        assert_eq!(r.outcome, FixOutcome::Succeeded, "{r:?}");
        let now = p.certs.list(REMOTE_DESKTOP_STORE).unwrap();
        assert_eq!(now.len(), 1);
        assert_ne!(now[0].thumbprint, old);
        assert_eq!(*m.services.restarts.lock().unwrap(), vec![TERMSERVICE.to_owned()]);
        let again = run(&RegenerateSelfSigned, &p, &json!({}), false);
        assert_eq!(again.outcome, FixOutcome::AlreadyCompliant);
    }

    #[test]
    fn when_termservice_makes_no_certificate_the_old_one_is_restored() {
        let m = host(false);
        let p = m.platform();
        let old = cert("H", -400, -10);
        m.certs.add(REMOTE_DESKTOP_STORE, old.clone(), true);
        let before = p.certs.list(REMOTE_DESKTOP_STORE).unwrap();
        // TermService "creates" a certificate that is itself expired: verification fails.
        let certs = m.certs.clone();
        m.services.on_start.lock().unwrap().insert(
            TERMSERVICE.to_lowercase(),
            Box::new(move || {
                certs.add(REMOTE_DESKTOP_STORE, cert("H", -400, -1), true);
            }) as crate::platform::memory::StartHook,
        );
        let r = run(&RegenerateSelfSigned, &p, &json!({}), false);
        assert_eq!(r.outcome, FixOutcome::RolledBack, "{r:?}");
        assert_eq!(p.certs.list(REMOTE_DESKTOP_STORE).unwrap(), before, "exactly the old store back");
    }

    #[test]
    fn a_bound_certificate_is_not_regenerated() {
        let m = host(true);
        let p = m.platform();
        m.certs.add(REMOTE_DESKTOP_STORE, cert("H", -400, -10), true);
        p.registry.set(RDP_TCP_KEY, "SSLCertificateSHA1Hash", &RegValue::Binary(vec![0xAB; 20])).unwrap();
        let r = run(&RegenerateSelfSigned, &p, &json!({}), false);
        assert_eq!(r.outcome, FixOutcome::Failed);
        assert!(r.message.contains("bound"), "{}", r.message);
        assert!(m.services.restarts.lock().unwrap().is_empty());
    }
}
