//! The agent's calls to the server are bounded: a server that accepts the connection and then
//! never answers (hung, or a black-holing middlebox) makes `enroll` fail with a timeout instead
//! of hanging the agent.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn a_server_that_never_answers_times_out() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept and hold every connection, reading nothing and writing nothing.
    std::thread::spawn(move || {
        let mut held = vec![];
        for c in listener.incoming() {
            held.push(c);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("agent.toml"), "").unwrap();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_rdpfleet-agent"))
        .arg("--config")
        .arg(dir.path().join("agent.toml"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .args(["enroll", "--server", &format!("http://127.0.0.1:{port}"), "--token", "rfe_never"])
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(err.contains("timed out") || err.contains("timeout"), "{err}");
    // The enrollment call's own bound is 30 s.
    assert!(took >= Duration::from_secs(25) && took < Duration::from_secs(50), "{took:?}");
}
