//! A real fix on a real xrdp: the host's certificate is expired; the agent's host check fails,
//! `fix apply xrdp.cert.renew` renews it (backup, apply, verify), and the network probe from a
//! client then passes against the same running server.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use rdpfleet_e2e::certs::TestCa;
use rdpfleet_e2e::procs::bin;
use rdpfleet_e2e::rdp_servers::{XrdpCert, available, xrdp};
use rdpfleet_proto::check::CheckStatus;
use rdpfleet_proto::diagnosis::Diagnosis;
use serde_json::Value;

fn agent(config: &Path, args: &[&str]) -> (i32, Vec<u8>) {
    let out = Command::new(bin("rdpfleet-agent")).arg("--config").arg(config).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), out.stdout)
}

fn xrdp_certificate_result(config: &Path) -> Value {
    let (_, out) = agent(config, &["check", "--once", "--json"]);
    let results: Value = serde_json::from_slice(&out).unwrap();
    results
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["check"] == "xrdp.certificate")
        .cloned()
        .expect("the xrdp checks apply")
}

#[test]
fn expired_xrdp_certificate_is_renewed_and_the_probe_then_passes() {
    if !available("xrdp") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let bundle = ca.write_bundle(dir.path());
    let expired = ca.issue(dir.path(), "expired", &["localhost"], -400, -10);
    let server = xrdp(dir.path(), "tls", XrdpCert::Files(&expired));
    let ini = server.config.clone().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n[probe]\nplatform_roots = false\n[xrdp]\nini = \"{}\"\nnames = [\"localhost\"]\nservice = \"rdpfleet-test-no-such-unit\"\n",
            dir.path().join("state").display(),
            ini.display()
        ),
    )
    .unwrap();
    let target = format!("localhost:{}", server.port);

    // Before: the host's own check and a client's probe agree on the cause.
    let before = xrdp_certificate_result(&config);
    assert_eq!((before["status"].as_str(), before["cause"].as_str()), (Some("fail"), Some("cert.expired")), "{before}");
    let (code, out) = agent(&config, &["diagnose", &target, "--json", "--ca-bundle", bundle.to_str().unwrap()]);
    let d: Diagnosis = serde_json::from_slice(&out).unwrap();
    assert_eq!((code, d.cause.as_deref()), (1, Some("cert.expired")));
    let old_thumbprint = d.certificate.unwrap().sha1_thumbprint;

    // A dry run changes nothing.
    let cert_before = std::fs::read(&expired.cert).unwrap();
    let (code, out) = agent(&config, &["fix", "apply", "xrdp.cert.renew", "--dry-run", "--json"]);
    let dry: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!((code, dry["outcome"].as_str()), (0, Some("would_change")));
    assert_eq!(std::fs::read(&expired.cert).unwrap(), cert_before);
    assert_eq!(xrdp_certificate_result(&config)["status"], "fail");

    // The fix.
    let (code, out) = agent(&config, &["fix", "apply", "xrdp.cert.renew", "--json"]);
    let report: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!((code, report["outcome"].as_str()), (0, Some("succeeded")), "{report}");
    assert_eq!(report["backup"]["saved"].as_array().unwrap().len(), 2, "certificate and key backed up");
    assert_eq!(report["after"]["ok"], true);
    let after = xrdp_certificate_result(&config);
    assert_eq!(after["status"], "pass", "{after}");
    let (code, out) = agent(&config, &["fix", "apply", "xrdp.cert.renew", "--json"]);
    let again: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!((code, again["outcome"].as_str()), (0, Some("already_compliant")));

    // The same running server now serves the renewed certificate; a client that trusts it
    // (the renewed certificate is self-signed, so it is its own trust anchor) sees a healthy path.
    let (code, out) = agent(&config, &["diagnose", &target, "--json", "--ca-bundle", expired.cert.to_str().unwrap()]);
    let d: Diagnosis = serde_json::from_slice(&out).unwrap();
    assert_eq!((code, d.status, d.cause.as_deref()), (0, CheckStatus::Pass, None), "{d:#?}");
    let cert = d.certificate.unwrap();
    assert_ne!(cert.sha1_thumbprint, old_thumbprint);
    assert!(cert.days_left >= 360 && cert.name_matches && cert.chain_trusted);
}
