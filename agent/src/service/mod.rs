//! Running as a Windows service: `rdpfleet-agent service install|uninstall|run`. The service
//! runs the same loop as `rdpfleet-agent run`; before the machine is enrolled it waits for the
//! credential instead of exiting, so an installer can register the service first.
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use tokio_util::sync::CancellationToken;

use crate::config::AgentConfig;
use crate::credential::Credential;

#[cfg(windows)]
#[allow(unsafe_code)] // define_windows_service! expands to the FFI entry point.
pub mod windows;

pub const DEFAULT_NAME: &str = "rdpfleet-agent";
/// How often an unenrolled service looks for its credential.
const ENROLL_POLL: Duration = Duration::from_secs(15);

/// The agent until `stop` fires: applies an installer's settings, waits for enrollment (or
/// enrolls with the installer's token), then runs the check/report/job loop.
pub async fn serve(config: AgentConfig, config_path: PathBuf, stop: CancellationToken) -> anyhow::Result<()> {
    let platform = crate::platform::Platform::native();
    let config = match crate::provision::apply(
        platform.registry.as_ref(),
        platform.state_dir.as_ref(),
        &config_path,
        config.clone(),
    ) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "cannot apply the installer's settings");
            config
        }
    };
    let mut warned = false;
    let credential = loop {
        match Credential::load(&config.state_dir) {
            Ok(c) => break c,
            Err(e) => {
                if crate::provision::pending(&config.state_dir) {
                    match crate::provision::enroll_pending(&config).await {
                        Ok(Some(c)) => break c,
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(error = %format!("{e:#}"), "enrollment with the installer's token failed; retrying")
                        }
                    }
                } else if !warned {
                    tracing::warn!(error = %e, "not enrolled yet; waiting for `rdpfleet-agent enroll`");
                    warned = true;
                }
                tokio::select! {
                    () = stop.cancelled() => return Ok(()),
                    () = tokio::time::sleep(ENROLL_POLL) => {}
                }
            }
        }
    };
    crate::run_loop::run(config, credential, stop).await
}

/// Deletes the agent's configuration and state (credential, outbox, journal, backups): the MSI's
/// uninstall runs this when asked to (`PURGE_STATE=1`). The configuration's folder goes too
/// when nothing else is left in it.
pub fn purge_state(config_path: &Path, state_dir: &Path) -> anyhow::Result<()> {
    if state_dir.exists() {
        std::fs::remove_dir_all(state_dir).with_context(|| format!("cannot delete {}", state_dir.display()))?;
    }
    match std::fs::remove_file(config_path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot delete {}", config_path.display())),
    }
    if let Some(dir) = config_path.parent() {
        // Only when empty: the folder may hold what an administrator put there.
        let _ = std::fs::remove_dir(dir);
    }
    Ok(())
}
