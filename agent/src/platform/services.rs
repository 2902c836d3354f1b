//! System services: query and restart.
use super::{PlatformError, PlatformResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceState {
    Running,
    Stopped,
    NotInstalled,
    Other,
}

pub trait Services: Send + Sync {
    fn state(&self, name: &str) -> PlatformResult<ServiceState>;
    /// Stops (when running) and starts the service, waiting for it to run.
    fn restart(&self, name: &str) -> PlatformResult<()>;
    /// Starting a running service is not an error.
    fn start(&self, name: &str) -> PlatformResult<()>;
    fn stop(&self, name: &str) -> PlatformResult<()>;
}

/// systemd, through `systemctl`.
pub struct SystemdServices;

impl Services for SystemdServices {
    fn state(&self, name: &str) -> PlatformResult<ServiceState> {
        let out = std::process::Command::new("systemctl").args(["is-active", name]).output()?;
        Ok(match String::from_utf8_lossy(&out.stdout).trim() {
            "active" => ServiceState::Running,
            "inactive" | "failed" => ServiceState::Stopped,
            "" => ServiceState::NotInstalled,
            _ => ServiceState::Other,
        })
    }

    fn restart(&self, name: &str) -> PlatformResult<()> {
        systemctl("restart", name)
    }
    fn start(&self, name: &str) -> PlatformResult<()> {
        systemctl("start", name)
    }
    fn stop(&self, name: &str) -> PlatformResult<()> {
        systemctl("stop", name)
    }
}

fn systemctl(verb: &str, name: &str) -> PlatformResult<()> {
    let out = std::process::Command::new("systemctl").args([verb, name]).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(PlatformError::Io(format!("systemctl {verb} {name}: {}", String::from_utf8_lossy(&out.stderr).trim())))
    }
}
