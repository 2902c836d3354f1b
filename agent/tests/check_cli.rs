//! `rdpfleet-agent check --once` runs the catalogue locally and exits 0 healthy / 1 problem / 2 could not run.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn agent(config: &str) -> (tempfile::TempDir, Command) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("agent.toml"), config).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rdpfleet-agent"));
    cmd.arg("--config").arg(dir.path().join("agent.toml")).arg("--state-dir").arg(dir.path().join("state"));
    (dir, cmd)
}

#[test]
fn json_output_carries_the_diagnosis() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (_dir, mut cmd) = agent(&format!("[[targets]]\nhost = \"127.0.0.1\"\nport = {port}\n"));
    let out = cmd.args(["check", "--once", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let results: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &results[0];
    assert_eq!(
        (r["check"].as_str(), r["status"].as_str(), r["cause"].as_str()),
        (Some("rdp.path"), Some("fail"), Some("net.port_closed"))
    );
    assert_eq!(r["target"], format!("127.0.0.1:{port}"));
    assert_eq!(r["evidence"]["first_failing_layer"], "tcp");
    assert_eq!(r["evidence"]["layers"][2]["status"], "not_reached");
}

#[test]
fn closed_port_exits_one_and_says_why() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (_dir, mut cmd) = agent(&format!("[[targets]]\nhost = \"127.0.0.1\"\nport = {port}\n"));
    let out = cmd.args(["check", "--once"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("FAIL") && text.contains("net.port_closed"), "{text}");
    assert!(!text.contains('\x1b'), "no colours when stdout is not a terminal");
}

#[test]
fn diagnose_exit_codes_and_report() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (_dir, mut cmd) = agent("");
    let out = cmd.args(["diagnose", &format!("127.0.0.1:{port}")]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("PROBLEM") && text.contains("[FAIL] TCP") && text.contains("not reached"), "{text}");
    let (_dir, mut cmd) = agent("");
    let out = cmd.args(["diagnose", "host:notaport"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a bad target cannot run");
}

#[test]
fn bad_configuration_exits_two() {
    let (_dir, mut cmd) = agent("intervall_secs = 5\n");
    let out = cmd.args(["check", "--once"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("intervall_secs"));
}

#[test]
fn run_without_enrollment_exits_two_with_advice() {
    let (_dir, mut cmd) = agent("");
    let out = cmd.arg("run").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rdpfleet-agent enroll"));
}
