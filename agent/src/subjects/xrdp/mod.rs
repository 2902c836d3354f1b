//! Linux RDP hosts running xrdp: its configuration (`xrdp.ini`), checked and repaired.
//! xrdp 0.9 re-reads `xrdp.ini` and its certificate for every connection, so a repaired file is
//! what the next client gets; the service is still restarted when systemd manages it.
use std::path::{Path, PathBuf};

pub mod checks;
pub mod fixes;
pub mod host_checks;
pub mod ini;

pub use crate::config::XrdpSettings;
pub use fixes::fixes;

/// The parts of `xrdp.ini` that matter for connections.
#[derive(Debug, Clone, PartialEq)]
pub struct XrdpConfig {
    pub security_layer: String,
    pub certificate: PathBuf,
    pub key_file: PathBuf,
    pub ssl_protocols: Vec<String>,
}

impl XrdpConfig {
    pub fn parse(text: &str, ini_path: &Path) -> XrdpConfig {
        let get = |k: &str| ini::get(text, "Globals", k).unwrap_or_default();
        let dir = ini_path.parent().unwrap_or(Path::new("/etc/xrdp"));
        // xrdp's defaults when the keys are empty.
        let path_or =
            |v: String, default: &str| if v.trim().is_empty() { dir.join(default) } else { PathBuf::from(v.trim()) };
        XrdpConfig {
            security_layer: {
                let s = get("security_layer");
                if s.trim().is_empty() { "negotiate".into() } else { s.trim().to_lowercase() }
            },
            certificate: path_or(get("certificate"), "cert.pem"),
            key_file: path_or(get("key_file"), "key.pem"),
            ssl_protocols: get("ssl_protocols")
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        }
    }
}
