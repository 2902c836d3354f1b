//! Restart safety with real processes: the server is SIGKILLed in the middle of a rollout and
//! started again; an agent is killed, and its job is delivered (with its credential) and never
//! answered, as to an agent that dies right after receiving it. The rollout finishes, every
//! machine's fix is applied exactly once, no job is lost.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use rdpfleet_e2e::TestDb;
use rdpfleet_e2e::certs::TestCa;
use rdpfleet_e2e::http::{call, until};
use rdpfleet_e2e::procs::{AgentDir, Server, signal};
use serde_json::{Value, json};

/// An xrdp host as its agent sees it: the configuration and an expired certificate (no running
/// xrdp is needed to check and renew the files).
fn host_files(dir: &Path, ca: &TestCa, name: &str) -> String {
    let cert = ca.issue(dir, &format!("cert-{name}"), &[name], -400, -10);
    let ini = dir.join(format!("xrdp-{name}.ini"));
    std::fs::write(
        &ini,
        format!(
            "[Globals]\nport=3389\nsecurity_layer=tls\ncertificate={}\nkey_file={}\n",
            cert.cert.display(),
            cert.key.display()
        ),
    )
    .unwrap();
    format!(
        "role = \"host\"\ninterval_secs = 3600\n[xrdp]\nini = \"{}\"\nnames = [\"{name}\"]\nservice = \"rdpfleet-test-no-such-unit\"\n",
        ini.display()
    )
}

#[tokio::test]
async fn a_rollout_survives_server_and_agent_kills_with_no_job_applied_twice() {
    let db = TestDb::sqlite();
    let work = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let env = [("RDPFLEET_JOB_LEASE_SECS", "10"), ("RDPFLEET_LONG_POLL_MAX_SECS", "2")];
    let mut server = Server::start_on(db.url(), work.path(), &env, &listen).await;
    let url = server.url.clone();
    let token = server.admin(&["enroll-token", "create", "--label", "r", "--max-uses", "10"]).await;
    let admin = server.admin(&["user", "token", "--username", "admin"]).await;

    let ca = TestCa::new();
    let mut agents = Vec::new();
    for i in 0..4 {
        let name = format!("h{i}.corp.example");
        let agent = AgentDir::new(&host_files(work.path(), &ca, &name));
        let out = agent
            .command()
            .args(["enroll", "--server", &url, "--token", &token, "--hostname", &name])
            .output()
            .await
            .unwrap();
        assert!(out.status.success());
        let id = agent.credential()["machine_id"].as_str().unwrap().to_owned();
        let child = agent.command().arg("run").stderr(std::process::Stdio::null()).spawn().unwrap();
        agents.push((agent, child, id));
    }
    let ids: Vec<&str> = agents.iter().map(|a| a.2.as_str()).collect();
    // Waves of one machine: four steps to interrupt.
    let (s, v) = call(
        "POST",
        &format!("{url}/api/v1/rollouts"),
        &admin,
        Some(json!({"fix": "host.cert.regenerate", "machines": ids, "canary": 1, "growth": 1})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let rollout = v["rollout"]["id"].as_str().unwrap().to_owned();
    let detail = format!("{url}/api/v1/rollouts/{rollout}");
    let wave_machine = |v: &Value, wave: i64| -> String {
        v["targets"].as_array().unwrap().iter().find(|t| t["wave"] == wave).unwrap()["machine_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let third = wave_machine(&v, 3);

    // The third wave's agent dies (SIGKILL) before its job comes.
    let victim = agents.iter().position(|a| a.2 == third).unwrap();
    call("POST", &format!("{detail}/start"), &admin, None).await;
    until(60, "the first wave to finish", || async {
        let (_, v) = call("GET", &detail, &admin, None).await;
        let t = v["targets"].as_array()?;
        (t.iter().filter(|t| t["state"] == "succeeded").count() >= 1).then_some(())
    })
    .await;
    signal(&agents[victim].1, "-KILL");
    let _ = agents[victim].1.wait().await;

    // Kill the server mid-rollout and start it again on the same address and database.
    signal(&server.child, "-KILL");
    let _ = server.child.wait().await;
    server = Server::start_on(db.url(), work.path(), &env, &listen).await;
    assert_eq!(server.url, url);

    // Wave 3's job is delivered with that agent's credential — as to an agent that dies right
    // after receiving it — and never answered.
    let pool = sqlx::SqlitePool::connect(db.url()).await.unwrap();
    let cred = agents[victim].0.credential();
    let agent_token = cred["agent_token"].as_str().unwrap().to_owned();
    let delivered = until(60, "wave 3's job to be delivered", || async {
        let (_, v) = call("GET", &format!("{url}/api/agent/v1/machines/{third}/jobs?wait=1"), &agent_token, None).await;
        v["jobs"].as_array().and_then(|j| j.first().cloned())
    })
    .await;
    let job_id = delivered["id"].as_str().unwrap().to_owned();
    // The agent comes back: after the lease runs out the job is delivered again, and applied once.
    agents[victim].1 = agents[victim].0.command().arg("run").stderr(std::process::Stdio::null()).spawn().unwrap();

    let done = until(120, "the rollout to complete after the kills", || async {
        let (_, v) = call("GET", &detail, &admin, None).await;
        (v["rollout"]["state"] == "completed").then_some(v)
    })
    .await;
    assert!(done["targets"].as_array().unwrap().iter().all(|t| t["state"] == "succeeded"), "{done}");

    // Exactly one job per machine, each answered once; each agent applied its fix once.
    let jobs: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT machine_id, state, attempts FROM jobs WHERE rollout_id = $1")
            .bind(&rollout)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(jobs.len(), 4, "{jobs:?}");
    let mut machines: Vec<&str> = jobs.iter().map(|j| j.0.as_str()).collect();
    machines.sort();
    machines.dedup();
    assert_eq!(machines.len(), 4, "no machine got two jobs");
    assert!(jobs.iter().all(|j| j.1 == "succeeded"), "{jobs:?}");
    let attempts: i64 =
        sqlx::query_scalar("SELECT attempts FROM jobs WHERE id = $1").bind(&job_id).fetch_one(&pool).await.unwrap();
    assert_eq!(attempts, 2, "the unanswered job was delivered again");
    let finished: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'job.finished'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(finished, 4, "each job answered once");
    for (agent, _, id) in &agents {
        let journal: Value =
            serde_json::from_str(&std::fs::read_to_string(agent.dir.path().join("state/jobs.json")).unwrap()).unwrap();
        let entries = journal.as_object().unwrap();
        assert_eq!(entries.len(), 1, "{id}: {journal}");
        let (_, e) = entries.iter().next().unwrap();
        assert_eq!(e["state"], "done");
        assert_eq!(e["answer"]["outcome"], "succeeded");
    }
    let out = server.admin(&["audit", "verify"]).await;
    assert!(out.starts_with("audit chain intact"), "{out}");
    for (_, mut child, _) in agents {
        let _ = child.kill().await;
    }
}
