//! The agent as a Windows service, under Wine in CI: install, start, query, stop, uninstall —
//! the real binary through the real Service Control Manager.
#![cfg(windows)]

use std::process::Command;
use std::time::{Duration, Instant};

use rdpfleet_agent::platform::services::{ServiceState, Services};
use rdpfleet_agent::platform::windows::services::WindowsServices;

fn agent(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rdpfleet-agent")).args(args).output().expect("run the agent")
}

fn wait_for(name: &str, want: ServiceState) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = WindowsServices.state(name).expect("query");
        if now == want {
            return;
        }
        assert!(Instant::now() < deadline, "{name} is {now:?}, expected {want:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn native_service_install_start_stop_uninstall_cycle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("agent.toml");
    let state = dir.path().join("state");
    std::fs::write(&config, "role = \"host\"\n").expect("config");
    let name = format!("rdpfleet-agent-test-{}", std::process::id());
    let (config_s, state_s) = (config.to_str().expect("utf-8"), state.to_str().expect("utf-8"));

    let out = agent(&["--config", config_s, "--state-dir", state_s, "service", "install", "--name", &name]);
    assert!(out.status.success(), "install: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(WindowsServices.state(&name).expect("query"), ServiceState::Stopped);

    // Not enrolled: the service runs and waits for its credential instead of exiting.
    WindowsServices.start(&name).expect("start");
    wait_for(&name, ServiceState::Running);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(WindowsServices.state(&name).expect("query"), ServiceState::Running, "still running");
    let log = std::fs::read_to_string(state.join("agent.log")).unwrap_or_default();
    assert!(log.contains("not enrolled yet"), "the service logs to its state directory: {log}");

    WindowsServices.stop(&name).expect("stop");
    wait_for(&name, ServiceState::Stopped);

    let again = agent(&["--config", config_s, "service", "install", "--name", &name]);
    assert!(!again.status.success(), "a second install is refused");

    let out = agent(&["service", "uninstall", "--name", &name]);
    assert!(out.status.success(), "uninstall: {}", String::from_utf8_lossy(&out.stderr));
    wait_for(&name, ServiceState::NotInstalled);

    // Started from a console instead of by the SCM: a clear error, not a hang.
    let out = agent(&["service", "run", "--name", &name]);
    assert!(!out.status.success());
}
