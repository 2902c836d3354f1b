//! LocalMachine system certificate stores through CryptoAPI. Deletions are committed with
//! CERT_STORE_CTRL_COMMIT, and never made while enumerating (that loops on some builds).
use std::ffi::c_void;

use windows::Win32::Security::Cryptography::{
    CERT_CONTEXT, CERT_HASH_PROP_ID, CERT_KEY_PROV_INFO_PROP_ID, CERT_OPEN_STORE_FLAGS, CERT_QUERY_ENCODING_TYPE,
    CERT_STORE_ADD_REPLACE_EXISTING, CERT_STORE_CERTIFICATE_CONTEXT, CERT_STORE_CTRL_COMMIT,
    CERT_STORE_OPEN_EXISTING_FLAG, CERT_STORE_PROV_SYSTEM_W, CERT_STORE_READONLY_FLAG, CERT_SYSTEM_STORE_LOCAL_MACHINE,
    CRYPT_ACQUIRE_ALLOW_NCRYPT_KEY_FLAG, CRYPT_ACQUIRE_CACHE_FLAG, CRYPT_ACQUIRE_SILENT_FLAG,
    CertAddSerializedElementToStore, CertCloseStore, CertControlStore, CertDeleteCertificateFromStore,
    CertDuplicateCertificateContext, CertEnumCertificatesInStore, CertFreeCertificateContext,
    CertGetCertificateContextProperty, CertOpenStore, CertSerializeCertificateStoreElement,
    CryptAcquireCertificatePrivateKey, HCERTSTORE, HCRYPTPROV_OR_NCRYPT_KEY_HANDLE,
};
use windows::core::BOOL;

use super::{wide, win_error};
use crate::platform::certstore::{CertStore, StoredCert};
use crate::platform::{PlatformError, PlatformResult};

pub struct WindowsCertStore;

/// An open store, closed on drop.
pub(crate) struct Store(pub(crate) HCERTSTORE);

impl Drop for Store {
    fn drop(&mut self) {
        unsafe {
            let _ = CertCloseStore(Some(self.0), 0);
        }
    }
}

/// A certificate context we own, freed on drop.
struct Owned(*const CERT_CONTEXT);

impl Drop for Owned {
    fn drop(&mut self) {
        unsafe {
            let _ = CertFreeCertificateContext(Some(self.0));
        }
    }
}

/// Opens a LocalMachine system store; `None` when it does not exist and `create` is false.
pub(crate) fn open(name: &str, create: bool) -> PlatformResult<Option<Store>> {
    let w = wide(name);
    let mut flags = CERT_SYSTEM_STORE_LOCAL_MACHINE;
    if !create {
        flags |= CERT_STORE_OPEN_EXISTING_FLAG.0 | CERT_STORE_READONLY_FLAG.0;
    }
    let opened = unsafe {
        CertOpenStore(
            CERT_STORE_PROV_SYSTEM_W,
            CERT_QUERY_ENCODING_TYPE(0),
            None,
            CERT_OPEN_STORE_FLAGS(flags),
            Some(w.as_ptr() as *const c_void),
        )
    };
    match opened {
        Ok(h) => Ok(Some(Store(h))),
        Err(e) if !create && matches!(win_error("", &e), PlatformError::NotFound(_)) => Ok(None),
        Err(e) => Err(win_error(&format!("certificate store {name}"), &e)),
    }
}

fn property(ctx: *const CERT_CONTEXT, id: u32) -> Option<Vec<u8>> {
    let mut len = 0u32;
    unsafe { CertGetCertificateContextProperty(ctx, id, None, &mut len) }.ok()?;
    let mut buf = vec![0u8; len as usize];
    unsafe { CertGetCertificateContextProperty(ctx, id, Some(buf.as_mut_ptr() as *mut c_void), &mut len) }.ok()?;
    buf.truncate(len as usize);
    Some(buf)
}

fn der(ctx: *const CERT_CONTEXT) -> Vec<u8> {
    let c = unsafe { &*ctx };
    unsafe { std::slice::from_raw_parts(c.pbCertEncoded, c.cbCertEncoded as usize) }.to_vec()
}

fn has_private_key(ctx: *const CERT_CONTEXT) -> bool {
    let Some(info) = property(ctx, CERT_KEY_PROV_INFO_PROP_ID) else {
        return false;
    };
    // The link can outlive the key (a deleted container): only opening it proves the key.
    let mut handle = HCRYPTPROV_OR_NCRYPT_KEY_HANDLE(0);
    let mut free = BOOL(0);
    unsafe {
        CryptAcquireCertificatePrivateKey(
            ctx,
            CRYPT_ACQUIRE_CACHE_FLAG | CRYPT_ACQUIRE_SILENT_FLAG | CRYPT_ACQUIRE_ALLOW_NCRYPT_KEY_FLAG,
            None,
            &mut handle,
            None,
            Some(&mut free),
        )
    }
    .is_ok()
        || legacy_key_opens(&info)
}

/// Opens a CryptoAPI (legacy CSP) key named by a CRYPT_KEY_PROV_INFO property directly. Wine's
/// CryptAcquireCertificatePrivateKey fails on keys that the provider itself opens.
fn legacy_key_opens(info: &[u8]) -> bool {
    use windows::Win32::Security::Cryptography::{
        CRYPT_KEY_PROV_INFO, CRYPT_SILENT, CryptAcquireContextW, CryptDestroyKey, CryptGetUserKey, CryptReleaseContext,
    };
    if info.len() < std::mem::size_of::<CRYPT_KEY_PROV_INFO>() {
        return false;
    }
    // The property is the structure followed by the strings it points into.
    let k: CRYPT_KEY_PROV_INFO = unsafe { std::ptr::read_unaligned(info.as_ptr().cast()) };
    if k.dwProvType == 0 {
        return false; // a CNG key: only CryptAcquireCertificatePrivateKey opens those
    }
    let mut prov = 0usize;
    let flags = (k.dwFlags.0 & CRYPT_MACHINE_KEYSET_BIT) | CRYPT_SILENT;
    if unsafe { CryptAcquireContextW(&mut prov, k.pwszContainerName, k.pwszProvName, k.dwProvType, flags) }.is_err() {
        return false;
    }
    let mut key = 0usize;
    let ok = unsafe { CryptGetUserKey(prov, k.dwKeySpec, &mut key) }.is_ok();
    unsafe {
        if ok {
            let _ = CryptDestroyKey(key);
        }
        let _ = CryptReleaseContext(prov, 0);
    }
    ok
}

const CRYPT_MACHINE_KEYSET_BIT: u32 = 0x20;

/// Every certificate of the store, duplicated so the enumeration is over before anyone acts.
fn contexts(store: &Store) -> Vec<Owned> {
    let mut out = Vec::new();
    let mut prev: Option<*const CERT_CONTEXT> = None;
    loop {
        let next = unsafe { CertEnumCertificatesInStore(store.0, prev) };
        if next.is_null() {
            break;
        }
        out.push(Owned(unsafe { CertDuplicateCertificateContext(Some(next)) }));
        prev = Some(next);
    }
    out
}

fn thumbprint_of(ctx: *const CERT_CONTEXT) -> String {
    property(ctx, CERT_HASH_PROP_ID)
        .map(|h| h.iter().map(|b| format!("{b:02X}")).collect())
        .unwrap_or_else(|| crate::platform::certstore::thumbprint(&der(ctx)))
}

fn find(store: &Store, thumbprint: &str) -> Option<Owned> {
    contexts(store).into_iter().find(|c| thumbprint_of(c.0) == thumbprint)
}

fn commit(store: &Store, name: &str) -> PlatformResult<()> {
    unsafe { CertControlStore(store.0, Default::default(), CERT_STORE_CTRL_COMMIT, None) }
        .map_err(|e| win_error(&format!("commit {name}"), &e))
}

impl CertStore for WindowsCertStore {
    fn list(&self, name: &str) -> PlatformResult<Vec<StoredCert>> {
        let Some(store) = open(name, false)? else {
            return Ok(vec![]);
        };
        Ok(contexts(&store)
            .iter()
            .map(|c| StoredCert {
                thumbprint: thumbprint_of(c.0),
                der: der(c.0),
                has_private_key: has_private_key(c.0),
            })
            .collect())
    }

    fn export(&self, name: &str, thumbprint: &str) -> PlatformResult<Option<Vec<u8>>> {
        let Some(store) = open(name, false)? else {
            return Ok(None);
        };
        let Some(ctx) = find(&store, thumbprint) else {
            return Ok(None);
        };
        let mut len = 0u32;
        unsafe { CertSerializeCertificateStoreElement(ctx.0, 0, None, &mut len) }
            .map_err(|e| win_error("serialize certificate", &e))?;
        let mut buf = vec![0u8; len as usize];
        unsafe { CertSerializeCertificateStoreElement(ctx.0, 0, Some(buf.as_mut_ptr()), &mut len) }
            .map_err(|e| win_error("serialize certificate", &e))?;
        buf.truncate(len as usize);
        Ok(Some(buf))
    }

    fn import(&self, name: &str, element: &[u8]) -> PlatformResult<()> {
        let store = open(name, true)?.ok_or_else(|| PlatformError::NotFound(name.to_owned()))?;
        unsafe {
            CertAddSerializedElementToStore(
                Some(store.0),
                element,
                CERT_STORE_ADD_REPLACE_EXISTING,
                0,
                1 << CERT_STORE_CERTIFICATE_CONTEXT,
                None,
                None,
            )
        }
        .map_err(|e| win_error(&format!("add certificate to {name}"), &e))?;
        commit(&store, name)
    }

    fn delete(&self, name: &str, thumbprint: &str) -> PlatformResult<()> {
        let Some(store) = open(name, true)? else {
            return Ok(());
        };
        let Some(ctx) = find(&store, thumbprint) else {
            return Ok(());
        };
        // CertDeleteCertificateFromStore frees the context it is given, even on failure.
        let raw = ctx.0;
        std::mem::forget(ctx);
        unsafe { CertDeleteCertificateFromStore(raw) }
            .map_err(|e| win_error(&format!("delete {thumbprint} from {name}"), &e))?;
        commit(&store, name)
    }
}

/// Creates a self-signed certificate with a machine key in a LocalMachine store, as
/// TermService does for the "Remote Desktop" store. Tests use it to stand in for TermService.
#[cfg(test)]
pub(crate) fn create_self_signed(
    store_name: &str,
    common_name: &str,
    not_before: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
) -> PlatformResult<String> {
    use windows::Win32::Foundation::SYSTEMTIME;
    use windows::Win32::Security::Cryptography::{
        ALG_ID, AT_KEYEXCHANGE, CERT_CREATE_SELFSIGN_FLAGS, CERT_STORE_ADD_ALWAYS, CERT_X500_NAME_STR,
        CRYPT_INTEGER_BLOB, CRYPT_KEY_FLAGS, CRYPT_KEY_PROV_INFO, CRYPT_MACHINE_KEYSET, CRYPT_NEWKEYSET,
        CertAddCertificateContextToStore, CertCreateSelfSignCertificate, CertStrToNameW, CryptAcquireContextW,
        CryptDestroyKey, CryptGenKey, CryptReleaseContext, PROV_RSA_FULL, X509_ASN_ENCODING,
    };
    use windows::core::{PCWSTR, PWSTR};

    let st = |t: time::OffsetDateTime| SYSTEMTIME {
        wYear: t.year() as u16,
        wMonth: u8::from(t.month()) as u16,
        wDayOfWeek: 0,
        wDay: t.day() as u16,
        wHour: t.hour() as u16,
        wMinute: t.minute() as u16,
        wSecond: t.second() as u16,
        wMilliseconds: 0,
    };
    let x500 = wide(&format!("CN={common_name}"));
    let mut len = 0u32;
    unsafe { CertStrToNameW(X509_ASN_ENCODING, PCWSTR(x500.as_ptr()), CERT_X500_NAME_STR, None, None, &mut len, None) }
        .map_err(|e| win_error("encode name", &e))?;
    let mut name = vec![0u8; len as usize];
    unsafe {
        CertStrToNameW(
            X509_ASN_ENCODING,
            PCWSTR(x500.as_ptr()),
            CERT_X500_NAME_STR,
            None,
            Some(name.as_mut_ptr()),
            &mut len,
            None,
        )
    }
    .map_err(|e| win_error("encode name", &e))?;
    let blob = CRYPT_INTEGER_BLOB { cbData: len, pbData: name.as_mut_ptr() };
    let mut container = wide(&format!("rdpfleet-{}", uuid::Uuid::new_v4()));
    // Make and persist the key first (releasing the provider writes it): Wine would otherwise
    // keep a key generated inside CertCreateSelfSignCertificate only in memory.
    let mut hprov = 0usize;
    unsafe {
        CryptAcquireContextW(
            &mut hprov,
            PCWSTR(container.as_ptr()),
            PCWSTR::null(),
            PROV_RSA_FULL,
            CRYPT_NEWKEYSET | CRYPT_MACHINE_KEYSET.0,
        )
    }
    .map_err(|e| win_error("create key container", &e))?;
    let mut hkey = 0usize;
    let generated = unsafe { CryptGenKey(hprov, ALG_ID(AT_KEYEXCHANGE.0), CRYPT_KEY_FLAGS(2048 << 16), &mut hkey) };
    unsafe {
        if generated.is_ok() {
            let _ = CryptDestroyKey(hkey);
        }
        let _ = CryptReleaseContext(hprov, 0);
    }
    generated.map_err(|e| win_error("generate key", &e))?;
    let prov = CRYPT_KEY_PROV_INFO {
        pwszContainerName: PWSTR(container.as_mut_ptr()),
        pwszProvName: PWSTR::null(),
        dwProvType: PROV_RSA_FULL,
        dwFlags: CRYPT_MACHINE_KEYSET,
        cProvParam: 0,
        rgProvParam: std::ptr::null_mut(),
        dwKeySpec: AT_KEYEXCHANGE.0,
    };
    let (start, end) = (st(not_before), st(not_after));
    let ctx = unsafe {
        CertCreateSelfSignCertificate(
            None,
            &blob,
            CERT_CREATE_SELFSIGN_FLAGS(0),
            Some(&prov),
            None,
            Some(&start),
            Some(&end),
            None,
        )
    };
    if ctx.is_null() {
        return Err(PlatformError::Io(format!("CertCreateSelfSignCertificate: {}", std::io::Error::last_os_error())));
    }
    let ctx = Owned(ctx);
    let store = open(store_name, true)?.ok_or_else(|| PlatformError::NotFound(store_name.to_owned()))?;
    unsafe { CertAddCertificateContextToStore(Some(store.0), ctx.0, CERT_STORE_ADD_ALWAYS, None) }
        .map_err(|e| win_error("add certificate", &e))?;
    commit(&store, store_name)?;
    Ok(thumbprint_of(ctx.0))
}
