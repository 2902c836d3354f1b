//! The operating system behind small traits, so that checks and fixes are written once and
//! tested on an in-memory platform. The real implementations live in `windows/` (Windows only)
//! and `linux.rs`.
use std::sync::Arc;

pub mod certstore;
pub mod credentials;
pub mod eventlog;
pub mod files;
pub mod firewall;
#[cfg(test)]
pub mod memory;
pub mod registry;
pub mod services;
pub mod state_dir;
// Win32 FFI: the one place in the workspace that may use `unsafe`.
#[cfg(windows)]
#[allow(unsafe_code)]
pub mod windows;

pub use certstore::CertStore;
pub use credentials::Credentials;
pub use eventlog::EventLog;
pub use files::Files;
pub use firewall::{Firewall, Networks};
pub use registry::{RegValue, Registry};
pub use services::{ServiceState, Services};
pub use state_dir::StateDirAccess;

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("access denied: {0}")]
    AccessDenied(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("not supported on this platform: {0}")]
    Unsupported(&'static str),
    #[error("{0}")]
    Io(String),
}

impl From<std::io::Error> for PlatformError {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::PermissionDenied => PlatformError::AccessDenied(e.to_string()),
            std::io::ErrorKind::NotFound => PlatformError::NotFound(e.to_string()),
            _ => PlatformError::Io(e.to_string()),
        }
    }
}

pub type PlatformResult<T> = Result<T, PlatformError>;

/// Everything checks and fixes may touch.
#[derive(Clone)]
pub struct Platform {
    pub registry: Arc<dyn Registry>,
    pub services: Arc<dyn Services>,
    pub files: Arc<dyn Files>,
    pub certs: Arc<dyn CertStore>,
    pub firewall: Arc<dyn Firewall>,
    pub networks: Arc<dyn Networks>,
    pub events: Arc<dyn EventLog>,
    pub credentials: Arc<dyn Credentials>,
    pub state_dir: Arc<dyn StateDirAccess>,
}

impl Platform {
    /// The machine the agent runs on.
    #[cfg(windows)]
    pub fn native() -> Platform {
        Platform {
            registry: Arc::new(windows::registry::WindowsRegistry),
            services: Arc::new(windows::services::WindowsServices),
            files: Arc::new(files::RealFiles),
            certs: Arc::new(windows::certstore::WindowsCertStore),
            firewall: Arc::new(windows::firewall::WindowsFirewall),
            networks: Arc::new(windows::firewall::WindowsFirewall),
            events: Arc::new(windows::eventlog::WindowsEventLog),
            credentials: Arc::new(windows::credentials::WindowsCredentials),
            state_dir: Arc::new(windows::state_dir::WindowsStateDir),
        }
    }

    /// The machine the agent runs on.
    #[cfg(not(windows))]
    pub fn native() -> Platform {
        Platform {
            registry: Arc::new(registry::NoRegistry),
            services: Arc::new(services::SystemdServices),
            files: Arc::new(files::RealFiles),
            certs: Arc::new(certstore::NoCertStore),
            firewall: Arc::new(firewall::NoFirewall),
            networks: Arc::new(firewall::NoFirewall),
            events: Arc::new(eventlog::NoEventLog),
            credentials: Arc::new(credentials::NoCredentials),
            state_dir: Arc::new(state_dir::UnixStateDir),
        }
    }
}
