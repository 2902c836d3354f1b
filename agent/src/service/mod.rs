//! Running as a Windows service: `rdpfleet-agent service install|uninstall|run`. The service
//! runs the same loop as `rdpfleet-agent run`; before the machine is enrolled it waits for the
//! credential instead of exiting, so an installer can register the service first.
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::AgentConfig;
use crate::credential::Credential;

#[cfg(windows)]
#[allow(unsafe_code)] // define_windows_service! expands to the FFI entry point.
pub mod windows;

pub const DEFAULT_NAME: &str = "rdpfleet-agent";
/// How often an unenrolled service looks for its credential.
const ENROLL_POLL: Duration = Duration::from_secs(15);

/// The agent until `stop` fires: waits for enrollment, then runs the check/report/job loop.
pub async fn serve(config: AgentConfig, stop: CancellationToken) -> anyhow::Result<()> {
    let mut warned = false;
    let credential = loop {
        match Credential::load(&config.state_dir) {
            Ok(c) => break c,
            Err(e) => {
                if !warned {
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
