//! Group commit: reports stored together in one transaction keep their per-report semantics —
//! each stored once, duplicates recognised, several reports of one machine in order — and many
//! concurrent reports through the API all land, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)]

use rdpfleet_e2e::TestDb;
use rdpfleet_proto::check::{CheckResult, CheckStatus};
use rdpfleet_proto::enroll::MachineRole;
use rdpfleet_server::secrets::token_hash;
use rdpfleet_server::store::Store;
use rdpfleet_server::store::audit::{ActorKind, NewAuditEntry};
use rdpfleet_server::store::enrollment::{NewEnrollmentToken, NewMachine};
use rdpfleet_server::store::now_ms;
use rdpfleet_server::store::results::ReportIn;
use rdpfleet_server::tasks::report_writer::ReportWriter;

fn result(status: CheckStatus) -> Vec<CheckResult> {
    vec![CheckResult {
        check: "host.nla".into(),
        target: None,
        status,
        summary: "s".into(),
        cause: (status == CheckStatus::Fail).then(|| "rdp.nla_not_required".into()),
        evidence: serde_json::json!({}),
        observed_at: time::OffsetDateTime::now_utc(),
        duration_ms: 1,
    }]
}

/// Enrolls `n` machines on a new token.
async fn enroll(store: &Store, n: usize) -> Vec<uuid::Uuid> {
    let audit = NewAuditEntry::new(ActorKind::Cli, "t", "x", "y");
    store
        .create_enrollment_token(
            NewEnrollmentToken {
                label: "g",
                token_hash: &token_hash("rfe_g"),
                expires_at: now_ms() + 60_000,
                max_uses: 100,
            },
            audit,
        )
        .await
        .unwrap();
    let mut machines = Vec::new();
    for i in 0..n {
        let m = NewMachine {
            hostname: &format!("g{i}"),
            role: MachineRole::Host,
            os: "linux",
            agent_version: "1",
            site: None,
            labels: &[],
        };
        machines.push(store.enroll(&token_hash("rfe_g"), m, &token_hash(&format!("rfa_g{i}"))).await.unwrap());
    }
    machines
}

async fn the_story(db: TestDb) {
    let store = Store::connect(db.url()).await.unwrap();
    let machines = enroll(&store, 20).await;
    let (fail, pass) = (result(CheckStatus::Fail), result(CheckStatus::Pass));
    let batch = [
        ReportIn { machine_id: machines[0], seq: 1, agent_version: None, dropped_reports: 0, results: &fail },
        ReportIn { machine_id: machines[0], seq: 2, agent_version: None, dropped_reports: 0, results: &pass },
        ReportIn { machine_id: machines[0], seq: 2, agent_version: None, dropped_reports: 0, results: &fail },
        ReportIn { machine_id: machines[1], seq: 1, agent_version: Some("2"), dropped_reports: 3, results: &fail },
    ];
    let out = store.store_reports(&batch).await.unwrap();
    assert_eq!(out.iter().map(|o| o.duplicate).collect::<Vec<_>>(), vec![false, false, true, false]);
    assert_eq!(out[1].transitions, 1, "fail → pass within the batch");
    assert_eq!(store.latest_results(machines[0]).await.unwrap()[0].status, CheckStatus::Pass, "the later report wins");
    assert_eq!(store.transitions(machines[0], 10).await.unwrap().len(), 2);
    // Each stored report counts once; the agent's dropped count is kept.
    let (m0, m1) =
        (store.machine(machines[0]).await.unwrap().unwrap(), store.machine(machines[1]).await.unwrap().unwrap());
    assert_eq!((m0.reports_received, m0.reports_dropped), (2, 0));
    assert_eq!((m1.reports_received, m1.reports_dropped), (1, 3));

    // Concurrent reports through the writer: every one stored once.
    let writer = ReportWriter::spawn(store.clone());
    let mut tasks = Vec::new();
    for (i, m) in machines.iter().enumerate().skip(2) {
        for seq in 1..=5u64 {
            let (w, m) = (writer.clone(), *m);
            let status = if (seq + i as u64) % 2 == 0 { CheckStatus::Fail } else { CheckStatus::Pass };
            tasks.push(tokio::spawn(async move { w.store(m, seq, None, 0, result(status)).await.unwrap() }));
        }
        // And a retried report.
        let (w, m) = (writer.clone(), *m);
        tasks.push(tokio::spawn(async move { w.store(m, 1, None, 0, result(CheckStatus::Pass)).await.unwrap() }));
    }
    let mut stored = 0;
    let mut duplicates = 0;
    for t in tasks {
        let o = t.await.unwrap();
        if o.duplicate { duplicates += 1 } else { stored += 1 }
    }
    // Reports of one machine may arrive out of order: a lower sequence after a higher one is a
    // duplicate by design (the agent sends in order), so at least one per machine is stored.
    assert_eq!(stored + duplicates, 18 * 6);
    let mut received = 0;
    for m in &machines[2..] {
        received += store.machine(*m).await.unwrap().unwrap().reports_received;
    }
    assert_eq!(received, stored, "a report counts once, a duplicate not at all");
    for m in &machines[2..] {
        let seq = store.machine(*m).await.unwrap().unwrap().last_report_seq;
        assert_eq!(seq, 5, "every machine reached its last sequence");
        assert!(store.machine(*m).await.unwrap().unwrap().reports_received >= 1);
    }
}

#[tokio::test]
async fn group_commit_sqlite() {
    the_story(TestDb::sqlite()).await;
}

#[tokio::test]
async fn group_commit_postgres() {
    if let Some(db) = TestDb::postgres().await {
        the_story(db).await;
    }
}

/// Transactions that read before they write (a report batch reads the machines' marks first;
/// the health sample and the incident reconciliation read too) run side by side with other
/// writers on the pool's other connections. None may fail with "database is locked".
async fn concurrent_writers(db: TestDb) {
    let store = Store::connect(db.url()).await.unwrap();
    let machines = enroll(&store, 8).await;
    let mut tasks = Vec::new();
    for (k, m) in machines.into_iter().enumerate() {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            for seq in 1..=60u64 {
                let status = if (seq + k as u64) % 3 == 0 { CheckStatus::Fail } else { CheckStatus::Pass };
                let r = result(status);
                let batch = [ReportIn { machine_id: m, seq, agent_version: None, dropped_reports: 0, results: &r }];
                s.store_reports(&batch).await.map(|_| ()).map_err(|e| format!("report: {e}"))?;
            }
            Ok::<(), String>(())
        }));
    }
    for k in 0..2i64 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..60 {
                s.record_health_sample(k * 1000 + i).await.map_err(|e| format!("health sample: {e}"))?;
                s.reconcile_incidents(&[]).await.map(|_| ()).map_err(|e| format!("incidents: {e}"))?;
            }
            Ok(())
        }));
    }
    let mut errors = Vec::new();
    for t in tasks {
        errors.extend(t.await.unwrap().err());
    }
    assert!(errors.is_empty(), "{errors:?}");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_sqlite() {
    concurrent_writers(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_postgres() {
    if let Some(db) = TestDb::postgres().await {
        concurrent_writers(db).await;
    }
}

/// Two stores on one database (two replicas, or the server and another process): each keeps
/// its own idea of a machine's current results, and must not trust it once the other stored a
/// report for that machine.
async fn two_writers_one_machine(db: TestDb) {
    let a = Store::connect(db.url()).await.unwrap();
    let b = Store::connect(db.url()).await.unwrap();
    let m = enroll(&a, 1).await[0];
    let (fail, pass) = (result(CheckStatus::Fail), result(CheckStatus::Pass));
    let report = |seq, results| [ReportIn { machine_id: m, seq, agent_version: None, dropped_reports: 0, results }];
    assert_eq!(a.store_reports(&report(1, &fail)).await.unwrap()[0].transitions, 1, "new result");
    assert_eq!(b.store_reports(&report(2, &pass)).await.unwrap()[0].transitions, 1, "fail → pass, stored by b");
    // `a` last stored "fail"; the database says "pass", so nothing changes.
    let out = a.store_reports(&report(3, &pass)).await.unwrap();
    assert_eq!((out[0].duplicate, out[0].transitions), (false, 0));
    assert_eq!(a.transitions(m, 10).await.unwrap().len(), 2);
    // And `a` again, now current: pass → fail is one transition with the right origin.
    let out = a.store_reports(&report(4, &fail)).await.unwrap();
    assert_eq!(out[0].transitions, 1);
    let latest = &a.transitions(m, 1).await.unwrap()[0];
    assert_eq!((latest.from, latest.to), (Some(CheckStatus::Pass), CheckStatus::Fail));
    let m_row = a.machine(m).await.unwrap().unwrap();
    assert_eq!((m_row.last_report_seq, m_row.reports_received), (4, 4));
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn two_writers_one_machine_sqlite() {
    two_writers_one_machine(TestDb::sqlite()).await;
}

#[tokio::test]
async fn two_writers_one_machine_postgres() {
    if let Some(db) = TestDb::postgres().await {
        two_writers_one_machine(db).await;
    }
}
