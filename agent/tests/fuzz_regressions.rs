//! Replays the fuzz seeds and every crash the fuzzers found (`fuzz/regressions/<target>/`)
//! through the same code as the fuzz targets, in every CI run: a fixed crash stays fixed.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use rdpfleet_agent::evidence::{analyse, event_xml, evtx_file};
use rdpfleet_agent::probe::{cert, trust::TrustStore, x224};

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut out = vec![];
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else { continue };
        for e in entries {
            let path = e.unwrap().path();
            if path.file_name().is_some_and(|n| n != ".keep") {
                let bytes = std::fs::read(&path).unwrap();
                out.push((path, bytes));
            }
        }
    }
    out
}

#[test]
fn x224_inputs() {
    let all = inputs("x224");
    assert!(!all.is_empty(), "the seeds are in the repository");
    for (_, data) in &all {
        let _ = x224::tpkt_length(data);
        let _ = x224::parse_confirm(data);
    }
    // The seeds are real replies: each one parses.
    for (path, data) in all.iter().filter(|(p, _)| p.to_string_lossy().contains("/seeds/")) {
        assert!(x224::parse_confirm(data).is_ok(), "{}", path.display());
    }
}

#[test]
fn certificate_inputs() {
    let trust = TrustStore::load(None, false).unwrap();
    let now = time::OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
    for (_, data) in inputs("certificate") {
        let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
        let (a, b) = data.split_at(split);
        let chain = if a.is_empty() { vec![b.to_vec()] } else { vec![b.to_vec(), a.to_vec()] };
        let _ = cert::judge(&chain, "rdp01.corp.example", now, 30, &trust);
        let _ = cert::judge(std::slice::from_ref(&data), "rdp01.corp.example", now, 30, &trust);
    }
}

#[test]
fn a_record_size_below_its_header_is_reported_not_a_crash() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/evtx/record-size-underflow.evtx");
    let read = evtx_file::read(&path).unwrap();
    assert!(read.unreadable > 0, "the damage is counted");
    assert!(read.first_error.is_some());
}

#[test]
fn evtx_inputs() {
    for (_, data) in inputs("evtx") {
        if let Ok(read) = evtx_file::read_bytes("regression", data.clone()) {
            let _ = analyse(&read.events);
        }
        if let Ok(xml) = std::str::from_utf8(&data)
            && let Ok(event) = event_xml::parse(xml)
        {
            let _ = analyse(&[event]);
        }
    }
}
