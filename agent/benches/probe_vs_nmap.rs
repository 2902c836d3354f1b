//! Times a full diagnosis of a loopback xrdp and, when nmap is installed,
//! `nmap -p PORT --script +rdp-enum-encryption` against the same server in the same run;
//! prints both times, their ratio, and whether the verdicts on supported protocols agree.
//!
//! Run: `cargo bench -p rdpfleet-agent --bench probe_vs_nmap` (needs xrdp; nmap optional).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdpfleet_agent::probe::trust::TrustStore;
use rdpfleet_agent::probe::{ProbeOptions, ProbeTarget, diagnose};
use rdpfleet_e2e::certs::TestCa;
use rdpfleet_e2e::rdp_servers::{XrdpCert, available, xrdp};
use rdpfleet_proto::diagnosis::Protocol;

const RUNS: usize = 20;
const NMAP_RUNS: usize = 3;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.saturating_sub(1).min(sorted.len() - 1)]
}

/// The protocols nmap's rdp-enum-encryption reports as SUCCESS.
fn nmap_verdict(output: &str) -> Option<BTreeSet<Protocol>> {
    if !output.contains("Security layer") {
        return None;
    }
    let mut out = BTreeSet::new();
    for (label, p) in [
        ("CredSSP (NLA): SUCCESS", Protocol::Nla),
        ("CredSSP with Early User Auth: SUCCESS", Protocol::NlaEx),
        ("Native RDP: SUCCESS", Protocol::Rdp),
        ("RDSTLS: SUCCESS", Protocol::Rdstls),
        ("SSL: SUCCESS", Protocol::Tls),
    ] {
        if output.contains(label) {
            out.insert(p);
        }
    }
    Some(out)
}

fn main() {
    if !available("xrdp") {
        println!("probe_vs_nmap: xrdp is not installed; nothing measured");
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let bundle = ca.write_bundle(dir.path());
    let cert = ca.issue(dir.path(), "bench", &["127.0.0.1"], -1, 365);
    let opts = ProbeOptions {
        io_timeout: Duration::from_secs(3),
        tcp_attempts: 5,
        expiry_warn_days: 30,
        trust: Arc::new(TrustStore::load(Some(&bundle), true).unwrap()),
        clock_reference: None,
    };
    let has_nmap = Command::new("nmap").arg("--version").output().is_ok_and(|o| o.status.success());
    println!(
        "probe_vs_nmap: full diagnosis (DNS, {} TCP connects, 7 negotiation requests, 4 TLS handshakes, certificate) vs nmap rdp-enum-encryption",
        opts.tcp_attempts
    );
    println!(
        "{:<10} {:>9} {:>9} {:>9} {:>10} {:>7}  verdicts",
        "xrdp mode", "p50 ms", "p95 ms", "mean ms", "nmap ms", "ratio"
    );
    for mode in ["negotiate", "tls"] {
        let server = xrdp(dir.path(), mode, XrdpCert::Files(&cert));
        let target = ProbeTarget { host: "127.0.0.1".into(), port: server.port, expected_address: None, gateway: None };
        // Warm-up: first-use costs (thread pool, OpenSSL tables) are not per-host costs.
        let first = rt.block_on(diagnose(&target, &opts));
        let mut times = Vec::with_capacity(RUNS);
        let mut supported = BTreeSet::new();
        for _ in 0..RUNS {
            let started = Instant::now();
            let d = rt.block_on(diagnose(&target, &opts));
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            supported = d.negotiation.as_ref().map(|n| n.supported.iter().copied().collect()).unwrap_or_default();
            assert_eq!(d.status, first.status, "verdict is stable across runs");
        }
        times.sort_by(f64::total_cmp);
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        let (p50, p95) = (percentile(&times, 50.0), percentile(&times, 95.0));
        let ours: Vec<String> = supported.iter().map(|p| format!("{p:?}")).collect();
        if !has_nmap {
            println!(
                "{mode:<10} {p50:>9.1} {p95:>9.1} {mean:>9.1} {:>10} {:>7}  ours: {}; nmap not installed",
                "-",
                "-",
                ours.join(",")
            );
            continue;
        }
        let mut nmap_times = Vec::new();
        let mut nmap_out = String::new();
        for _ in 0..NMAP_RUNS {
            let started = Instant::now();
            let out = Command::new("nmap")
                .args(["-Pn", "-n", "-p", &server.port.to_string(), "--script", "+rdp-enum-encryption", "127.0.0.1"])
                .output()
                .unwrap();
            nmap_times.push(started.elapsed().as_secs_f64() * 1000.0);
            nmap_out = String::from_utf8_lossy(&out.stdout).into_owned();
        }
        nmap_times.sort_by(f64::total_cmp);
        let nmap_ms = percentile(&nmap_times, 50.0);
        let verdict = match nmap_verdict(&nmap_out) {
            Some(theirs) if theirs == supported => "agree".to_owned(),
            Some(theirs) => {
                let extra: Vec<String> = theirs.difference(&supported).map(|p| format!("{p:?}")).collect();
                let missing: Vec<String> = supported.difference(&theirs).map(|p| format!("{p:?}")).collect();
                format!("DISAGREE: nmap also claims [{}], misses [{}]", extra.join(","), missing.join(","))
            }
            None => "DISAGREE: nmap's script failed against this server".to_owned(),
        };
        println!(
            "{mode:<10} {p50:>9.1} {p95:>9.1} {mean:>9.1} {nmap_ms:>10.1} {:>6.1}x  ours: [{}]; {verdict}",
            nmap_ms / p50,
            ours.join(",")
        );
    }
}
