//! The store test suite: one body, run against SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)]

use rdpfleet_e2e::TestDb;
use rdpfleet_proto::check::{CheckResult, CheckStatus};
use rdpfleet_proto::enroll::MachineRole;
use rdpfleet_proto::job::{JobAction, JobOutcome};
use rdpfleet_server::domain::job::JobState;
use rdpfleet_server::domain::users::Role;
use rdpfleet_server::secrets::token_hash;
use rdpfleet_server::store::Store;
use rdpfleet_server::store::audit::{ActorKind, NewAuditEntry, entry_hash, keyed_entry_hash};
use rdpfleet_server::store::enrollment::{EnrollError, NewEnrollmentToken, NewMachine};
use rdpfleet_server::store::jobs::{FinishJob, NewJob};
use rdpfleet_server::store::results::ReportIn;
use rdpfleet_server::store::{StoreError, now_ms};
use serde_json::json;

fn audit(action: &'static str) -> NewAuditEntry {
    NewAuditEntry::new(ActorKind::Cli, "tester", action, "subject")
}

fn machine<'a>(hostname: &'a str, labels: &'a [String]) -> NewMachine<'a> {
    NewMachine { hostname, role: MachineRole::Client, os: "linux", agent_version: "0.1.0", site: Some("hq"), labels }
}

fn result(check: &str, target: Option<&str>, status: CheckStatus) -> CheckResult {
    CheckResult {
        check: check.into(),
        target: target.map(Into::into),
        status,
        summary: format!("{check} is {status}"),
        cause: (status == CheckStatus::Fail).then(|| "net.port_closed".to_owned()),
        evidence: json!({"n": 1}),
        observed_at: time::OffsetDateTime::now_utc(),
        duration_ms: 3,
    }
}

async fn token(store: &Store, secret: &str, max_uses: i64, expires_at: i64) {
    store
        .create_enrollment_token(
            NewEnrollmentToken { label: secret, token_hash: &token_hash(secret), expires_at, max_uses },
            audit("enrollment_token.created"),
        )
        .await
        .unwrap();
}

async fn the_suite(db: TestDb) {
    let store = Store::connect(db.url()).await.unwrap();
    store.ping().await.unwrap();
    // Migrations are idempotent: a second connect (a restart, another replica) is fine.
    let store2 = Store::connect(db.url()).await.unwrap();

    // Users and API tokens.
    assert_eq!(store.count_users().await.unwrap(), 0);
    let user = store.create_user("alice", "hash", Role::Operator, audit("user.created")).await.unwrap();
    assert!(matches!(
        store.create_user("alice", "h2", Role::Admin, audit("user.created")).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.user_by_name("alice").await.unwrap().unwrap().0.role, Role::Operator);
    store.create_api_token(&user, "ci", &token_hash("rfu_x"), audit("api_token.created")).await.unwrap();
    assert_eq!(store.user_by_api_token(&token_hash("rfu_x")).await.unwrap().unwrap().0.username, "alice");
    assert!(store.user_by_api_token(&token_hash("rfu_y")).await.unwrap().is_none());

    // Enrollment: limits, expiry, revocation — and a failed enrollment leaves nothing behind.
    let now = now_ms();
    token(&store, "rfe_two", 2, now + 60_000).await;
    token(&store, "rfe_old", 5, now - 1).await;
    let labels = vec!["floor-3".to_owned()];
    let m1 = store.enroll(&token_hash("rfe_two"), machine("pc-1", &labels), &token_hash("rfa_1")).await.unwrap();
    let m2 = store2.enroll(&token_hash("rfe_two"), machine("pc-2", &[]), &token_hash("rfa_2")).await.unwrap();
    assert!(matches!(
        store.enroll(&token_hash("rfe_two"), machine("pc-3", &[]), &token_hash("rfa_3")).await,
        Err(EnrollError::UsedUp)
    ));
    assert!(matches!(
        store.enroll(&token_hash("rfe_old"), machine("pc-3", &[]), &token_hash("rfa_3")).await,
        Err(EnrollError::Expired)
    ));
    assert!(matches!(
        store.enroll(&token_hash("rfe_none"), machine("pc-3", &[]), &token_hash("rfa_3")).await,
        Err(EnrollError::InvalidToken)
    ));
    assert_eq!(store.machines(100, 0).await.unwrap().len(), 2, "failed enrollments created no machine");
    let tokens = store.list_enrollment_tokens().await.unwrap();
    let two = tokens.iter().find(|t| t.label == "rfe_two").unwrap();
    assert_eq!((two.uses, two.state(now_ms()).as_str()), (2, "used_up"));
    let old = tokens.iter().find(|t| t.label == "rfe_old").unwrap();
    assert_eq!((old.uses, old.state(now_ms()).as_str()), (0, "expired"));
    token(&store, "rfe_rev", 5, now + 60_000).await;
    let rev_id = store.list_enrollment_tokens().await.unwrap().into_iter().find(|t| t.label == "rfe_rev").unwrap().id;
    assert!(store.revoke_enrollment_token(rev_id.parse().unwrap(), audit("enrollment_token.revoked")).await.unwrap());
    assert!(!store.revoke_enrollment_token(rev_id.parse().unwrap(), audit("enrollment_token.revoked")).await.unwrap());
    assert!(matches!(
        store.enroll(&token_hash("rfe_rev"), machine("pc-3", &[]), &token_hash("rfa_3")).await,
        Err(EnrollError::InvalidToken)
    ));

    let m = store.machine(m1).await.unwrap().unwrap();
    assert_eq!(
        (m.hostname.as_str(), m.site.as_deref(), m.labels.clone(), m.revoked),
        ("pc-1", Some("hq"), labels, false)
    );

    // Agent credentials.
    assert_eq!(store.agent_by_token(&token_hash("rfa_1")).await.unwrap().unwrap().machine_id, m1);
    assert_eq!(store.revoke_agent(m2, audit("agent.revoked")).await.unwrap(), 1);
    assert!(store.agent_by_token(&token_hash("rfa_2")).await.unwrap().is_none());
    assert!(store.machine(m2).await.unwrap().unwrap().revoked);
    assert_eq!(store.revoke_agent(m2, audit("agent.revoked")).await.unwrap(), 0);

    // Reports: idempotent by sequence; history only on status change.
    let t = Some("rdp01:3389");
    let batch1 = vec![
        result("net.dns", t, CheckStatus::Pass),
        result("net.tcp", t, CheckStatus::Pass),
        result("host.rdp", None, CheckStatus::Pass),
    ];
    let o = store.store_report(m1, 1, Some("0.1.1"), &batch1).await.unwrap();
    assert_eq!((o.duplicate, o.stored, o.transitions), (false, 3, 3));
    let o = store.store_report(m1, 1, None, &batch1).await.unwrap();
    assert_eq!((o.duplicate, o.stored), (true, 0), "a replayed sequence is not stored twice");
    let o = store2.store_report(m1, 2, None, &batch1).await.unwrap();
    assert_eq!((o.duplicate, o.transitions), (false, 0), "same statuses: no new history rows");
    let batch3 = vec![result("net.dns", t, CheckStatus::Pass), result("net.tcp", t, CheckStatus::Fail)];
    let o = store.store_report(m1, 5, None, &batch3).await.unwrap();
    assert_eq!(o.transitions, 1, "gaps in the sequence are allowed");
    let mut other_cause = batch3.clone();
    other_cause[1].cause = Some("net.port_filtered".into());
    let o = store.store_report(m1, 6, None, &other_cause).await.unwrap();
    assert_eq!(o.transitions, 1, "a new cause within the same status is history too");
    assert!(store.store_report(m1, 4, None, &batch1).await.unwrap().duplicate, "an older sequence is a duplicate");
    assert_eq!(store.machine(m1).await.unwrap().unwrap().agent_version, "0.1.1");

    let latest = store.latest_results(m1).await.unwrap();
    assert_eq!(latest.len(), 3);
    let tcp = latest.iter().find(|r| r.check_id == "net.tcp").unwrap();
    assert_eq!(
        (tcp.status.as_str(), tcp.cause.as_deref(), tcp.target.as_str()),
        ("fail", Some("net.port_filtered"), "rdp01:3389")
    );
    let rdp = latest.iter().find(|r| r.check_id == "host.rdp").unwrap();
    assert_eq!(rdp.target, "", "machine-level results have an empty target");
    let history = store.transitions(m1, 10).await.unwrap();
    assert_eq!(history.len(), 5);
    let h0 = &history[0];
    assert_eq!(
        (h0.check_id.as_str(), h0.from.map(|s| s.as_str()), h0.to.as_str(), h0.cause.as_deref()),
        ("net.tcp", Some("fail"), "fail", Some("net.port_filtered"))
    );
    let h1 = &history[1];
    assert_eq!((h1.check_id.as_str(), h1.from.map(|s| s.as_str()), h1.to.as_str()), ("net.tcp", Some("pass"), "fail"));
    assert_eq!(tcp.status_since, h1.at, "status_since moves with the status, not the cause");
    assert_eq!(store.count_transitions().await.unwrap(), 5);

    // One group-commit batch holding a machine several times (as a retrying agent's reports
    // can): each report is judged against the one before it, duplicates write nothing.
    let tcp_pass = vec![result("net.tcp", t, CheckStatus::Pass)];
    let tcp_fail = vec![result("net.tcp", t, CheckStatus::Fail)];
    let rdp_fail = vec![result("host.rdp", None, CheckStatus::Fail)];
    fn report(machine_id: uuid::Uuid, seq: u64, results: &[CheckResult]) -> ReportIn<'_> {
        ReportIn { machine_id, seq, agent_version: None, dropped_reports: 0, results }
    }
    let outcomes = store
        .store_reports(&[
            report(m1, 7, &tcp_pass),
            report(m2, 1, &rdp_fail),
            report(m1, 8, &tcp_fail),
            report(m1, 8, &tcp_fail),
            report(m2, 1, &rdp_fail),
        ])
        .await
        .unwrap();
    let summary: Vec<(bool, u64, u64)> = outcomes.iter().map(|o| (o.duplicate, o.stored, o.transitions)).collect();
    assert_eq!(summary, [(false, 1, 1), (false, 1, 1), (false, 1, 1), (true, 0, 0), (true, 0, 0)]);
    let history = store.transitions(m1, 2).await.unwrap();
    let moves: Vec<(Option<&str>, &str)> =
        history.iter().map(|h| (h.from.map(|s| s.as_str()), h.to.as_str())).collect();
    assert_eq!(moves, [(Some("pass"), "fail"), (Some("fail"), "pass")]);
    assert_eq!(store.machine(m1).await.unwrap().unwrap().last_report_seq, 8);
    assert_eq!(store.machine(m2).await.unwrap().unwrap().reports_received, 1);
    assert_eq!(store.count_transitions().await.unwrap(), 8);

    // Jobs: lease, redelivery only after the lease, outcomes recorded once.
    let params = json!({"layer": 2});
    let job = NewJob {
        machine_id: m1,
        fix_id: "host.nla.enable",
        action: JobAction::Apply,
        params: &params,
        nonce: "n1",
        signature: None,
        expires_at: now_ms() + 3_600_000,
        rollout_id: None,
    };
    let j1 = store.enqueue_job(job.clone()).await.unwrap();
    assert!(matches!(store.enqueue_job(job.clone()).await, Err(StoreError::Conflict)), "nonces are unique");
    let expired = store.enqueue_job(NewJob { nonce: "n2", expires_at: now_ms() - 1, ..job.clone() }).await.unwrap();
    assert!(store.lease_jobs(m2, 60_000, 10).await.unwrap().is_empty(), "another machine sees nothing");
    let leased = store.lease_jobs(m1, 60_000, 10).await.unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!((leased[0].job.id, &leased[0].job.params, leased[0].attempts), (j1, &params, 1));
    assert_eq!(store.job(expired).await.unwrap().unwrap().state, JobState::Expired);
    assert!(store.lease_jobs(m1, 60_000, 10).await.unwrap().is_empty(), "leased jobs are not redelivered early");
    let j3 = store.enqueue_job(NewJob { nonce: "n3", ..job.clone() }).await.unwrap();
    let again = store.lease_jobs(m1, -1, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].job.id, j3);
    let redelivered = store.lease_jobs(m1, 60_000, 10).await.unwrap();
    assert_eq!(redelivered.len(), 1, "a job whose lease ran out is delivered again");
    assert_eq!((redelivered[0].job.id, redelivered[0].attempts), (j3, 2));
    let ev = json!({"before": 0, "after": 1});
    assert_eq!(store.finish_job(m2, j1, JobOutcome::Succeeded, "", &ev).await.unwrap(), FinishJob::NotFound);
    assert_eq!(store.finish_job(m1, j1, JobOutcome::Succeeded, "ok", &ev).await.unwrap(), FinishJob::Recorded);
    assert_eq!(store.finish_job(m1, j1, JobOutcome::Succeeded, "ok", &ev).await.unwrap(), FinishJob::AlreadyRecorded);
    assert_eq!(store.finish_job(m1, j1, JobOutcome::Failed, "no", &ev).await.unwrap(), FinishJob::Conflict);

    // Audit: every change above is in one unbroken hash chain.
    let entries = store.audit_entries(0, 1000).await.unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    for expected in [
        "user.created",
        "api_token.created",
        "enrollment_token.created",
        "machine.enrolled",
        "enrollment_token.revoked",
        "agent.revoked",
        "job.finished",
    ] {
        assert!(actions.contains(&expected), "audit has {expected}: {actions:?}");
    }
    assert_eq!(
        actions.iter().filter(|a| **a == "machine.enrolled").count(),
        2,
        "failed enrollments are not audited as enrolled"
    );
    let mut prev = "0".repeat(64);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.id, i as i64 + 1, "ids are gapless");
        assert_eq!(e.prev_hash, prev);
        let fields = [e.actor_kind.as_str(), &e.actor, &e.action, &e.subject, &e.details];
        assert_eq!(
            e.hash,
            keyed_entry_hash(store.audit_key(), &prev, e.id, e.at, fields),
            "keyed with the store's key"
        );
        assert_ne!(e.hash, entry_hash(&prev, e.id, e.at, fields), "not a plain SHA-256 anyone can recompute");
        prev = e.hash.clone();
    }
    store.close().await;
    store2.close().await;
}

/// Concurrent enrollments race for the last uses of a token: exactly `max_uses` win.
async fn the_race(db: TestDb) {
    let store = Store::connect(db.url()).await.unwrap();
    token(&store, "rfe_race", 3, now_ms() + 60_000).await;
    let mut tasks = Vec::new();
    for i in 0..10 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let host = format!("pc-{i}");
            s.enroll(&token_hash("rfe_race"), machine(&host, &[]), &token_hash(&format!("rfa_{i}"))).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(EnrollError::UsedUp) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(ok, 3);
    assert_eq!(store.machines(100, 0).await.unwrap().len(), 3);
    store.close().await;
}

#[tokio::test]
async fn store_suite_sqlite() {
    the_suite(TestDb::sqlite()).await;
}

#[tokio::test]
async fn store_suite_postgres() {
    if let Some(db) = TestDb::postgres().await {
        the_suite(db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn enrollment_race_sqlite() {
    the_race(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn enrollment_race_postgres() {
    if let Some(db) = TestDb::postgres().await {
        the_race(db).await;
    }
}
