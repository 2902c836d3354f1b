//! Rollouts through the JSON API and the engine, agents simulated by answering their jobs in the
//! store — on SQLite and PostgreSQL: roles, approvals, staged waves, auto-halt with rollback,
//! signed jobs, no target ever given two jobs.
#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use ed25519_dalek::{Signature, SigningKey, Verifier};
use http_body_util::BodyExt;
use rdpfleet_e2e::TestDb;
use rdpfleet_proto::enroll::MachineRole;
use rdpfleet_proto::job::JobOutcome;
use rdpfleet_server::config::Settings;
use rdpfleet_server::domain::users::Role;
use rdpfleet_server::secrets::token_hash;
use rdpfleet_server::store::Store;
use rdpfleet_server::store::audit::{ActorKind, ChainCheck, NewAuditEntry};
use rdpfleet_server::store::enrollment::{NewEnrollmentToken, NewMachine};
use rdpfleet_server::store::now_ms;
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

fn audit() -> NewAuditEntry {
    NewAuditEntry::new(ActorKind::Cli, "test", "setup", "x")
}

struct T {
    router: Router,
    store: Store,
    key: SigningKey,
}

impl T {
    async fn call(&self, method: &str, uri: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req =
            Request::builder().method(method).uri(uri).header(header::AUTHORIZATION, format!("Bearer {token}"));
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let body = body.map_or(Body::empty(), |b| Body::from(b.to_string()));
        let resp = self.router.clone().oneshot(req.body(body).unwrap()).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    async fn tick(&self) {
        rdpfleet_server::services::rollouts::advance(&self.store, &self.key).await.unwrap();
    }

    /// Answers every job the machines have, as their agents would; checks each signature.
    async fn agents_answer(&self, machines: &[Uuid], outcome: impl Fn(Uuid) -> JobOutcome) -> usize {
        let mut n = 0;
        for &m in machines {
            for stored in self.store.lease_jobs(m, 60_000, 100).await.unwrap() {
                let job = stored.job;
                let sig = base64::engine::general_purpose::STANDARD.decode(job.signature.as_deref().unwrap()).unwrap();
                self.key
                    .verifying_key()
                    .verify(&job.signing_payload(), &Signature::from_slice(&sig).unwrap())
                    .expect("signed");
                self.store.finish_job(m, job.id, outcome(m), "done", &json!({})).await.unwrap();
                n += 1;
            }
        }
        n
    }
}

async fn machine(store: &Store, n: usize, os: &str, role: MachineRole) -> Uuid {
    let m =
        NewMachine { hostname: &format!("h{n:02}"), role, os, agent_version: "0.1.0", site: Some("hq"), labels: &[] };
    store.enroll(&token_hash("rfe_r"), m, &token_hash(&format!("rfa_{n}"))).await.unwrap()
}

async fn the_story(db: TestDb) {
    let store = Store::connect(db.url()).await.unwrap();
    let key = SigningKey::from_bytes(&[3u8; 32]);
    let state = rdpfleet_server::app_state(
        // A canary of 2 out of 5 machines (the default cap, 5 %, allows 1).
        Settings { database_url: db.url().into(), max_canary_pct: 40, ..Settings::default() },
        store.clone(),
        key.clone(),
    );
    let t = T { router: rdpfleet_server::router::router(state), store: store.clone(), key };
    for (name, role) in [("vic", Role::Viewer), ("alice", Role::Operator), ("bob", Role::Admin), ("carol", Role::Admin)]
    {
        let u = store.create_user(name, "x", role, audit()).await.unwrap();
        store.create_api_token(&u, "t", &token_hash(&format!("rfu_{name}")), audit()).await.unwrap();
    }
    store
        .create_enrollment_token(
            NewEnrollmentToken {
                label: "r",
                token_hash: &token_hash("rfe_r"),
                expires_at: now_ms() + 60_000,
                max_uses: 100,
            },
            audit(),
        )
        .await
        .unwrap();
    let mut linux = Vec::new();
    for i in 0..5 {
        linux.push(machine(&store, i, "linux debian 12", MachineRole::Host).await);
    }
    // A Windows machine that is both an RDP host and a client: host and client fixes fit it.
    let windows = machine(&store, 9, "windows 10.0.22631", MachineRole::Both).await;
    let ids: Vec<String> = linux.iter().map(Uuid::to_string).collect();

    // Who may propose.
    let proposal = json!({"fix": "host.cert.regenerate", "machines": ids, "canary": 1, "growth": 2});
    assert_eq!(t.call("POST", "/api/v1/rollouts", "rfu_vic", Some(proposal.clone())).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        t.call("POST", "/api/v1/rollouts", "rfa_1", Some(proposal.clone())).await.0,
        StatusCode::UNAUTHORIZED,
        "an agent token"
    );
    for bad in [
        json!({"fix": "rm -rf /", "machines": ids}),
        json!({"fix": "host.nla.enable", "machines": ids}),
        json!({"fix": "host.security_layer.set", "params": {"level": "rdp"}, "machines": ids}),
        json!({"fix": "host.cert.regenerate", "machines": []}),
        json!({"fix": "host.cert.regenerate", "machines": ids, "canary": 0}),
        json!({"fix": "host.cert.regenerate", "machines": ids, "canary": 3}),
        json!({"fix": "host.cert.regenerate", "machines": ids, "script": "x"}),
    ] {
        let (s, v) = t.call("POST", "/api/v1/rollouts", "rfu_alice", Some(bad.clone())).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {v}");
    }

    // A certificate renewal over five xrdp hosts, in waves 1, 2, 2.
    let (s, v) = t.call("POST", "/api/v1/rollouts", "rfu_alice", Some(proposal)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["rollout"]["id"].as_str().unwrap().to_owned();
    assert_eq!(v["rollout"]["state"], "ready");
    let waves: Vec<i64> = v["targets"].as_array().unwrap().iter().map(|t| t["wave"].as_i64().unwrap()).collect();
    assert_eq!(waves, vec![1, 2, 2, 3, 3]);
    assert!(v["targets"].as_array().unwrap().iter().all(|t| t["fix_id"] == "xrdp.cert.renew"), "the xrdp equivalent");
    assert_eq!(t.call("POST", &format!("/api/v1/rollouts/{id}/start"), "rfu_vic", None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(t.call("POST", &format!("/api/v1/rollouts/{id}/start"), "rfu_alice", None).await.0, StatusCode::OK);
    assert_eq!(
        t.call("POST", &format!("/api/v1/rollouts/{id}/start"), "rfu_alice", None).await.0,
        StatusCode::CONFLICT
    );
    let mut delivered = 0;
    for expected in [1, 2, 2] {
        t.tick().await;
        t.tick().await; // a second tick (another replica, a restart) creates nothing twice
        let n = t.agents_answer(&linux, |_| JobOutcome::Succeeded).await;
        assert_eq!(n, expected);
        delivered += n;
        t.tick().await;
    }
    let (_, v) = t.call("GET", &format!("/api/v1/rollouts/{id}"), "rfu_vic", None).await;
    assert_eq!(v["rollout"]["state"], "completed", "{v}");
    assert_eq!(delivered, 5, "one job per machine");
    // Typed fields: a boolean and the parameters as an object, not 0 and escaped JSON text.
    let (_, list) = t.call("GET", "/api/v1/rollouts", "rfu_vic", None).await;
    let listed = list.as_array().unwrap().iter().find(|r| r["id"] == id.as_str()).unwrap();
    assert_eq!(listed["dry_run"], json!(false), "{listed}");
    assert!(!listed["params"].is_string(), "{listed}");
    assert_eq!(listed["params"], v["rollout"]["params"]);
    assert!(v["targets"].as_array().unwrap().iter().all(|t| t["evidence"].is_object()), "{v}");
    // Rolling back one machine of a finished rollout, by hand.
    let (s, v) =
        t.call("POST", &format!("/api/v1/rollouts/{id}/rollback"), "rfu_vic", Some(json!({"machine": linux[2]}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = t
        .call("POST", &format!("/api/v1/rollouts/{id}/rollback"), "rfu_alice", Some(json!({"machine": linux[2]})))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["targets"].as_array().unwrap().iter().filter(|t| t["state"] == "rolling_back").count(), 1);
    assert_eq!(t.agents_answer(&linux, |_| JobOutcome::Succeeded).await, 1);
    t.tick().await;
    let (_, v) = t.call("GET", &format!("/api/v1/rollouts/{id}"), "rfu_vic", None).await;
    let back: Vec<&Value> = v["targets"].as_array().unwrap().iter().filter(|t| t["state"] == "rolled_back").collect();
    assert_eq!((back.len(), back[0]["machine_id"].as_str()), (1, Some(linux[2].to_string().as_str())));

    // Auto-halt: the canary wave has a failure → halted before wave 2, its success rolled back.
    let (_, v) = t
        .call(
            "POST",
            "/api/v1/rollouts",
            "rfu_alice",
            Some(json!({"fix": "host.cert.regenerate", "machines": ids, "canary": 2, "max_failures": 0})),
        )
        .await;
    let id = v["rollout"]["id"].as_str().unwrap().to_owned();
    let canary: Vec<Uuid> = v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["wave"] == 1)
        .map(|t| t["machine_id"].as_str().unwrap().parse().unwrap())
        .collect();
    t.call("POST", &format!("/api/v1/rollouts/{id}/start"), "rfu_alice", None).await;
    t.tick().await;
    let failing = canary[0];
    assert_eq!(
        t.agents_answer(&linux, |m| if m == failing { JobOutcome::RolledBack } else { JobOutcome::Succeeded }).await,
        2
    );
    t.tick().await;
    let (_, v) = t.call("GET", &format!("/api/v1/rollouts/{id}"), "rfu_vic", None).await;
    assert_eq!(v["rollout"]["state"], "halted", "{v}");
    assert!(v["rollout"]["halted_reason"].as_str().unwrap().contains("wave 1"));
    let states: Vec<(&str, i64)> = v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["state"].as_str().unwrap(), t["wave"].as_i64().unwrap()))
        .collect();
    assert!(states.iter().filter(|(_, w)| *w > 1).all(|(s, _)| *s == "pending"), "no wave 2 job: {states:?}");
    assert!(states.contains(&("rolling_back", 1)) && states.contains(&("failed", 1)), "{states:?}");
    t.tick().await;
    assert_eq!(
        t.agents_answer(&linux, |_| JobOutcome::Succeeded).await,
        1,
        "one rollback job, for the canary that succeeded"
    );
    t.tick().await;
    let (_, v) = t.call("GET", &format!("/api/v1/rollouts/{id}"), "rfu_vic", None).await;
    assert!(v["targets"].as_array().unwrap().iter().any(|t| t["state"] == "rolled_back"), "{v}");

    // Approval: an irreversible fix needs a second person, an admin, not the proposer.
    let (s, v) = t
        .call(
            "POST",
            "/api/v1/rollouts",
            "rfu_alice",
            Some(json!({"fix": "client.credentials.delete", "params": {"target": "rdp01"}, "machines": [windows]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["rollout"]["id"].as_str().unwrap().to_owned();
    assert_eq!(v["rollout"]["state"], "awaiting_approval");
    assert_eq!(
        t.call("POST", &format!("/api/v1/rollouts/{id}/start"), "rfu_alice", None).await.0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        t.call("POST", &format!("/api/v1/rollouts/{id}/approve"), "rfu_alice", None).await.0,
        StatusCode::FORBIDDEN,
        "operators do not approve"
    );
    assert_eq!(
        t.call("POST", &format!("/api/v1/rollouts/{id}/approve"), "rfu_vic", None).await.0,
        StatusCode::FORBIDDEN
    );
    let (s, v) = t.call("POST", &format!("/api/v1/rollouts/{id}/approve"), "rfu_bob", None).await;
    assert_eq!((s, v["rollout"]["approved_by"].as_str()), (StatusCode::OK, Some("bob")));
    let (_, v) = t
        .call(
            "POST",
            "/api/v1/rollouts",
            "rfu_bob",
            Some(json!({"fix": "client.credentials.delete", "params": {"target": "rdp02"}, "machines": [windows]})),
        )
        .await;
    let own = v["rollout"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        t.call("POST", &format!("/api/v1/rollouts/{own}/approve"), "rfu_bob", None).await.0,
        StatusCode::FORBIDDEN,
        "no self-approval"
    );
    assert_eq!(t.call("POST", &format!("/api/v1/rollouts/{own}/approve"), "rfu_carol", None).await.0, StatusCode::OK);
    // Abort cancels queued work.
    t.call("POST", &format!("/api/v1/rollouts/{own}/start"), "rfu_bob", None).await;
    t.tick().await;
    let (s, v) = t.call("POST", &format!("/api/v1/rollouts/{own}/abort"), "rfu_alice", None).await;
    assert_eq!((s, v["rollout"]["state"].as_str()), (StatusCode::OK, Some("aborted")));
    assert_eq!(t.agents_answer(&[windows], |_| JobOutcome::Succeeded).await, 0, "the queued job was cancelled");

    // The audit log tells the story and verifies.
    let actions: Vec<String> = store.audit_entries(0, 10_000).await.unwrap().into_iter().map(|e| e.action).collect();
    for a in [
        "rollout.proposed",
        "rollout.started",
        "job.queued",
        "job.finished",
        "rollout.wave_started",
        "rollout.completed",
        "rollout.halted",
        "rollout.approved",
        "rollout.aborted",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a}");
    }
    assert!(matches!(store.verify_audit_chain().await.unwrap(), ChainCheck::Intact { .. }));
}

#[tokio::test]
async fn rollouts_sqlite() {
    the_story(TestDb::sqlite()).await;
}

#[tokio::test]
async fn rollouts_postgres() {
    if let Some(db) = TestDb::postgres().await {
        the_story(db).await;
    }
}
