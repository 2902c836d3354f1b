//! End-to-end: the real server and agent binaries over real HTTP, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use rdpfleet_e2e::TestDb;
use rdpfleet_e2e::procs::{AgentDir, Server};
use serde_json::{Value, json};

async fn get_json(url: &str, token: &str) -> (u16, Value) {
    let r = reqwest::Client::new().get(url).bearer_auth(token).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post_json(url: &str, token: &str, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new().post(url).bearer_auth(token).json(body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn the_story(db: TestDb) {
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(db.url(), work.path()).await;
    // First start: an admin and a bootstrap token were written to a private file.
    let creds = std::fs::read_to_string(work.path().join("initial-credentials.txt")).unwrap();
    assert!(creds.contains("username=admin"));

    let token = server.admin(&["enroll-token", "create", "--label", "e2e", "--max-uses", "1"]).await;
    assert!(token.starts_with("rfe_"), "{token}");
    let api = server.admin(&["user", "token", "--username", "admin"]).await;

    // A port that accepts but never speaks RDP, and one that nothing listens on.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open_port = listener.local_addr().unwrap().port();
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let agent = AgentDir::new(&format!(
        "role = \"client\"\nsite = \"lab\"\ninterval_secs = 5\njitter_pct = 0\ncheck_timeout_secs = 5\n\
         [probe]\nio_timeout_ms = 500\ntcp_attempts = 2\n[xrdp]\nini = \"/nonexistent/xrdp.ini\"\n\
         [[targets]]\nhost = \"127.0.0.1\"\nport = {open_port}\n\
         [[targets]]\nhost = \"127.0.0.1\"\nport = {closed_port}\n"
    ));
    let out = agent
        .command()
        .args(["enroll", "--server", &server.url, "--token", &token, "--hostname", "e2e-client"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "enroll: {}", String::from_utf8_lossy(&out.stderr));
    let cred = agent.credential();
    let machine_id = cred["machine_id"].as_str().unwrap().to_owned();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(agent.dir.path().join("state/credential.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "credential file is private");
    }
    // The token had one use.
    let again =
        agent.command().args(["enroll", "--force", "--server", &server.url, "--token", &token]).output().await.unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("enrollment_token_used_up"));

    let mut run = agent.command().arg("run").stderr(std::process::Stdio::null()).spawn().unwrap();
    let results_url = format!("{}/api/v1/machines/{machine_id}/results", server.url);
    let results = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let (status, body) = get_json(&results_url, &api).await;
            assert_eq!(status, 200, "{body}");
            if body.as_array().is_some_and(|a| a.len() == 2) {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("agent results stored within 60 s");
    let find = |check: &str, port: u16| {
        results
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["check"] == check && r["target"] == format!("127.0.0.1:{port}"))
            .unwrap()
            .clone()
    };
    let silent = find("rdp.path", open_port);
    assert_eq!((silent["status"].as_str(), silent["cause"].as_str()), (Some("fail"), Some("rdp.no_reply")));
    assert_eq!(silent["evidence"]["first_failing_layer"], "negotiation");
    let closed = find("rdp.path", closed_port);
    assert_eq!((closed["status"].as_str(), closed["cause"].as_str()), (Some("fail"), Some("net.port_closed")));

    let (status, m) = get_json(&format!("{}/api/v1/machines/{machine_id}", server.url), &api).await;
    assert_eq!(status, 200);
    assert_eq!(
        (m["hostname"].as_str(), m["site"].as_str(), m["role"].as_str()),
        (Some("e2e-client"), Some("lab"), Some("client"))
    );

    // Wait for a second report cycle: unchanged statuses add no history.
    let (_, hist1) = get_json(&format!("{}/api/v1/machines/{machine_id}/history", server.url), &api).await;
    assert_eq!(hist1.as_array().unwrap().len(), 2);
    tokio::time::sleep(Duration::from_secs(7)).await;
    let (_, hist2) = get_json(&format!("{}/api/v1/machines/{machine_id}/history", server.url), &api).await;
    assert_eq!(hist2.as_array().unwrap().len(), 2, "repeats of the same status are not history");

    // The silent target goes away: same status, new cause — a transition appears.
    drop(listener);
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let (_, h) = get_json(&format!("{}/api/v1/machines/{machine_id}/history", server.url), &api).await;
            // A diagnosis running while the listener closes may first see a reset (its own
            // transition); the silent target's path settles on the closed port.
            let silent = format!("127.0.0.1:{open_port}");
            let rows: Vec<&Value> = h.as_array().unwrap().iter().filter(|r| r["target"] == silent.as_str()).collect();
            if rows.first().is_some_and(|r| r["cause"] == "net.port_closed") {
                assert!((2..=3).contains(&rows.len()), "{h}");
                assert_eq!((rows[0]["from"].as_str(), rows[0]["to"].as_str()), (Some("fail"), Some("fail")));
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await
    .expect("transition recorded");

    // A replayed report is stored once.
    let agent_token = cred["agent_token"].as_str().unwrap().to_owned();
    let reports = format!("{}/api/agent/v1/machines/{machine_id}/reports", server.url);
    let report = json!({"seq": 1_000_000, "results": [{"check": "net.extra", "status": "warn", "summary": "x", "observed_at": "2026-11-23T10:00:00Z", "duration_ms": 1}]});
    let (s1, r1) = post_json(&reports, &agent_token, &report).await;
    let (s2, r2) = post_json(&reports, &agent_token, &report).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!((r1["duplicate"].as_bool(), r1["stored"].as_u64()), (Some(false), Some(1)));
    assert_eq!((r2["duplicate"].as_bool(), r2["stored"].as_u64()), (Some(true), Some(0)));
    let (_, hist) = get_json(&format!("{}/api/v1/machines/{machine_id}/history", server.url), &api).await;
    assert_eq!(hist.as_array().unwrap().iter().filter(|h| h["check"] == "net.extra").count(), 1);

    // Revoked (by the CLI, another process): within the server's revocation watch period
    // (2 s) the agent's token gets 401 everywhere.
    run.kill().await.unwrap();
    server.admin(&["agent", "revoke", &machine_id]).await;
    let revoked_at = std::time::Instant::now();
    let bump = json!({"seq": 2_000_000, "results": []});
    let (status, body) = loop {
        let (status, body) = post_json(&reports, &agent_token, &bump).await;
        if status != 200 || revoked_at.elapsed() > Duration::from_secs(10) {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")));
    assert!(revoked_at.elapsed() < Duration::from_secs(5), "revocation took {:?}", revoked_at.elapsed());
    let (status, _) =
        get_json(&format!("{}/api/agent/v1/machines/{machine_id}/jobs?wait=0", server.url), &agent_token).await;
    assert_eq!(status, 401);
    let listed = server.admin(&["agent", "list", "--json"]).await;
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["revoked"], true);
    drop(server);
}

#[tokio::test]
async fn agent_enrolls_reports_and_is_revoked_sqlite() {
    the_story(TestDb::sqlite()).await;
}

#[tokio::test]
async fn agent_enrolls_reports_and_is_revoked_postgres() {
    if let Some(db) = TestDb::postgres().await {
        the_story(db).await;
    }
}
