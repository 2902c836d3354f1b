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

/// The update's Windows half under Wine: the running service's binary is renamed aside and
/// replaced, the watchdog (started from the old binary) restarts the service through the SCM;
/// when the new build does not report by the deadline the watchdog puts the old binary back and
/// restarts the service again.
#[test]
fn native_update_swaps_the_running_binary_and_the_watchdog_restarts_or_reverts() {
    use rdpfleet_agent::update::{Pending, Progress, Restart, previous_path, swap, watchdog};

    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let exe = bin.join("rdpfleet-agent.exe");
    let original = std::fs::read(env!("CARGO_BIN_EXE_rdpfleet-agent")).expect("agent binary");
    std::fs::write(&exe, &original).expect("copy");
    let config = dir.path().join("agent.toml");
    let state = dir.path().join("state");
    std::fs::write(&config, "role = \"client\"\n").expect("config");
    let name = format!("rdpfleet-agent-update-{}", std::process::id());
    let (config_s, state_s) = (config.to_str().expect("utf-8"), state.to_str().expect("utf-8"));
    let out = Command::new(&exe)
        .args(["--config", config_s, "--state-dir", state_s, "service", "install", "--name", &name])
        .output()
        .expect("install");
    assert!(out.status.success(), "install: {}", String::from_utf8_lossy(&out.stderr));
    WindowsServices.start(&name).expect("start");
    wait_for(&name, ServiceState::Running);
    let starts =
        || std::fs::read_to_string(state.join("agent.log")).unwrap_or_default().matches("not enrolled yet").count();
    let wait_starts = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while starts() < n {
            assert!(Instant::now() < deadline, "the service did not start {n} times");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_starts(1);

    // The new build: the same program with bytes appended (an overlay Windows ignores).
    let mut newer = original.clone();
    newer.extend_from_slice(b"rdpfleet-update-test");
    let previous = previous_path(&exe);
    swap(&exe, &previous, &newer).expect("swap the running binary");
    let pending = |deadline: i64| Pending {
        job: uuid::Uuid::new_v4(),
        from_version: "0.0.1".into(),
        to_version: rdpfleet_agent::agent_version().into(),
        exe: exe.clone(),
        previous: previous.clone(),
        deadline,
        pid: 0,
        args: vec![],
        restart: Restart::WindowsService { name: name.clone() },
        progress: Progress::Installed,
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    pending(now + 600).save(&state).expect("record");
    watchdog::spawn(&previous, &state).expect("watchdog");
    wait_starts(2);
    wait_for(&name, ServiceState::Running);
    assert_eq!(std::fs::read(&exe).expect("exe"), newer, "the service runs the new binary");
    // The new build reported: it clears the record, and the watchdog leaves.
    Pending::clear(&state).expect("clear");

    // Again (the new binary still in place, the old one aside), but the new build never
    // reports: after the deadline the old binary is back.
    pending(now + 5).save(&state).expect("record");
    watchdog::spawn(&previous, &state).expect("watchdog");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let p = Pending::load(&state).expect("load");
        if p.as_ref().is_some_and(|p| matches!(p.progress, Progress::Reverted { .. })) {
            break;
        }
        assert!(Instant::now() < deadline, "the watchdog did not revert: {p:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
    wait_for(&name, ServiceState::Running);
    assert_eq!(std::fs::read(&exe).expect("exe"), original, "the old binary is back");

    let out = Command::new(&exe).args(["service", "uninstall", "--name", &name]).output().expect("uninstall");
    assert!(out.status.success(), "uninstall: {}", String::from_utf8_lossy(&out.stderr));
}
