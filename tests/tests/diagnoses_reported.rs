//! The agent diagnoses its configured targets against a real xrdp and reports them; the server
//! stores them and serves them from the JSON API.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use rdpfleet_e2e::TestDb;
use rdpfleet_e2e::certs::TestCa;
use rdpfleet_e2e::procs::{AgentDir, Server};
use rdpfleet_e2e::rdp_servers::{XrdpCert, available, xrdp};
use rdpfleet_proto::check::CheckStatus;
use rdpfleet_proto::diagnosis::{Diagnosis, Layer, Protocol};

async fn diagnoses(server: &Server, machine: &str, token: &str) -> Vec<Diagnosis> {
    let url = format!("{}/api/v1/machines/{machine}/diagnoses", server.url);
    let r = reqwest::Client::new().get(url).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn agent_reports_diagnoses_of_its_targets() {
    if !available("xrdp") {
        return;
    }
    let db = TestDb::sqlite();
    let work = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let bundle = ca.write_bundle(work.path());
    let cert = ca.issue(work.path(), "host", &["localhost"], -1, 365);
    let rdp = xrdp(work.path(), "tls", XrdpCert::Files(&cert));
    let port = rdp.port;

    let server = Server::start(db.url(), work.path()).await;
    let token = server.admin(&["enroll-token", "create", "--label", "e2e"]).await;
    let api = server.admin(&["user", "token", "--username", "admin"]).await;
    let agent = AgentDir::new(&format!(
        "interval_secs = 5\njitter_pct = 0\n[probe]\nca_bundle = \"{}\"\nio_timeout_ms = 1000\n[[targets]]\nhost = \"localhost\"\nport = {port}\n",
        bundle.display()
    ));
    let out = agent.command().args(["enroll", "--server", &server.url, "--token", &token]).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let machine = agent.credential()["machine_id"].as_str().unwrap().to_owned();
    let _run = agent.command().arg("run").stderr(std::process::Stdio::null()).spawn().unwrap();

    let healthy = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let d = diagnoses(&server, &machine, &api).await;
            if !d.is_empty() {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("a diagnosis within 60 s");
    let d = &healthy[0];
    assert_eq!((d.target.as_str(), d.status), (format!("localhost:{port}").as_str(), CheckStatus::Pass), "{d:#?}");
    assert_eq!(d.negotiation.as_ref().unwrap().supported, vec![Protocol::Tls]);
    assert!(d.certificate.as_ref().unwrap().chain_trusted);
    // Enrolled: the clock layer compared this machine with the server.
    let clock = d.clock.as_ref().expect("clock measured against the rdpfleet server");
    assert!(clock.skew_ms.abs() < 5_000, "{clock:?}");
    assert_eq!(d.layer(Layer::Clock).unwrap().findings.len(), 0);

    rdp.stop();
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let d = diagnoses(&server, &machine, &api).await;
            if d.first().is_some_and(|d| d.status == CheckStatus::Fail) {
                assert_eq!(d[0].first_failing_layer, Some(Layer::Tcp));
                assert_eq!(d[0].cause.as_deref(), Some("net.port_closed"));
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await
    .expect("the outage is diagnosed and stored");
}
