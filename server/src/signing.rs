//! The server's Ed25519 job-signing key.
use std::io::Write;
use std::path::Path;

use base64::Engine;
use ed25519_dalek::SigningKey;
use rand::rngs::OsRng;

#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("cannot read key file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot create key file {path}: {source}")]
    Create { path: String, source: std::io::Error },
    #[error("key file {0} is not a 32-byte hex seed")]
    Malformed(String),
}

/// Loads the key, creating it (mode 0600) on first start.
pub fn load_or_create(path: &Path) -> Result<SigningKey, SigningKeyError> {
    Ok(SigningKey::from_bytes(&load_or_create_secret(path)?))
}

/// A 32-byte secret kept as hex in a file (the signing key's seed, the audit key), created
/// with mode 0600 when absent.
pub fn load_or_create_secret(path: &Path) -> Result<[u8; 32], SigningKeyError> {
    match load_secret(path) {
        Err(SigningKeyError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            let shown = path.display().to_string();
            let mut seed = [0u8; 32];
            rand::RngCore::fill_bytes(&mut OsRng, &mut seed);
            write_secret(path, &seed).map_err(|source| SigningKeyError::Create { path: shown, source })?;
            Ok(seed)
        }
        other => other,
    }
}

/// A 32-byte hex secret from a file that must exist.
pub fn load_secret(path: &Path) -> Result<[u8; 32], SigningKeyError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| SigningKeyError::Read { path: shown.clone(), source })?;
    let bytes = hex::decode(text.trim()).map_err(|_| SigningKeyError::Malformed(shown.clone()))?;
    bytes.try_into().map_err(|_| SigningKeyError::Malformed(shown))
}

/// Writes a new secret file, readable by its owner only; never overwrites.
pub fn write_secret(path: &Path, secret: &[u8; 32]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path)?;
    f.write_all(hex::encode(secret).as_bytes())?;
    f.sync_all()
}

/// The key's fingerprint: SHA-256 of its public half, hex (what the database remembers).
pub fn fingerprint(key: &ed25519_dalek::VerifyingKey) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(key.to_bytes()))
}

/// Signs a statement that `new` replaces `old`, which stays valid for jobs for `grace`.
pub fn rotation_statement(
    old: &SigningKey,
    new: &SigningKey,
    grace: time::Duration,
) -> rdpfleet_proto::job::KeyRotation {
    use ed25519_dalek::Signer;
    let now = time::OffsetDateTime::now_utc();
    // Whole seconds: the signed payload carries Unix seconds, the JSON RFC 3339.
    let issued_at = now.replace_nanosecond(0).unwrap_or(now);
    let mut r = rdpfleet_proto::job::KeyRotation {
        old_key: public_key_base64(old),
        new_key: public_key_base64(new),
        issued_at,
        old_key_valid_until: issued_at + grace,
        signature: String::new(),
    };
    r.signature = base64::engine::general_purpose::STANDARD.encode(old.sign(&r.signing_payload()).to_bytes());
    r
}

/// The same for the release key: signed over the release rotation payload, effective at once
/// (the stored releases are re-signed with the new key in the same step).
pub fn release_rotation_statement(old: &SigningKey, new: &SigningKey) -> rdpfleet_proto::job::KeyRotation {
    use ed25519_dalek::Signer;
    let mut r = rotation_statement(old, new, time::Duration::ZERO);
    r.signature = base64::engine::general_purpose::STANDARD.encode(old.sign(&r.release_signing_payload()).to_bytes());
    r
}

/// A base64 Ed25519 signature over `bytes`.
pub fn sign_bytes(key: &SigningKey, bytes: &[u8]) -> String {
    use ed25519_dalek::Signer;
    base64::engine::general_purpose::STANDARD.encode(key.sign(bytes).to_bytes())
}

pub fn public_key_base64(key: &SigningKey) -> String {
    base64::engine::general_purpose::STANDARD.encode(key.verifying_key().to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_created_once_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let a = load_or_create(&path).unwrap();
        let b = load_or_create(&path).unwrap();
        assert_eq!(a.to_bytes(), b.to_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::write(&path, "zz").unwrap();
        assert!(matches!(load_or_create(&path), Err(SigningKeyError::Malformed(_))));
    }
}
