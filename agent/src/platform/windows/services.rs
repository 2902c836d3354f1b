//! Windows services through the Service Control Manager (`windows-service`).
use std::time::{Duration, Instant};

use windows_service::service::{Service, ServiceAccess, ServiceState as WinState};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

use crate::platform::services::{ServiceState, Services};
use crate::platform::{PlatformError, PlatformResult};

/// How long a start or stop may take before it counts as failed.
const TRANSITION_TIMEOUT: Duration = Duration::from_secs(60);
const ERROR_SERVICE_DOES_NOT_EXIST: i32 = 1060;
const ERROR_SERVICE_NOT_ACTIVE: i32 = 1062;
const ERROR_SERVICE_ALREADY_RUNNING: i32 = 1056;

pub struct WindowsServices;

pub(crate) fn scm_error(what: &str, e: windows_service::Error) -> PlatformError {
    match e {
        windows_service::Error::Winapi(io) if io.raw_os_error() == Some(ERROR_SERVICE_DOES_NOT_EXIST) => {
            PlatformError::NotFound(what.to_owned())
        }
        windows_service::Error::Winapi(io) => PlatformError::from(io),
        other => PlatformError::Io(format!("{what}: {other}")),
    }
}

fn open(name: &str, access: ServiceAccess) -> PlatformResult<Option<Service>> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .map_err(|e| scm_error("service control manager", e))?;
    match manager.open_service(name, access) {
        Ok(s) => Ok(Some(s)),
        Err(windows_service::Error::Winapi(io)) if io.raw_os_error() == Some(ERROR_SERVICE_DOES_NOT_EXIST) => Ok(None),
        Err(e) => Err(scm_error(name, e)),
    }
}

fn wait_for(service: &Service, name: &str, want: WinState) -> PlatformResult<()> {
    let deadline = Instant::now() + TRANSITION_TIMEOUT;
    loop {
        let now = service.query_status().map_err(|e| scm_error(name, e))?.current_state;
        if now == want {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(PlatformError::Io(format!("{name} is {now:?}, not {want:?}, after {TRANSITION_TIMEOUT:?}")));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

impl Services for WindowsServices {
    fn state(&self, name: &str) -> PlatformResult<ServiceState> {
        let Some(s) = open(name, ServiceAccess::QUERY_STATUS)? else {
            return Ok(ServiceState::NotInstalled);
        };
        Ok(match s.query_status().map_err(|e| scm_error(name, e))?.current_state {
            WinState::Running => ServiceState::Running,
            WinState::Stopped => ServiceState::Stopped,
            _ => ServiceState::Other,
        })
    }

    fn restart(&self, name: &str) -> PlatformResult<()> {
        self.stop(name)?;
        self.start(name)
    }

    fn start(&self, name: &str) -> PlatformResult<()> {
        let s = open(name, ServiceAccess::QUERY_STATUS | ServiceAccess::START)?
            .ok_or_else(|| PlatformError::NotFound(name.to_owned()))?;
        match s.start::<&str>(&[]) {
            Ok(()) => {}
            Err(windows_service::Error::Winapi(io)) if io.raw_os_error() == Some(ERROR_SERVICE_ALREADY_RUNNING) => {}
            Err(e) => return Err(scm_error(name, e)),
        }
        wait_for(&s, name, WinState::Running)
    }

    fn stop(&self, name: &str) -> PlatformResult<()> {
        let s = open(name, ServiceAccess::QUERY_STATUS | ServiceAccess::STOP)?
            .ok_or_else(|| PlatformError::NotFound(name.to_owned()))?;
        match s.stop() {
            Ok(_) => {}
            Err(windows_service::Error::Winapi(io)) if io.raw_os_error() == Some(ERROR_SERVICE_NOT_ACTIVE) => {}
            Err(e) => return Err(scm_error(name, e)),
        }
        wait_for(&s, name, WinState::Stopped)
    }
}
