//! The update watchdog: started from the previous binary just before the restart, it waits for
//! the new build to report (which clears the pending record). If the new build exits, or has
//! not reported by the deadline, it puts the previous binary back and restarts the agent with
//! it; that build then answers the job as rolled back. On Windows it also does the restart
//! itself, through the service manager (a service cannot restart itself).
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::record::{Pending, Progress, Restart};

/// Starts the watchdog from `previous` (the binary the update replaced), detached.
pub fn spawn(previous: &Path, state_dir: &Path) -> std::io::Result<()> {
    let mut cmd = Command::new(previous);
    cmd.arg("update-watchdog").arg("--state-dir").arg(state_dir);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt;
        const DETACHED_PROCESS: u32 = 0x0000_0008;
        const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
        cmd.creation_flags(DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP);
    }
    cmd.spawn().map(|_| ())
}

fn log(state_dir: &Path, line: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(state_dir.join("update-watchdog.log"))
    {
        let _ = writeln!(f, "{} {line}", time::OffsetDateTime::now_utc());
    }
}

/// Watches until the update is confirmed or reverted.
pub fn run(state_dir: &Path) -> anyhow::Result<()> {
    let mut restarted = false;
    loop {
        let Some(p) = Pending::load(state_dir)? else {
            log(state_dir, "the new build reported: done");
            return Ok(());
        };
        if p.progress != Progress::Installed {
            return Ok(());
        }
        if !restarted {
            restarted = true;
            if let Restart::WindowsService { name } = &p.restart {
                log(state_dir, &format!("restarting service {name} with {}", p.to_version));
                if let Err(e) = restart_service(name) {
                    return revert(state_dir, p, &format!("the service could not be restarted: {e}"));
                }
            }
        }
        if !running(&p) {
            return revert(state_dir, p, "the new build stopped before it reported");
        }
        if time::OffsetDateTime::now_utc().unix_timestamp() > p.deadline {
            return revert(state_dir, p, "the new build did not start and report within the health gate");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Whether the updated agent is still running.
fn running(p: &Pending) -> bool {
    match &p.restart {
        Restart::Exec | Restart::Systemd { .. } => process_alive(p.pid),
        Restart::WindowsService { name } => service_running(name),
    }
}

fn revert(state_dir: &Path, mut p: Pending, reason: &str) -> anyhow::Result<()> {
    log(state_dir, &format!("reverting {} to {}: {reason}", p.to_version, p.from_version));
    let bytes = std::fs::read(&p.previous)?;
    let staged = super::beside(&p.exe, "restore");
    if let Restart::WindowsService { name } = &p.restart {
        // The failed build may still hold its image open.
        let _ = stop_service(name);
    }
    super::write_executable(&staged, &bytes)?;
    std::fs::rename(&staged, &p.exe)?;
    p.progress = Progress::Reverted { reason: reason.to_owned() };
    p.save(state_dir)?;
    match &p.restart {
        Restart::Exec => {
            terminate(p.pid);
            exec(&p.exe, &p.args)
        }
        Restart::Systemd { unit } => {
            let status = Command::new("systemctl").args(["restart", unit]).status()?;
            anyhow::ensure!(status.success(), "systemctl restart {unit} failed");
            Ok(())
        }
        Restart::WindowsService { name } => restart_service(name),
    }
}

/// Replaces this process with `exe args` (Unix); returns only on failure.
#[cfg(unix)]
pub fn exec(exe: &Path, args: &[String]) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let e = Command::new(exe).args(args).exec();
    Err(anyhow::anyhow!("cannot start {}: {e}", exe.display()))
}

/// Starts `exe args` as a new process and exits this one.
#[cfg(not(unix))]
pub fn exec(exe: &Path, args: &[String]) -> anyhow::Result<()> {
    Command::new(exe).args(args).spawn()?;
    std::process::exit(0)
}

fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        // A zombie (exited, not yet reaped) is not running.
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next())
                .is_some_and(|s| s != 'Z' && s != 'X'),
            Err(_) => false,
        }
    } else {
        true
    }
}

fn terminate(pid: u32) {
    if !process_alive(pid) {
        return;
    }
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    for _ in 0..50 {
        if !process_alive(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
}

#[cfg(windows)]
fn restart_service(name: &str) -> anyhow::Result<()> {
    use crate::platform::Services;
    crate::platform::windows::services::WindowsServices.restart(name).map_err(|e| anyhow::anyhow!("{e}"))
}

#[cfg(windows)]
fn stop_service(name: &str) -> anyhow::Result<()> {
    use crate::platform::Services;
    crate::platform::windows::services::WindowsServices.stop(name).map_err(|e| anyhow::anyhow!("{e}"))
}

#[cfg(windows)]
fn service_running(name: &str) -> bool {
    use crate::platform::{ServiceState, Services};
    !matches!(
        crate::platform::windows::services::WindowsServices.state(name),
        Ok(ServiceState::Stopped | ServiceState::NotInstalled)
    )
}

#[cfg(not(windows))]
fn restart_service(_: &str) -> anyhow::Result<()> {
    anyhow::bail!("Windows services exist only on Windows")
}

#[cfg(not(windows))]
fn stop_service(_: &str) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(not(windows))]
fn service_running(_: &str) -> bool {
    false
}
