//! The whole story with real processes: two Linux xrdp hosts whose certificates have expired,
//! each with its own agent, and two client agents probing them. Incidents open; a certificate
//! renewal rolls out from a canary; the hosts' agents verify the signed jobs, renew and verify; the
//! clients' next probes no longer fail; the incidents resolve; the audit log holds the story and
//! verifies. Then a rollout whose canary cannot work halts before wave 2 and is rolled back.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use rdpfleet_e2e::TestDb;
use rdpfleet_e2e::certs::TestCa;
use rdpfleet_e2e::http::{call, until};
use rdpfleet_e2e::procs::{AgentDir, Server};
use rdpfleet_e2e::rdp_servers::{XrdpCert, available, xrdp_at};
use serde_json::{Value, json};

async fn enroll_and_run(
    server: &Server,
    token: &str,
    hostname: &str,
    config: &str,
) -> (AgentDir, tokio::process::Child, String) {
    let agent = AgentDir::new(config);
    let out = agent
        .command()
        .args(["enroll", "--server", &server.url, "--token", token, "--hostname", hostname])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "enroll {hostname}: {}", String::from_utf8_lossy(&out.stderr));
    let id = agent.credential()["machine_id"].as_str().unwrap().to_owned();
    let log = std::fs::File::create(agent.dir.path().join("agent.log")).unwrap();
    let child = agent.command().arg("run").stderr(log).spawn().unwrap();
    (agent, child, id)
}

fn host_config(ini: &Path, name: &str) -> String {
    format!(
        "role = \"host\"\ninterval_secs = 5\njitter_pct = 0\ncheck_timeout_secs = 10\n\
         [xrdp]\nini = \"{}\"\nnames = [\"{name}\"]\nservice = \"rdpfleet-test-no-such-unit\"\n",
        ini.display()
    )
}

type Hooks = std::sync::Arc<std::sync::Mutex<Vec<(Vec<u8>, String)>>>;

/// A webhook receiver: every POST body with its signature header.
async fn webhook_receiver() -> (String, Hooks) {
    let hooks: Hooks = Default::default();
    let store = hooks.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let store = store.clone();
            async move {
                let sig = headers.get("x-rdpfleet-signature").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                store.lock().unwrap().push((body.to_vec(), sig));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, hooks)
}

async fn open_incidents(server: &Server, token: &str) -> Vec<Value> {
    let (_, v) = call("GET", &format!("{}/api/v1/incidents", server.url), token, None).await;
    v.as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn expired_host_certificates_are_renewed_by_a_staged_rollout() {
    if !available("xrdp") {
        return;
    }
    let db = TestDb::sqlite();
    let work = tempfile::tempdir().unwrap();
    let (hook_url, hooks) = webhook_receiver().await;
    let urls = format!("[\"{hook_url}\"]");
    let env = [
        ("RDPFLEET_CORRELATION_INTERVAL_SECS", "1"),
        ("RDPFLEET_WEBHOOK_URLS", urls.as_str()),
        ("RDPFLEET_WEBHOOK_SECRET", "hook-secret"),
    ];
    let server = Server::start_with(db.url(), work.path(), &env).await;
    let token = server.admin(&["enroll-token", "create", "--label", "e2e", "--max-uses", "10"]).await;
    let admin = server.admin(&["user", "token", "--username", "admin"]).await;

    // Two xrdp hosts on their own loopback addresses, certificates expired ten days ago.
    let ca = TestCa::new();
    let bundle = ca.write_bundle(work.path());
    let mut hosts = Vec::new();
    for ip in ["127.0.0.2", "127.0.0.3"] {
        let cert = ca.issue(work.path(), &format!("expired-{ip}"), &[ip], -400, -10);
        let rdp = xrdp_at(work.path(), ip, "tls", XrdpCert::Files(&cert));
        let ini = rdp.config.clone().unwrap();
        let (dir, child, id) = enroll_and_run(&server, &token, ip, &host_config(&ini, ip)).await;
        hosts.push((ip, rdp, dir, child, id));
    }
    let targets: String =
        hosts.iter().map(|(ip, rdp, ..)| format!("[[targets]]\nhost = \"{ip}\"\nport = {}\n", rdp.port)).collect();
    let client_config = format!(
        "role = \"client\"\ninterval_secs = 5\njitter_pct = 0\ncheck_timeout_secs = 10\n\
         [probe]\nio_timeout_ms = 2000\ntcp_attempts = 1\nplatform_roots = false\nca_bundle = \"{}\"\n\
         [xrdp]\nini = \"/nonexistent/xrdp.ini\"\n{targets}",
        bundle.display()
    );
    let mut clients = Vec::new();
    for name in ["pc-1", "pc-2"] {
        clients.push(enroll_and_run(&server, &token, name, &client_config).await);
    }

    // One incident per host: root cause from the host's own agent, both clients affected.
    let incidents = until(90, "two host incidents", || async {
        let open = open_incidents(&server, &admin).await;
        let hosts: Vec<&Value> = open.iter().filter(|i| i["kind"] == "host").collect();
        (hosts.len() == 2 && hosts.iter().all(|i| i["affected_count"] == 3)).then(|| open.clone())
    })
    .await;
    for i in &incidents {
        assert_eq!(i["root_cause"], "cert.expired", "{i}");
        assert_eq!(i["fix_id"], "host.cert.regenerate", "{i}");
    }

    // A dry run first: the agents say what they would change, and change nothing.
    let host_ids: Vec<&str> = hosts.iter().map(|h| h.4.as_str()).collect();
    let cert_of = |ini: &Path| -> Vec<u8> {
        let text = std::fs::read_to_string(ini).unwrap();
        let path = text.lines().find_map(|l| l.strip_prefix("certificate=")).unwrap().trim().to_owned();
        std::fs::read(path).unwrap()
    };
    let certs_before: Vec<Vec<u8>> = hosts.iter().map(|h| cert_of(h.1.config.as_ref().unwrap())).collect();
    let (s, v) = call(
        "POST",
        &format!("{}/api/v1/rollouts", server.url),
        &admin,
        Some(json!({"fix": "host.cert.regenerate", "machines": host_ids, "dry_run": true})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let dry = v["rollout"]["id"].as_str().unwrap().to_owned();
    call("POST", &format!("{}/api/v1/rollouts/{dry}/start", server.url), &admin, None).await;
    let done = until(60, "the dry run", || async {
        let (_, v) = call("GET", &format!("{}/api/v1/rollouts/{dry}", server.url), &admin, None).await;
        (v["rollout"]["state"] == "completed").then_some(v)
    })
    .await;
    assert_eq!(done["rollout"]["dry_run"], json!(true), "{done}");
    for t in done["targets"].as_array().unwrap() {
        // The agent's report is a JSON object in the API (it was escaped text before 0.9).
        let evidence = &t["evidence"];
        assert_eq!(evidence["report"]["outcome"], "would_change", "{evidence}");
        assert_eq!(evidence["report"]["backup"]["saved"].as_array().unwrap().len(), 2, "certificate and key");
    }
    let certs_after: Vec<Vec<u8>> = hosts.iter().map(|h| cert_of(h.1.config.as_ref().unwrap())).collect();
    assert_eq!(certs_before, certs_after, "a dry run changes no certificate");
    assert_eq!(open_incidents(&server, &admin).await.iter().filter(|i| i["kind"] == "host").count(), 2, "still open");

    // A rollout from the machines at fault, canary first.
    let (s, v) = call(
        "POST",
        &format!("{}/api/v1/rollouts", server.url),
        &admin,
        Some(json!({"fix": "host.cert.regenerate", "machines": host_ids, "canary": 1, "growth": 2})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let rollout = v["rollout"]["id"].as_str().unwrap().to_owned();
    let (s, _) = call("POST", &format!("{}/api/v1/rollouts/{rollout}/start", server.url), &admin, None).await;
    assert_eq!(s, 200);
    let done = until(120, "the rollout to complete", || async {
        let (_, v) = call("GET", &format!("{}/api/v1/rollouts/{rollout}", server.url), &admin, None).await;
        (v["rollout"]["state"] == "completed").then_some(v)
    })
    .await;
    let targets = done["targets"].as_array().unwrap();
    assert!(targets.iter().all(|t| t["state"] == "succeeded" && t["fix_id"] == "xrdp.cert.renew"), "{done}");
    assert_eq!(targets.iter().map(|t| t["wave"].as_i64().unwrap()).collect::<Vec<_>>(), vec![1, 2]);

    // The clients' next probes no longer fail, and the incidents resolve by themselves.
    until(90, "the incidents to resolve", || async { open_incidents(&server, &admin).await.is_empty().then_some(()) })
        .await;
    let (_, all) = call("GET", &format!("{}/api/v1/incidents?state=all", server.url), &admin, None).await;
    assert!(all.as_array().unwrap().iter().filter(|i| i["kind"] == "host").all(|i| i["state"] == "resolved"));

    // The audit log holds the story, and verifies.
    let out = server.admin(&["audit", "verify"]).await;
    assert!(out.starts_with("audit chain intact"), "{out}");
    let pool = sqlx::SqlitePool::connect(db.url()).await.unwrap();
    let actions: Vec<(String,)> = sqlx::query_as("SELECT action FROM audit_log").fetch_all(&pool).await.unwrap();
    let actions: Vec<String> = actions.into_iter().map(|a| a.0).collect();
    for a in [
        "rollout.proposed",
        "rollout.started",
        "job.queued",
        "job.finished",
        "rollout.wave_started",
        "rollout.completed",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} in the audit log");
    }

    // A host whose fix cannot work (its certificate directory is gone) as the canary: the rollout
    // halts before wave 2.
    let broken_ini = hosts[0].1.config.clone().unwrap();
    let text = std::fs::read_to_string(&broken_ini).unwrap();
    let gone = work.path().join("gone");
    let edited: String = text
        .lines()
        .map(|l| {
            if l.starts_with("certificate=") {
                format!("certificate={}/c.pem", gone.display())
            } else if l.starts_with("key_file=") {
                format!("key_file={}/k.pem", gone.display())
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&broken_ini, edited).unwrap();
    let (s, v) = call(
        "POST",
        &format!("{}/api/v1/rollouts", server.url),
        &admin,
        Some(json!({"fix": "host.cert.regenerate", "machines": host_ids, "canary": 1, "max_failures": 0})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let rollout = v["rollout"]["id"].as_str().unwrap().to_owned();
    call("POST", &format!("{}/api/v1/rollouts/{rollout}/start", server.url), &admin, None).await;
    let halted = until(90, "the rollout to halt", || async {
        let (_, v) = call("GET", &format!("{}/api/v1/rollouts/{rollout}", server.url), &admin, None).await;
        (v["rollout"]["state"] == "halted").then_some(v)
    })
    .await;
    let t = halted["targets"].as_array().unwrap();
    assert_eq!(t[0]["state"], "failed", "{halted}");
    assert_eq!(t[1]["state"], "pending", "wave 2 never started: {halted}");
    let out = server.admin(&["audit", "verify"]).await;
    assert!(out.starts_with("audit chain intact"), "{out}");

    // The webhooks: incidents opened and resolved, the rollout completed, the second halted;
    // every body signed with the shared secret.
    let received = until(30, "the webhooks", || async {
        let got = hooks.lock().unwrap().clone();
        let events: Vec<String> = got
            .iter()
            .map(|(b, _)| serde_json::from_slice::<Value>(b).unwrap()["event"].as_str().unwrap().to_owned())
            .collect();
        ["incident.opened", "incident.resolved", "rollout.completed", "rollout.halted"]
            .iter()
            .all(|e| events.iter().any(|x| x == e))
            .then_some(got)
    })
    .await;
    for (body, signature) in &received {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"hook-secret").unwrap();
        mac.update(body);
        assert_eq!(signature, &format!("sha256={}", hex::encode(mac.finalize().into_bytes())));
    }

    for (_, _, _, mut child, _) in hosts {
        let _ = child.kill().await;
    }
    for (_, mut child, _) in clients {
        let _ = child.kill().await;
    }
}
