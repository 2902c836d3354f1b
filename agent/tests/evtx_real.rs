//! The .evtx reader on real Windows logs (../shared/evtx, from the evtx crate's samples).
//! Skipped, with a message, where that folder is absent (a user's clone).
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

use rdpfleet_agent::evidence::{analyse, evtx_file};

fn samples() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("RDPFLEET_EVTX_DIR") {
        return Some(PathBuf::from(d));
    }
    let found =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).ancestors().map(|a| a.join("shared/evtx")).find(|p| p.is_dir());
    if found.is_none() {
        eprintln!("SKIPPED: no shared/evtx folder above the workspace (set RDPFLEET_EVTX_DIR to the sample logs)");
    }
    found
}

#[test]
fn rdpcorets_131_and_140_are_found_with_their_fields() {
    let Some(dir) = samples() else { return };
    let r = evtx_file::read(&dir.join("RdpCoreTS-Operational.evtx")).unwrap();
    let accepted: Vec<_> = r.events.iter().filter(|e| e.id == 131).collect();
    let failed: Vec<_> = r.events.iter().filter(|e| e.id == 140).collect();
    assert_eq!((accepted.len(), failed.len()), (126, 126));
    assert!(accepted.iter().all(|e| e.provider == "Microsoft-Windows-RemoteDesktopServices-RdpCoreTS"));
    assert!(accepted.iter().all(|e| e.data.get("ClientIP").is_some_and(|ip| !ip.is_empty())), "{:?}", accepted[0]);
    assert!(failed.iter().all(|e| e.data.get("IPString").is_some_and(|ip| !ip.is_empty())), "{:?}", failed[0]);
    let ev = analyse(&r.events);
    assert_eq!(ev.logon_failures_from.values().sum::<usize>(), 126);
    assert!(
        ev.findings.iter().any(|f| f.cause == "host.logon_failures"),
        "repeated failures from one address: {:?}",
        ev.logon_failures_from
    );
}

#[test]
fn remote_connection_manager_261_and_1149() {
    let Some(dir) = samples() else { return };
    let r = evtx_file::read(&dir.join("RemoteConnectionManager-Operational.evtx")).unwrap();
    let listener: Vec<_> = r.events.iter().filter(|e| e.id == 261).collect();
    let logons: Vec<_> = r.events.iter().filter(|e| e.id == 1149).collect();
    assert_eq!((listener.len(), logons.len()), (1769, 5));
    assert!(listener.iter().all(|e| e.data.get("listenerName").map(String::as_str) == Some("RDP-Tcp")));
    let first = logons
        .iter()
        .find(|e| e.data.get("Param3").map(String::as_str) == Some("174.127.93.2"))
        .expect("a 1149 from 174.127.93.2");
    assert_eq!(first.data.get("Param1").map(String::as_str), Some("mpowers"));
    let ev = analyse(&r.events);
    assert_eq!(ev.successful_logons.len(), 5);
    assert!(
        ev.successful_logons.iter().any(|s| s.contains(r"\mpowers from 174.127.93.2")),
        "{:?}",
        ev.successful_logons
    );
}

#[test]
fn a_damaged_file_reports_what_it_could_not_read_without_panicking() {
    let Some(dir) = samples() else { return };
    let path = dir.join("corrupt-bad-chunk-magic.evtx");
    let r = evtx_file::read(&path).unwrap();
    assert!(r.unreadable > 0 && r.first_error.is_some());
    assert!(!r.events.is_empty(), "the readable records are kept");
    let out =
        Command::new(env!("CARGO_BIN_EXE_rdpfleet-agent")).args(["evidence", "--evtx"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "what could be read has no RDP findings");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("could not be parsed") && err.contains("may be damaged"), "{err}");
    assert!(!err.contains("panicked"));
}

#[test]
fn evidence_command_over_several_files() {
    let Some(dir) = samples() else { return };
    let out = Command::new(env!("CARGO_BIN_EXE_rdpfleet-agent"))
        .args(["evidence", "--json", "--evtx"])
        .arg(dir.join("RdpCoreTS-Operational.evtx"))
        .arg(dir.join("RemoteConnectionManager-Operational.evtx"))
        .arg(dir.join("System.evtx"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["files"].as_array().unwrap().len(), 3);
    assert!(v["evidence"]["counts"]["RdpCoreTS/140"].as_u64().unwrap() == 126);
    assert!(v["evidence"]["findings"].as_array().unwrap().iter().any(|f| f["cause"] == "host.logon_failures"));
}

#[test]
fn a_file_that_is_not_evtx_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not.evtx");
    std::fs::write(&path, b"this is not an event log").unwrap();
    assert!(evtx_file::read(&path).is_err());
    let out =
        Command::new(env!("CARGO_BIN_EXE_rdpfleet-agent")).args(["evidence", "--evtx"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open"));
}
