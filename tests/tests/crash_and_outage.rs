//! Faults with real processes: the server SIGKILLed during heavy ingest, the agent SIGKILLed
//! while it reports, and the server away for a (simulated) day. Nothing acknowledged is lost,
//! nothing is stored twice, and what the agent queued arrives, in order.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdpfleet_e2e::TestDb;
use rdpfleet_e2e::http::{call, until};
use rdpfleet_e2e::procs::{AgentDir, Server, signal};
use rdpfleet_e2e::sim::{self, Stats};
use serde_json::{Value, json};

fn kill9(child: &tokio::process::Child) {
    signal(child, "-KILL");
}

async fn machine(server: &Server, api: &str, id: &str) -> Value {
    let (status, body) = call("GET", &format!("{}/api/v1/machines/{id}", server.url), api, None).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn history(server: &Server, api: &str, id: &str) -> Vec<Value> {
    let (status, body) =
        call("GET", &format!("{}/api/v1/machines/{id}/history?limit=1000", server.url), api, None).await;
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}

/// A report whose one result flips between pass and fail with each number, so every stored
/// report leaves exactly one history row naming its number.
fn numbered_report(seq: u64) -> Value {
    json!({"seq": seq, "results": [{
        "check": "crash.marker", "status": if seq % 2 == 0 { "pass" } else { "fail" },
        "summary": format!("report {seq}"), "cause": if seq % 2 == 0 { Value::Null } else { json!("cert.expired") },
        "evidence": {}, "observed_at": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap(),
        "duration_ms": 1
    }]})
}

async fn server_killed_during_ingest(db: TestDb) {
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(db.url(), work.path()).await;
    let token = server.admin(&["enroll-token", "create", "--label", "crash", "--max-uses", "40"]).await;
    let api = server.admin(&["user", "token", "--username", "admin"]).await;
    let client = sim::client(64);
    let agents = sim::enroll(&client, &server.url, &token, "crash", 40, 16, &Arc::new(Stats::default())).await;
    assert_eq!(agents.len(), 40);

    // Each agent sends numbered reports one after another, as a real agent does; what the server
    // acknowledged is written down.
    let acked: Arc<Mutex<HashMap<String, BTreeSet<u64>>>> = Arc::default();
    let mut senders = Vec::new();
    for agent in agents.iter().cloned() {
        let (client, url, acked) = (client.clone(), server.url.clone(), acked.clone());
        senders.push(tokio::spawn(async move {
            for seq in 1.. {
                let sent = client
                    .post(format!("{url}/api/agent/v1/machines/{}/reports", agent.id))
                    .bearer_auth(&agent.token)
                    .json(&numbered_report(seq))
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 200 => {
                        let body: Value = r.json().await.unwrap();
                        assert_eq!(body["duplicate"], false);
                        acked.lock().unwrap().entry(agent.id.clone()).or_default().insert(seq);
                    }
                    _ => return seq,
                }
            }
            unreachable!()
        }));
    }
    // Let the load build up, then kill the server in the middle of it.
    until(30, "a few hundred acknowledged reports", || async {
        (acked.lock().unwrap().values().map(BTreeSet::len).sum::<usize>() > 400).then_some(())
    })
    .await;
    kill9(&server.child);
    let mut unanswered = HashMap::new();
    for (agent, s) in agents.iter().zip(senders) {
        unanswered.insert(agent.id.clone(), s.await.unwrap());
    }
    let acked = acked.lock().unwrap().clone();
    let total: usize = acked.values().map(BTreeSet::len).sum();

    let mut server = server;
    let _ = server.child.wait().await;
    let server = Server::start(db.url(), work.path()).await;
    let mut in_doubt = 0;
    for agent in &agents {
        let m = machine(&server, &api, &agent.id).await;
        let stored_to = m["reports_received"].as_u64().unwrap();
        let mine = acked.get(&agent.id).cloned().unwrap_or_default();
        // Sent in order, one at a time: the stored reports are exactly 1..=n, where n is the
        // last acknowledged one or the one whose answer the kill cut off.
        let last_acked = mine.last().copied().unwrap_or(0);
        assert!(
            stored_to == last_acked || stored_to == last_acked + 1 && unanswered[&agent.id] == last_acked + 1,
            "machine {}: {stored_to} stored, last acknowledged {last_acked}",
            agent.id
        );
        in_doubt += stored_to - last_acked;
        assert_eq!(m["reports_dropped"], 0);
        let rows = history(&server, &api, &agent.id).await;
        let mut numbers: Vec<u64> = rows
            .iter()
            .filter(|r| r["check"] == "crash.marker")
            .map(|r| r["summary"].as_str().unwrap().trim_start_matches("report ").parse().unwrap())
            .collect();
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=stored_to).collect::<Vec<_>>(), "each stored report once, none missing");
    }
    eprintln!(
        "{total} acknowledged reports of 40 agents all stored once; {in_doubt} stored whose answer the kill cut off"
    );
}

#[tokio::test]
async fn server_sigkill_during_ingest_sqlite() {
    server_killed_during_ingest(TestDb::sqlite()).await;
}

#[tokio::test]
async fn server_sigkill_during_ingest_postgres() {
    if let Some(db) = TestDb::postgres().await {
        server_killed_during_ingest(db).await;
    }
}

fn agent_config() -> String {
    // Nothing to probe: a fast check cycle. The real 5-minute schedule, played 3000 times faster
    // (RDPFLEET_AGENT_TIME_SCALE): a report every 0.1 s, a day in about half a minute.
    "role = \"client\"\ninterval_secs = 300\njitter_pct = 0\ncheck_timeout_secs = 5\n[xrdp]\nini = \"/nonexistent/xrdp.ini\"\n"
        .to_owned()
}

fn spawn_agent(agent: &AgentDir) -> tokio::process::Child {
    agent
        .command()
        .arg("run")
        .env("RDPFLEET_AGENT_TIME_SCALE", "3000")
        .env("RDPFLEET_LOG", "warn")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn outbox_len(agent: &AgentDir) -> usize {
    std::fs::read_dir(agent.dir.path().join("state/outbox"))
        .map(|d| d.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().ends_with(".json")).count())
        .unwrap_or(0)
}

/// The next number the agent would use, from its state file.
fn agent_next_seq(agent: &AgentDir) -> u64 {
    std::fs::read_to_string(agent.dir.path().join("state/sequence")).unwrap().trim().parse().unwrap()
}

async fn enrolled_agent(server: &Server) -> (AgentDir, String) {
    let token = server.admin(&["enroll-token", "create", "--label", "fault"]).await;
    let agent = AgentDir::new(&agent_config());
    let out = agent.command().args(["enroll", "--server", &server.url, "--token", &token]).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = agent.credential()["machine_id"].as_str().unwrap().to_owned();
    (agent, id)
}

/// With the agent stopped: every number it used is either stored, once, or still waiting in its
/// outbox (the newest ones), and nothing was dropped. The server refuses a report older than
/// one it stored, so a report sent out of order would be missing from the count.
async fn assert_complete(server: &Server, api: &str, agent: &AgentDir, id: &str) -> u64 {
    let last = agent_next_seq(agent) - 1;
    let m = machine(server, api, id).await;
    let received = m["reports_received"].as_u64().unwrap();
    let waiting = outbox_len(agent) as u64;
    assert_eq!(received + waiting, last, "{received} stored + {waiting} waiting ≠ {last} numbered");
    let mut files: Vec<u64> = std::fs::read_dir(agent.dir.path().join("state/outbox"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".json")?.parse().ok())
        .collect();
    files.sort_unstable();
    assert_eq!(files, (received + 1..=last).collect::<Vec<_>>(), "the outbox holds the newest reports");
    assert_eq!(m["reports_dropped"], 0);
    last
}

fn stop(child: &tokio::process::Child) {
    signal(child, "-TERM");
}

#[tokio::test]
async fn agent_sigkill_while_reporting_loses_and_repeats_nothing() {
    let db = TestDb::sqlite();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(db.url(), work.path()).await;
    let api = server.admin(&["user", "token", "--username", "admin"]).await;
    let (agent, id) = enrolled_agent(&server).await;
    // Killed at different points of its cycle, again and again.
    for round in 0..8u64 {
        let before =
            std::fs::read_to_string(agent.dir.path().join("state/sequence")).map_or(1, |t| t.trim().parse().unwrap());
        let run = spawn_agent(&agent);
        // Once it has numbered new reports (however slow the machine is), then at a point that
        // moves from round to round.
        until(60, "the agent to number a report", || async {
            (std::fs::read_to_string(agent.dir.path().join("state/sequence"))
                .is_ok_and(|t| t.trim().parse::<u64>().unwrap() > before + 1))
            .then_some(())
        })
        .await;
        tokio::time::sleep(Duration::from_millis(37 * round)).await;
        kill9(&run);
        let mut run = run;
        let _ = run.wait().await;
    }
    let mut run = spawn_agent(&agent);
    until(30, "the restarted agent to empty its outbox", || async { (outbox_len(&agent) == 0).then_some(()) }).await;
    stop(&run);
    let _ = run.wait().await;
    let n = assert_complete(&server, &api, &agent, &id).await;
    assert!(n >= 16, "only {n} reports in the run");
    eprintln!("{n} reports over 8 SIGKILLs and restarts: every one stored once or waiting in the outbox");
}

#[tokio::test]
async fn a_day_of_reports_arrives_after_an_outage() {
    let db = TestDb::sqlite();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start(db.url(), work.path()).await;
    let listen = server.url.trim_start_matches("http://").to_owned();
    let api = server.admin(&["user", "token", "--username", "admin"]).await;
    let (agent, id) = enrolled_agent(&server).await;
    let mut run = spawn_agent(&agent);
    until(30, "a first report", || async {
        (machine(&server, &api, &id).await["reports_received"] != 0).then_some(())
    })
    .await;

    // The server is away for a simulated day: 288 five-minute cycles.
    let mut server = server;
    kill9(&server.child);
    let _ = server.child.wait().await;
    until(300, "a day of reports in the outbox", || async { (outbox_len(&agent) >= 288).then_some(()) }).await;
    let queued = outbox_len(&agent);
    let server = Server::start_on(db.url(), work.path(), &[], &listen).await;
    until(60, "the outbox to drain", || async { (outbox_len(&agent) < 3).then_some(()) }).await;
    stop(&run);
    let _ = run.wait().await;
    let n = assert_complete(&server, &api, &agent, &id).await;
    assert!(n > 288);
    eprintln!("{queued} reports queued during the outage; all {n} stored once, in order");
}
