//! The Windows implementations against the real APIs (Windows, or Wine in CI): certificate
//! store with the listener check and the regenerate fix, Credential Manager with the delete
//! fix, and service queries. One test per facility, each in sequence, because the stores are
//! shared by every thread of the test process.
use std::sync::Arc;

use serde_json::json;
use time::{Duration, OffsetDateTime};

use crate::engine::fix::{FixOutcome, run};
use crate::platform::certstore::{CertStore, REMOTE_DESKTOP_STORE};
use crate::platform::credentials::Credentials;
use crate::platform::memory::MemoryServices;
use crate::platform::windows::certstore::{WindowsCertStore, create_self_signed};
use crate::platform::windows::credentials::{WindowsCredentials, save_for_test};
use crate::platform::windows::services::WindowsServices;
use crate::platform::{Platform, ServiceState, Services};
use crate::subjects::windows_host::listener_cert::{self, RegenerateSelfSigned, TERMSERVICE};

fn clear_remote_desktop_store() {
    for c in WindowsCertStore.list(REMOTE_DESKTOP_STORE).unwrap() {
        WindowsCertStore.delete(REMOTE_DESKTOP_STORE, &c.thumbprint).unwrap();
    }
}

fn thumbprints() -> Vec<String> {
    let mut t: Vec<String> =
        WindowsCertStore.list(REMOTE_DESKTOP_STORE).unwrap().into_iter().map(|c| c.thumbprint).collect();
    t.sort();
    t
}

/// The real registry and certificate store; TermService (absent under Wine) is stood in for by
/// a service whose start creates a certificate valid for `days` from now, as Windows does.
fn host(new_cert_days: i64) -> Platform {
    let services = Arc::new(MemoryServices::default());
    services.set(TERMSERVICE, ServiceState::Running);
    services.on_start.lock().unwrap().insert(
        TERMSERVICE.to_lowercase(),
        Box::new(move || {
            let now = OffsetDateTime::now_utc();
            let (from, to) = if new_cert_days > 0 {
                (now - Duration::days(1), now + Duration::days(new_cert_days))
            } else {
                (now - Duration::days(400), now + Duration::days(new_cert_days))
            };
            create_self_signed(REMOTE_DESKTOP_STORE, "wine-host.corp.example", from, to).unwrap();
        }),
    );
    let mut p = Platform::native();
    p.services = services;
    p
}

#[test]
fn native_certstore_listener_check_and_regenerate_fix() {
    let now = OffsetDateTime::now_utc();
    clear_remote_desktop_store();
    let p = host(180);
    assert_eq!(listener_cert::evaluate(&p, now, 30).unwrap().1[0].0, "host.listener_cert_missing");

    // An expired self-signed certificate in "Remote Desktop", with its private key.
    let old = create_self_signed(REMOTE_DESKTOP_STORE, "wine-host", now - Duration::days(400), now - Duration::days(5))
        .unwrap();
    let listed = WindowsCertStore.list(REMOTE_DESKTOP_STORE).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].thumbprint, old);
    assert_eq!(crate::platform::certstore::thumbprint(&listed[0].der), old, "thumbprint = SHA-1 of the DER");
    assert!(listed[0].has_private_key, "the key container is linked and opens");
    let (_, problems, evidence) = listener_cert::evaluate(&p, now, 30).unwrap();
    assert_eq!(problems.iter().map(|p| p.0).collect::<Vec<_>>(), vec!["host.listener_cert_expired"]);
    assert_eq!(evidence["source"], "self_signed");

    // Export and re-import keep the key link.
    let element = WindowsCertStore.export(REMOTE_DESKTOP_STORE, &old).unwrap().unwrap();
    WindowsCertStore.delete(REMOTE_DESKTOP_STORE, &old).unwrap();
    assert!(thumbprints().is_empty(), "the delete is committed");
    WindowsCertStore.import(REMOTE_DESKTOP_STORE, &element).unwrap();
    assert_eq!(thumbprints(), vec![old.clone()]);
    assert!(WindowsCertStore.list(REMOTE_DESKTOP_STORE).unwrap()[0].has_private_key);

    // A certificate without its key (as after a botched import) is told apart.
    let der = crate::subjects::windows_host::listener_cert::tests::cert("no-key", -1, 100);
    {
        use windows::Win32::Security::Cryptography::{
            CERT_STORE_ADD_ALWAYS, CertAddEncodedCertificateToStore, X509_ASN_ENCODING,
        };
        let store = crate::platform::windows::certstore::open(REMOTE_DESKTOP_STORE, true).unwrap().unwrap();
        unsafe {
            CertAddEncodedCertificateToStore(Some(store.0), X509_ASN_ENCODING, &der, CERT_STORE_ADD_ALWAYS, None)
        }
        .unwrap();
    }
    let no_key = crate::platform::certstore::thumbprint(&der);
    let listed = WindowsCertStore.list(REMOTE_DESKTOP_STORE).unwrap();
    assert!(!listed.iter().find(|c| c.thumbprint == no_key).unwrap().has_private_key);
    assert!(
        listener_cert::evaluate(&p, now, 30).unwrap().1.iter().any(|p| p.0 == "host.listener_cert_no_key"),
        "the newest certificate is in force, and it has no key"
    );
    WindowsCertStore.delete(REMOTE_DESKTOP_STORE, &no_key).unwrap();

    // TermService makes an expired one again: verification fails, the old store comes back.
    let before = thumbprints();
    let r = run(&RegenerateSelfSigned, &host(-1), &json!({}), false);
    assert_eq!(r.outcome, FixOutcome::RolledBack, "{r:?}");
    assert_eq!(thumbprints(), before, "exactly the certificates that were there");

    // Regenerate: the expired certificate is replaced by a valid one.
    let r = run(&RegenerateSelfSigned, &p, &json!({}), false);
    assert_eq!(r.outcome, FixOutcome::Succeeded, "{r:?}");
    let after = thumbprints();
    assert_eq!(after.len(), 1);
    assert_ne!(after[0], old);
    assert!(listener_cert::evaluate(&p, now, 30).unwrap().1.is_empty());
    assert_eq!(run(&RegenerateSelfSigned, &p, &json!({}), false).outcome, FixOutcome::AlreadyCompliant);

    // The backup restores the old certificate by itself too.
    r.backup.restore(&p).unwrap();
    assert_eq!(thumbprints(), vec![old]);
    clear_remote_desktop_store();
}

#[test]
fn native_credentials_listed_and_deleted() {
    let target = "TERMSRV/wine-rdp01.corp.example";
    save_for_test(target, "CORP\\alice").unwrap();
    save_for_test("TERMSRV/other.corp.example", "CORP\\bob").unwrap();
    let listed = WindowsCredentials.list("TERMSRV/").unwrap();
    assert!(listed.iter().any(|c| c.target == target && c.user == "CORP\\alice"), "{listed:?}");
    let p = Platform::native();
    let params = json!({"target": "wine-rdp01.corp.example"});
    let r = run(&crate::subjects::windows_client::credential_fix::DeleteTermsrvCredentials, &p, &params, false);
    assert_eq!(r.outcome, FixOutcome::Succeeded, "{r:?}");
    let left: Vec<String> = WindowsCredentials.list("TERMSRV/").unwrap().into_iter().map(|c| c.target).collect();
    assert!(!left.iter().any(|t| t == target) && left.iter().any(|t| t == "TERMSRV/other.corp.example"));
    WindowsCredentials.delete("TERMSRV/other.corp.example").unwrap();
    WindowsCredentials.delete("TERMSRV/never-saved").unwrap();
}

#[test]
fn native_service_queries() {
    let s = WindowsServices;
    assert_eq!(s.state("rdpfleet-no-such-service").unwrap(), ServiceState::NotInstalled);
    assert!(s.start("rdpfleet-no-such-service").is_err());
    // Wine runs its own RPC service, as Windows does.
    assert_eq!(s.state("RpcSs").unwrap(), ServiceState::Running);
}

/// The state directory's DACL, set and read back through the real security APIs: a directory
/// the agent creates admits only SYSTEM, Administrators and the agent's own account; one that
/// lets Everyone write is refused, naming them; Everyone reading is fine. (Wine keeps a DACL as
/// Unix mode bits, so it can show Everyone and the owner, not other groups such as Users: their
/// case is tested on the in-memory platform.)
#[test]
fn native_state_dir_dacl_is_protected_and_read_back() {
    use crate::platform::StateDirAccess;
    use crate::platform::state_dir::secure;
    use crate::platform::windows::state_dir::{WindowsStateDir, set_dacl};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    secure(&WindowsStateDir, &dir).unwrap();
    assert_eq!(WindowsStateDir.other_writers(&dir).unwrap(), Vec::<String>::new());
    set_dacl(&dir, "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;FA;;;WD)").unwrap();
    assert_eq!(WindowsStateDir.other_writers(&dir).unwrap(), vec!["S-1-1-0".to_owned()]);
    let e = secure(&WindowsStateDir, &dir).unwrap_err().to_string();
    assert!(e.contains("S-1-1-0") && e.contains("refusing"), "{e}");
    // Everyone reading (list, read, execute) is no write access.
    set_dacl(&dir, "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200a9;;;WD)").unwrap();
    secure(&WindowsStateDir, &dir).unwrap();
}
