//! The local machine's certificate stores (`My`, `Remote Desktop`, `Root`), as checks and fixes
//! see them: certificates by thumbprint, whether their private key is usable, and an opaque
//! export that restores a certificate exactly (its properties and key link included).
use super::{PlatformError, PlatformResult};

/// The store where Windows keeps the self-signed RDP listener certificate.
pub const REMOTE_DESKTOP_STORE: &str = "Remote Desktop";
/// LocalMachine\My: where a bound listener certificate (SSLCertificateSHA1Hash) lives.
pub const PERSONAL_STORE: &str = "My";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCert {
    /// SHA-1 of the DER, upper-case hex: Windows' thumbprint.
    pub thumbprint: String,
    pub der: Vec<u8>,
    /// The private key is linked and can be opened (a listener without it cannot do TLS).
    pub has_private_key: bool,
}

pub trait CertStore: Send + Sync {
    fn list(&self, store: &str) -> PlatformResult<Vec<StoredCert>>;
    /// The certificate with its properties, for [`CertStore::import`]; `None` when absent.
    fn export(&self, store: &str, thumbprint: &str) -> PlatformResult<Option<Vec<u8>>>;
    fn import(&self, store: &str, element: &[u8]) -> PlatformResult<()>;
    /// Deleting a missing certificate is not an error.
    fn delete(&self, store: &str, thumbprint: &str) -> PlatformResult<()>;
}

/// SHA-1 thumbprint in Windows' spelling.
pub fn thumbprint(der: &[u8]) -> String {
    openssl::sha::sha1(der).iter().map(|b| format!("{b:02X}")).collect()
}

/// Normalises a thumbprint as people paste it (spaces, colons, lower case, a stray BOM).
pub fn normalise_thumbprint(s: &str) -> String {
    s.chars().filter(char::is_ascii_hexdigit).map(|c| c.to_ascii_uppercase()).collect()
}

/// Where there are no Windows certificate stores (Linux): empty stores, writes refused.
pub struct NoCertStore;

impl CertStore for NoCertStore {
    fn list(&self, _: &str) -> PlatformResult<Vec<StoredCert>> {
        Ok(vec![])
    }
    fn export(&self, _: &str, _: &str) -> PlatformResult<Option<Vec<u8>>> {
        Ok(None)
    }
    fn import(&self, _: &str, _: &[u8]) -> PlatformResult<()> {
        Err(PlatformError::Unsupported("certificate store"))
    }
    fn delete(&self, _: &str, _: &str) -> PlatformResult<()> {
        Err(PlatformError::Unsupported("certificate store"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn thumbprints_are_normalised() {
        assert_eq!(super::normalise_thumbprint("\u{feff}ab cd:0f"), "ABCD0F");
        assert_eq!(super::thumbprint(b"").len(), 40);
    }
}
