//! Two `rdpfleet-server` replicas on one PostgreSQL database, sharing the job-signing key: a
//! report accepted by either is visible through the other, and a rollout's jobs — long-polled for
//! each machine on both replicas at once — are each delivered exactly once.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdpfleet_e2e::TestDb;
use rdpfleet_e2e::http::call;
use rdpfleet_e2e::procs::Server;
use serde_json::json;

#[tokio::test]
async fn two_replicas_share_reports_and_deliver_each_job_once() {
    let Some(db) = TestDb::postgres().await else { return };
    let work = tempfile::tempdir().unwrap();
    let key = work.path().join("signing.key");
    let key_env = key.to_str().unwrap().to_owned();
    let audit_key = work.path().join("audit.key").to_str().unwrap().to_owned();
    let release_key = work.path().join("release.key").to_str().unwrap().to_owned();
    let (dir_a, dir_b) = (work.path().join("a"), work.path().join("b"));
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    let env = [
        ("RDPFLEET_SIGNING_KEY_PATH", key_env.as_str()),
        ("RDPFLEET_AUDIT_KEY_PATH", audit_key.as_str()),
        ("RDPFLEET_RELEASE_KEY_PATH", release_key.as_str()),
        ("RDPFLEET_LONG_POLL_MAX_SECS", "5"),
    ];
    let a = Server::start_with(db.url(), &dir_a, &env).await;
    let b = Server::start_with(db.url(), &dir_b, &env).await;
    let token = a.admin(&["enroll-token", "create", "--label", "replicas", "--max-uses", "20"]).await;
    let user = b.admin(&["user", "token", "--username", "admin"]).await;

    // Six machines, enrolled alternately through either replica.
    let mut machines = Vec::new();
    for i in 0..6 {
        let via = if i % 2 == 0 { &a.url } else { &b.url };
        let (s, v) = call(
            "POST",
            &format!("{via}/api/agent/v1/enroll"),
            "",
            Some(json!({"token": token, "hostname": format!("r{i}"), "role": "host", "os": "linux debian 12", "agent_version": "0.1.0"})),
        )
        .await;
        assert_eq!(s, 201, "{v}");
        machines.push((v["machine_id"].as_str().unwrap().to_owned(), v["agent_token"].as_str().unwrap().to_owned()));
    }

    // A report through A is visible through B.
    let (id0, tok0) = &machines[0];
    let report = json!({"seq": 1, "results": [{"check": "xrdp.certificate", "status": "fail", "summary": "expired",
        "cause": "cert.expired", "evidence": {}, "observed_at": "2026-11-23T10:00:00Z", "duration_ms": 3}]});
    let (s, v) = call("POST", &format!("{}/api/agent/v1/machines/{id0}/reports", a.url), tok0, Some(report)).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = call("GET", &format!("{}/api/v1/machines/{id0}/results", b.url), &user, None).await;
    assert_eq!((s, v[0]["status"].as_str()), (200, Some("fail")), "{v}");

    // Every machine long-polls both replicas at once and answers whatever it gets.
    let deliveries: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut pollers = Vec::new();
    for (id, tok) in &machines {
        for url in [a.url.clone(), b.url.clone()] {
            let (id, tok, deliveries, stop) = (id.clone(), tok.clone(), deliveries.clone(), stop.clone());
            pollers.push(tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let (s, v) =
                        call("GET", &format!("{url}/api/agent/v1/machines/{id}/jobs?wait=5"), &tok, None).await;
                    assert_eq!(s, 200, "{v}");
                    for job in v["jobs"].as_array().cloned().unwrap_or_default() {
                        let job_id = job["id"].as_str().unwrap().to_owned();
                        *deliveries.lock().unwrap().entry(job_id.clone()).or_default() += 1;
                        let answer = json!({"outcome": "succeeded", "message": "renewed", "evidence": {}});
                        let (s, _) = call(
                            "POST",
                            &format!("{url}/api/agent/v1/machines/{id}/jobs/{job_id}/result"),
                            &tok,
                            Some(answer),
                        )
                        .await;
                        assert_eq!(s, 200);
                    }
                }
            }));
        }
    }

    // A rollout proposed through B, over all six machines in waves 1, 2, 3.
    let ids: Vec<&str> = machines.iter().map(|m| m.0.as_str()).collect();
    let (s, v) = call(
        "POST",
        &format!("{}/api/v1/rollouts", b.url),
        &user,
        Some(json!({"fix": "host.cert.regenerate", "machines": ids, "canary": 1, "growth": 2})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let rollout = v["rollout"]["id"].as_str().unwrap().to_owned();
    let (s, _) = call("POST", &format!("{}/api/v1/rollouts/{rollout}/start", a.url), &user, None).await;
    assert_eq!(s, 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let (_, v) = call("GET", &format!("{}/api/v1/rollouts/{rollout}", a.url), &user, None).await;
        if v["rollout"]["state"] == "completed" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "rollout did not complete: {v}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for p in pollers {
        p.await.unwrap();
    }
    let d = deliveries.lock().unwrap().clone();
    assert_eq!(d.len(), 6, "one job per machine: {d:?}");
    assert!(d.values().all(|n| *n == 1), "each job delivered exactly once across both replicas: {d:?}");
    let out = a.admin(&["audit", "verify"]).await;
    assert!(out.starts_with("audit chain intact"), "{out}");
}
