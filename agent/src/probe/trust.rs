//! Which roots this machine trusts: the platform store (Windows certificate store, or the
//! system bundle on Linux/macOS) plus an optional CA bundle from the configuration.
use std::path::Path;

use openssl::stack::Stack;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509, X509StoreContext};

pub struct TrustStore {
    store: X509Store,
    pub roots: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("cannot read CA bundle {path}: {source}")]
    Bundle { path: String, source: std::io::Error },
    #[error("CA bundle {0} holds no PEM certificate")]
    EmptyBundle(String),
    #[error("OpenSSL: {0}")]
    Ssl(#[from] openssl::error::ErrorStack),
}

impl TrustStore {
    /// Platform roots, plus the certificates in `ca_bundle` (PEM) when given.
    pub fn load(ca_bundle: Option<&Path>, platform_roots: bool) -> Result<TrustStore, TrustError> {
        let mut b = X509StoreBuilder::new()?;
        let mut roots = 0;
        if platform_roots {
            let native = rustls_native_certs::load_native_certs();
            for der in native.certs {
                if let Ok(x) = X509::from_der(der.as_ref()) {
                    if b.add_cert(x).is_ok() {
                        roots += 1;
                    }
                }
            }
        }
        if let Some(path) = ca_bundle {
            let shown = path.display().to_string();
            let pem = std::fs::read(path).map_err(|source| TrustError::Bundle { path: shown.clone(), source })?;
            let certs = X509::stack_from_pem(&pem)?;
            if certs.is_empty() {
                return Err(TrustError::EmptyBundle(shown));
            }
            for x in certs {
                b.add_cert(x)?;
                roots += 1;
            }
        }
        // Time is judged separately (expired / not yet valid); a configured intermediate may
        // serve as an anchor.
        b.set_flags(X509VerifyFlags::NO_CHECK_TIME | X509VerifyFlags::PARTIAL_CHAIN)?;
        Ok(TrustStore { store: b.build(), roots })
    }

    /// Whether `chain` (leaf first, DER) leads to a trusted root; the reason when not.
    pub fn verify(&self, chain: &[Vec<u8>]) -> Result<(), String> {
        let leaf_der = chain.first().ok_or("no certificate")?;
        let leaf = X509::from_der(leaf_der).map_err(|e| e.to_string())?;
        let mut intermediates = Stack::new().map_err(|e| e.to_string())?;
        for der in chain.iter().skip(1) {
            if let Ok(x) = X509::from_der(der) {
                intermediates.push(x).map_err(|e| e.to_string())?;
            }
        }
        let mut ctx = X509StoreContext::new().map_err(|e| e.to_string())?;
        let (ok, err) = ctx
            .init(&self.store, &leaf, &intermediates, |c| Ok((c.verify_cert()?, c.error())))
            .map_err(|e| e.to_string())?;
        if ok { Ok(()) } else { Err(err.error_string().to_owned()) }
    }
}
