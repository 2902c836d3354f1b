//! The Windows service: registration with the Service Control Manager and the service entry
//! point (`windows-service`).
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept, ServiceErrorControl,
    ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod, ServiceInfo, ServiceStartType, ServiceState,
    ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

use crate::config::AgentConfig;

/// What the SCM-started process needs in `service_main`, which takes no context.
static STARTUP: OnceLock<(String, AgentConfig, PathBuf)> = OnceLock::new();

/// Registers the service to start at boot as LocalSystem, restarting after failures.
pub fn install(name: &str, config: Option<&Path>, state_dir: Option<&Path>) -> anyhow::Result<()> {
    let manager = ServiceManager::local_computer(
        None::<&str>,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    )
    .context("cannot open the service control manager (run as administrator)")?;
    let absolute = |p: &Path| -> anyhow::Result<OsString> {
        Ok(std::path::absolute(p).with_context(|| format!("bad path {}", p.display()))?.into_os_string())
    };
    let mut args: Vec<OsString> = Vec::new();
    if let Some(c) = config {
        args.extend([OsString::from("--config"), absolute(c)?]);
    }
    if let Some(s) = state_dir {
        args.extend([OsString::from("--state-dir"), absolute(s)?]);
    }
    args.extend(["service", "run", "--name", name].map(OsString::from));
    let info = ServiceInfo {
        name: name.into(),
        // Windows refuses a second service with the same display name: name other instances.
        display_name: OsString::from(if name == super::DEFAULT_NAME {
            "rdpfleet agent".to_owned()
        } else {
            format!("rdpfleet agent ({name})")
        }),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: std::env::current_exe().context("cannot find this executable")?,
        launch_arguments: args,
        dependencies: vec![],
        account_name: None,
        account_password: None,
    };
    let service = manager
        .create_service(&info, ServiceAccess::CHANGE_CONFIG | ServiceAccess::QUERY_STATUS)
        .with_context(|| format!("cannot create service {name}"))?;
    let _ = service.set_description("Diagnoses and fixes Remote Desktop connection failures (rdpfleet)");
    let restart = ServiceAction { action_type: ServiceActionType::Restart, delay: Duration::from_secs(60) };
    let actions = ServiceFailureActions {
        reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(86_400)),
        reboot_msg: None,
        command: None,
        actions: Some(vec![restart.clone(), restart.clone(), restart]),
    };
    if let Err(e) = service.update_failure_actions(actions) {
        tracing::warn!(error = %e, "cannot set the restart-on-failure actions");
    }
    Ok(())
}

/// Stops the service when it runs, then deletes it.
pub fn uninstall(name: &str) -> anyhow::Result<()> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .context("cannot open the service control manager (run as administrator)")?;
    let service = manager
        .open_service(name, ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE)
        .with_context(|| format!("cannot open service {name}"))?;
    if service.query_status()?.current_state != ServiceState::Stopped {
        let _ = service.stop();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while service.query_status()?.current_state != ServiceState::Stopped && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    service.delete().with_context(|| format!("cannot delete service {name}"))?;
    Ok(())
}

/// Hands the process to the SCM; returns when the service has stopped.
pub fn run(name: &str, config: AgentConfig, config_path: PathBuf) -> anyhow::Result<()> {
    crate::update::set_service_name(name);
    STARTUP.set((name.to_owned(), config, config_path)).map_err(|_| anyhow::anyhow!("service already started"))?;
    service_dispatcher::start(name, ffi_service_main)
        .context("not started by the service control manager (use `rdpfleet-agent run` in a console)")?;
    Ok(())
}

define_windows_service!(ffi_service_main, service_main);

fn service_main(_arguments: Vec<OsString>) {
    if let Err(e) = serve_until_stopped() {
        tracing::error!(error = %format!("{e:#}"), "the service failed");
    }
}

fn status(state: ServiceState, accept: ServiceControlAccept, exit: u32) -> ServiceStatus {
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted: accept,
        exit_code: ServiceExitCode::Win32(exit),
        checkpoint: 0,
        wait_hint: Duration::from_secs(10),
        process_id: None,
    }
}

fn serve_until_stopped() -> anyhow::Result<()> {
    let (name, config, config_path) = STARTUP.get().cloned().context("no startup settings")?;
    let stop = CancellationToken::new();
    let on_control = stop.clone();
    let handle = service_control_handler::register(&name, move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            on_control.cancel();
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    })?;
    handle.set_service_status(status(
        ServiceState::Running,
        ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN,
        0,
    ))?;
    let result = tokio::runtime::Runtime::new()
        .context("cannot start the runtime")
        .and_then(|rt| rt.block_on(super::serve(config, config_path, stop)));
    let exit = u32::from(result.is_err());
    handle.set_service_status(status(ServiceState::Stopped, ServiceControlAccept::empty(), exit))?;
    result
}

/// The log file a service writes (it has no console).
pub fn log_path(config: &AgentConfig) -> PathBuf {
    config.state_dir.join("agent.log")
}
