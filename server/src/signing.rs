//! The server's Ed25519 job-signing key.
use std::io::Write;
use std::path::Path;

use base64::Engine;
use ed25519_dalek::SigningKey;
use rand::rngs::OsRng;

#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("cannot read signing key {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot create signing key {path}: {source}")]
    Create { path: String, source: std::io::Error },
    #[error("signing key {0} is not a 32-byte hex seed")]
    Malformed(String),
}

/// Loads the key, creating it (mode 0600) on first start.
pub fn load_or_create(path: &Path) -> Result<SigningKey, SigningKeyError> {
    let shown = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let bytes = hex::decode(text.trim()).map_err(|_| SigningKeyError::Malformed(shown.clone()))?;
            let seed: [u8; 32] = bytes.try_into().map_err(|_| SigningKeyError::Malformed(shown))?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::generate(&mut OsRng);
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(path).map_err(|source| SigningKeyError::Create { path: shown.clone(), source })?;
            f.write_all(hex::encode(key.to_bytes()).as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|source| SigningKeyError::Create { path: shown, source })?;
            Ok(key)
        }
        Err(source) => Err(SigningKeyError::Read { path: shown, source }),
    }
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
