//! The operating system behind small traits, so that checks and fixes are written once and
//! tested on an in-memory platform. The real implementations live in `windows/` (Windows only)
//! and `linux.rs`.
use std::sync::Arc;

pub mod files;
pub mod memory;
pub mod registry;
pub mod services;
#[cfg(windows)]
pub mod windows_registry;

pub use files::Files;
pub use registry::{RegValue, Registry};
pub use services::{ServiceState, Services};

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
}

impl Platform {
    /// The machine the agent runs on.
    pub fn native() -> Platform {
        Platform {
            #[cfg(windows)]
            registry: Arc::new(windows_registry::WindowsRegistry),
            #[cfg(not(windows))]
            registry: Arc::new(registry::NoRegistry),
            services: Arc::new(services::SystemdServices),
            files: Arc::new(files::RealFiles),
        }
    }
}
